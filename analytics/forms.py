"""Forms of analytics pages: they validate; services write."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import validate_email

from analytics.models import AlertKind, AlertRule
from portal.http_client import OutboundBlocked, check_url


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=AlertKind.choices, label="When")
    threshold = forms.FloatField(
        required=False,
        min_value=0,
        help_text="Quota: percent used · error rate: percent · latency: p95 in ms · anomaly: z-score (e.g. 3).",
    )
    window_minutes = forms.IntegerField(min_value=1, max_value=1440, initial=15, label="Window (minutes)")
    min_requests = forms.IntegerField(min_value=1, max_value=1_000_000, initial=20, label="Minimum calls")
    budget_usd = forms.DecimalField(
        required=False, min_value=0, max_digits=14, decimal_places=2, label="Monthly budget (USD)",
        help_text="Forecast rules: the line not to cross. Empty: the tenant's own monthly cost quota.",
    )  # fmt: skip
    metric = forms.ChoiceField(choices=AlertRule.Metric.choices, initial="requests", help_text="Anomaly rules.")
    email_to = forms.CharField(max_length=500, required=False, label="E-mail to", help_text="Comma-separated.")
    webhook_url = forms.URLField(max_length=500, required=False, assume_scheme="https")

    def clean_email_to(self) -> str:
        addresses = [a.strip() for a in self.cleaned_data["email_to"].split(",") if a.strip()]
        for address in addresses:
            validate_email(address)
        return ", ".join(addresses)

    def clean_webhook_url(self) -> str:
        url: str = self.cleaned_data["webhook_url"]
        if url:
            try:
                check_url(url, allow_private=settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS)
            except OutboundBlocked as refused:
                raise forms.ValidationError(str(refused).replace("Upstreams", "Webhooks")) from None
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if not data.get("email_to") and not data.get("webhook_url"):
            raise forms.ValidationError("Say where to send the alert: e-mail addresses, a webhook URL, or both.")
        if kind in (AlertKind.ERROR_RATE, AlertKind.LATENCY_P95, AlertKind.ANOMALY) and not data.get("threshold"):
            self.add_error("threshold", "This kind of rule needs a threshold.")
        if kind == AlertKind.QUOTA_THRESHOLD and (data.get("threshold") or 0) > 100:
            self.add_error("threshold", "A quota threshold is a percent of the quota (1-100).")
        return data

    def rule(self) -> dict[str, Any]:
        """What ``alert_rule_create`` takes."""
        data = self.cleaned_data
        budget: Decimal | None = data.get("budget_usd")
        return {
            "name": data["name"],
            "kind": data["kind"],
            "threshold": data.get("threshold") or 0,
            "window_minutes": data["window_minutes"],
            "min_requests": data["min_requests"],
            "budget_micros": int(budget * 1_000_000) if budget is not None else 0,
            "metric": data["metric"],
            "email_to": data["email_to"],
            "webhook_url": data["webhook_url"],
        }

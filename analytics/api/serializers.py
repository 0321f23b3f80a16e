"""Input and output of the analytics management API. Money is integer micro-USD, as everywhere."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from analytics.forms import AlertRuleForm
from analytics.models import AlertKind, AlertRule


class RangeQuery(serializers.Serializer):
    since = serializers.DateField(required=False, help_text="First local day (inclusive); default: a week ago.")
    until = serializers.DateField(required=False, help_text="Last local day (inclusive); default: today.")
    by = serializers.ChoiceField(choices=["application", "key", "api", "model"], default="application")
    application = serializers.SlugField(required=False, help_text="Only this application (its slug).")


class MonthQuery(serializers.Serializer):
    month = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", required=False, help_text="YYYY-MM; default: now.")


class FiguresOutput(serializers.Serializer):
    label = serializers.CharField(help_text="The bucket's ISO start, or the breakdown's value.")  # type: ignore[assignment]  # a field named like a Field attribute
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()  # type: ignore[assignment]  # the output key is "errors"
    cache_hits = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_micros = serializers.IntegerField(required=False, help_text="Only for members who may see costs.")
    latency_p50_ms = serializers.IntegerField()
    latency_p95_ms = serializers.IntegerField()


class PeriodOutput(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    label = serializers.CharField()  # type: ignore[assignment]


class UsageOutput(serializers.Serializer):
    period = PeriodOutput()
    totals = FiguresOutput()
    series = FiguresOutput(many=True)
    breakdown = FiguresOutput(many=True)


class CostLineOutput(serializers.Serializer):
    consumer = serializers.CharField()
    application = serializers.CharField()
    api = serializers.CharField()
    model = serializers.CharField()
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_micros = serializers.IntegerField()


class BudgetOutput(serializers.Serializer):
    spent_micros = serializers.IntegerField()
    forecast_micros = serializers.IntegerField()
    budget_micros = serializers.IntegerField(allow_null=True)
    will_exceed = serializers.BooleanField()


class CostReportOutput(serializers.Serializer):
    period = PeriodOutput()
    lines = CostLineOutput(many=True)
    total_micros = serializers.IntegerField()
    budget = BudgetOutput(allow_null=True, help_text="This month so far; null when the report is narrowed.")


class StatementLineOutput(serializers.Serializer):
    application = serializers.CharField()
    api = serializers.CharField()
    model = serializers.CharField()
    requests = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost_micros = serializers.IntegerField()
    markup_basis_points = serializers.IntegerField()
    markup_micros = serializers.IntegerField()
    total_micros = serializers.IntegerField()


class StatementOutput(serializers.Serializer):
    period = PeriodOutput()
    lines = StatementLineOutput(many=True)
    cost_micros = serializers.IntegerField()
    markup_micros = serializers.IntegerField()
    total_micros = serializers.IntegerField()


class AlertRuleInput(serializers.Serializer):
    """Validated by the page's form, so the API and the page accept exactly the same rules."""

    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=AlertKind.choices)
    threshold = serializers.FloatField(required=False, min_value=0)
    window_minutes = serializers.IntegerField(required=False, default=15)
    min_requests = serializers.IntegerField(required=False, default=20)
    budget_usd = serializers.DecimalField(required=False, max_digits=14, decimal_places=2, allow_null=True)
    metric = serializers.ChoiceField(choices=AlertRule.Metric.choices, default=AlertRule.Metric.REQUESTS)
    email_to = serializers.CharField(required=False, allow_blank=True, default="")
    webhook_url = serializers.CharField(required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        form = AlertRuleForm({k: v for k, v in attrs.items() if v is not None})
        if not form.is_valid():
            raise serializers.ValidationError(
                {
                    ("non_field_errors" if field == "__all__" else field): [str(message) for message in errors]
                    for field, errors in form.errors.items()
                }
            )
        return form.rule()


class AlertRuleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    is_active = serializers.BooleanField()
    threshold = serializers.FloatField()
    window_minutes = serializers.IntegerField()
    min_requests = serializers.IntegerField()
    budget_micros = serializers.IntegerField()
    metric = serializers.CharField()
    email_to = serializers.CharField()
    webhook_url = serializers.CharField()
    created_at = serializers.DateTimeField()


class AlertRuleCreatedOutput(AlertRuleOutput):
    webhook_secret = serializers.CharField(help_text="The webhook signing secret: shown in this answer only.")


class AlertDeliveryOutput(serializers.Serializer):
    channel = serializers.CharField()
    state = serializers.CharField()
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class AlertOutput(serializers.Serializer):
    event_id = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    kind = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField()
    rule_id = serializers.IntegerField(allow_null=True)
    deliveries = AlertDeliveryOutput(many=True)

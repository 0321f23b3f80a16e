"""Forms of the application, subscription, key and approval pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django import forms
from django.utils import timezone

from tenants.forms import _SLUG


class ApplicationForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.CharField(max_length=50, validators=[_SLUG], label="Short name", help_text="Lowercase, e.g. web-shop")
    description = forms.CharField(max_length=300, required=False)


class SubscribeForm(forms.Form):
    application = forms.ChoiceField(choices=[])
    plan = forms.ChoiceField(choices=[])
    justification = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="What you will use it for: the publisher reads this before approving.",
    )

    def __init__(self, *args: Any, applications: list[tuple[str, str]], plans: list[tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["application"]).choices = applications
        cast(forms.ChoiceField, self.fields["plan"]).choices = plans


class KeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. “production web”.")
    scopes = forms.MultipleChoiceField(
        choices=[], required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: every subscribed API."
    )
    ip_allowlist = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "203.0.113.0/24"}),
        label="IP allowlist",
        help_text="One address or CIDR range per line; empty: any address.",
    )
    expires_in_days = forms.TypedChoiceField(
        coerce=int,
        choices=[(0, "Never"), (30, "30 days"), (90, "90 days"), (365, "1 year")],
        initial=90,
        label="Expires",
    )

    def __init__(self, *args: Any, apis: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["scopes"]).choices = apis

    def clean_ip_allowlist(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["ip_allowlist"].splitlines() if line.strip()]

    def expires_at(self) -> Any:
        days = self.cleaned_data["expires_in_days"]
        return timezone.now() + timedelta(days=days) if days else None


class RotateForm(forms.Form):
    grace_hours = forms.TypedChoiceField(
        coerce=int,
        choices=[(0, "Stop the old key now"), (1, "1 hour"), (24, "24 hours"), (168, "7 days")],
        initial=24,
        label="Keep the old key working for",
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(required=False, max_length=500)


class SubscriberActionForm(forms.Form):
    action = forms.ChoiceField(choices=[("suspend", "Suspend"), ("resume", "Resume"), ("revoke", "Revoke")])
    reason = forms.CharField(required=False, max_length=500)


class ChangeRequestForm(forms.Form):
    new_plan = forms.ChoiceField(choices=[], required=False, label="Move to plan")
    extra_tokens = forms.IntegerField(min_value=0, required=False, initial=0, label="Extra tokens per period")
    extra_models = forms.CharField(required=False, help_text="Comma-separated model names.")
    until = forms.DateField(required=False, help_text="Optional: the change ends (and reverts) at the end of this day.")
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, plans: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["new_plan"]).choices = [("", "Keep the current plan"), *plans]

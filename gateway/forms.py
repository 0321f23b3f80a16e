"""Forms of the publisher pages: APIs, versions, plans, providers, deployments and routes."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from django import forms

from gateway.models import AiApi, ApiVersion, Deployment, Plan, Provider
from tenants.forms import _SLUG


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


class ApiEditForm(forms.Form):
    name = forms.CharField(max_length=120)
    summary = forms.CharField(max_length=300, required=False)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text="Markdown. Scripts and unsafe links are removed.",
    )
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. chat, support")
    visibility = forms.ChoiceField(choices=AiApi.Visibility.choices)
    requires_approval = forms.BooleanField(required=False, initial=True, help_text="Plans may override this.")

    def clean_tags(self) -> list[str]:
        return _words(self.cleaned_data["tags"])


class ApiCreateForm(ApiEditForm):
    slug = forms.CharField(max_length=50, validators=[_SLUG], help_text="In URLs: /catalog/<you>/<slug>/")
    kind = forms.ChoiceField(choices=AiApi.Kind.choices)
    field_order = ["name", "slug", "kind"]


class VersionForm(forms.Form):
    version = forms.RegexField(
        regex=r"^v[0-9]{1,3}(\.[0-9]{1,3})?$", max_length=20, initial="v1", help_text="v1, v2, v2.1…"
    )
    model_alias = forms.CharField(
        max_length=100, required=False, help_text="The model name clients send (chat, embeddings)."
    )
    prompt_template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="Prompt APIs: text with {variables}."
    )
    variables_schema = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="Prompt APIs: JSON schema of the variables."
    )

    def clean_variables_schema(self) -> dict[str, Any]:
        raw = self.cleaned_data["variables_schema"].strip()
        if not raw:
            return {}
        try:
            schema = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("This is not valid JSON.") from None
        if not isinstance(schema, dict):
            raise forms.ValidationError('A JSON schema is an object, e.g. {"type": "object", …}.')
        return schema


class VersionStatusForm(forms.Form):
    status = forms.ChoiceField(choices=ApiVersion.Status.choices)
    sunset_at = forms.DateTimeField(required=False, help_text="Needed to deprecate.")


class PlanForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(max_length=50, validators=[_SLUG])
    description = forms.CharField(max_length=300, required=False)
    requests_per_minute = forms.IntegerField(min_value=1, required=False)
    tokens_per_minute = forms.IntegerField(min_value=1, required=False)
    quota_period = forms.ChoiceField(choices=Plan.Period.choices)
    token_quota = forms.IntegerField(min_value=1, required=False, label="Token quota per period")
    budget_usd = forms.DecimalField(
        min_value=Decimal("0.000001"), max_digits=12, decimal_places=6, required=False, label="Budget per period (USD)"
    )
    allowed_models = forms.CharField(required=False, help_text="Comma-separated; empty: every model of the API.")
    requires_approval = forms.TypedChoiceField(
        coerce=lambda v: {"": None, "yes": True, "no": False}[v],
        choices=[("", "As the API says"), ("yes", "Always"), ("no", "Never")],
        required=False,
        empty_value=None,
    )

    def limits(self) -> dict[str, Any]:
        data = self.cleaned_data
        budget = data["budget_usd"]
        return {
            "description": data["description"],
            "requests_per_minute": data["requests_per_minute"],
            "tokens_per_minute": data["tokens_per_minute"],
            "quota_period": data["quota_period"],
            "token_quota": data["token_quota"],
            # Money is integer micro-USD: exact, whatever the database.
            "cost_quota_micros": int(budget * 1_000_000) if budget is not None else None,
            "allowed_models": _words(data["allowed_models"]),
            "requires_approval": data["requires_approval"],
        }


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100, validators=[_SLUG], help_text="e.g. openai-prod, anthropic-eu")
    kind = forms.ChoiceField(choices=Provider.Kind.choices)
    api_base = forms.URLField(
        max_length=500, required=False, assume_scheme="https", help_text="Empty: the provider's public endpoint."
    )
    api_key = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Encrypted at rest; never shown again.",
    )


def _usd_per_mtok(label: str) -> forms.DecimalField:
    return forms.DecimalField(
        min_value=Decimal(0), max_digits=12, decimal_places=6, required=False, label=label,
        help_text="USD per 1M tokens. Empty: litellm's list price for the model (0 if it has none).",
    )  # fmt: skip


class DeploymentForm(forms.Form):
    name = forms.CharField(max_length=60, validators=[_SLUG], help_text="e.g. gpt-4o-mini-eu")
    model = forms.CharField(max_length=120, help_text="The provider's model name, e.g. claude-3-5-haiku-latest.")
    region = forms.CharField(max_length=20, initial="eu")
    input_price = _usd_per_mtok("Input price")
    output_price = _usd_per_mtok("Output price")
    timeout_seconds = forms.IntegerField(min_value=1, max_value=600, initial=60)
    requests_per_minute = forms.IntegerField(
        min_value=1, required=False, help_text="What the provider allows this deployment. Empty: no limit."
    )
    tokens_per_minute = forms.IntegerField(min_value=1, required=False, help_text="Empty: no limit.")

    def fields_for_service(self) -> dict[str, Any]:
        data = self.cleaned_data

        def micros(usd: Decimal | None) -> int | None:
            return None if usd is None else int(usd * 1_000_000)  # integer micro-USD: exact on any database

        return {
            "name": data["name"],
            "model": data["model"],
            "region": data["region"],
            "input_price_micros_per_mtok": micros(data["input_price"]),
            "output_price_micros_per_mtok": micros(data["output_price"]),
            "timeout_seconds": data["timeout_seconds"],
            "requests_per_minute": data["requests_per_minute"],
            "tokens_per_minute": data["tokens_per_minute"],
        }


class RouteForm(forms.Form):
    deployment = forms.ModelChoiceField(queryset=Deployment.objects.none())
    weight = forms.IntegerField(min_value=0, max_value=1000, initial=100, help_text="Share among the primaries.")
    fallback_order = forms.IntegerField(min_value=0, max_value=20, initial=0, help_text="0: primary; 1, 2…: fallbacks.")

    def __init__(self, *args: Any, deployments: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["deployment"].queryset = deployments  # type: ignore[attr-defined]


class PolicyDocumentForm(forms.Form):
    """The policy document being edited on the policies page. ``previewed`` carries the digest of the text whose
    diff was shown: only that very text is applied (edited after the preview, it is previewed again)."""

    document = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false"}), max_length=1_000_000, strip=False
    )
    note = forms.CharField(max_length=200, required=False)
    previewed = forms.CharField(required=False, widget=forms.HiddenInput)

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()

    def confirmed(self) -> bool:
        return bool(self.cleaned_data["previewed"]) and self.cleaned_data["previewed"] == self.digest(
            self.cleaned_data["document"]
        )

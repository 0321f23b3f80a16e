"""Forms of the tenants pages. They validate input; services do the writing."""

from __future__ import annotations

import zoneinfo
from typing import cast

from django import forms
from django.core.validators import RegexValidator

from tenants.models import REGIONS, PersonalAccessToken
from tenants.permissions import roles_grantable_by

_SLUG = RegexValidator(r"^[a-z0-9](?:[a-z0-9-]{1,48}[a-z0-9])$", "Use 3 to 50 lowercase letters, digits and dashes.")
RESERVED_SLUGS = {"new", "admin", "api", "static", "settings", "accounts", "www", "gatehouse"}


def _timezones() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones()) if "/" in name or name == "UTC"]


class TenantCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Your organization or team, e.g. “Acme AI Platform”.")
    slug = forms.CharField(
        max_length=50, validators=[_SLUG], label="Address", help_text="Appears in URLs: /t/<address>/"
    )

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"].lower()
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError("This address is reserved; choose another.")
        return slug


class TenantSettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    require_mfa = forms.BooleanField(
        required=False,
        label="Require two-factor authentication for all members",
        help_text="Members without it are asked to set it up before they can open this tenant.",
    )
    default_region = forms.ChoiceField(choices=REGIONS, label="Default data region")
    timezone = forms.ChoiceField(choices=_timezones, help_text="Daily and monthly quotas and reports follow it.")
    markup_percent = forms.DecimalField(
        required=False,
        min_value=0,
        max_value=1000,
        decimal_places=2,
        label="Chargeback markup (%)",
        help_text="Added, as a publisher, to the cost of calls to your APIs on your consumers' monthly statements.",
    )


class RoleChoiceForm(forms.Form):
    role = forms.ChoiceField(choices=[])

    def __init__(self, *args: object, grantor_role: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        cast(forms.ChoiceField, self.fields["role"]).choices = [
            (r.value, r.label) for r in roles_grantable_by(grantor_role)
        ]


class InvitationForm(RoleChoiceForm):
    email = forms.EmailField(label="E-mail address")
    field_order = ["email", "role"]


class TransferOwnershipForm(forms.Form):
    membership = forms.TypedChoiceField(coerce=int, label="New owner", choices=[])

    def __init__(self, *args: object, candidates: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        cast(forms.ChoiceField, self.fields["membership"]).choices = candidates


class ProfileForm(forms.Form):
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)


class OTPCodeForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        label="Code",
        help_text="The 6-digit code from your authenticator app, or one of your backup codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}),
    )


class TOTPConfirmForm(forms.Form):
    """The first code of a new authenticator; replacing a working one also needs the password."""

    password = forms.CharField(
        required=False,
        label="Your password",
        help_text="Needed because this replaces your current authenticator.",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    code = forms.CharField(
        max_length=6,
        min_length=6,
        label="First code from your app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args: object, replacing: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not replacing:
            del self.fields["password"]


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “CI deploy script”.")
    tenant = forms.ChoiceField(choices=[])
    scope = forms.ChoiceField(choices=PersonalAccessToken.Scope.choices, initial=PersonalAccessToken.Scope.READ)
    expires_in_days = forms.TypedChoiceField(
        coerce=int,
        choices=[(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")],
        initial=30,
        label="Expires after",
    )

    def __init__(self, *args: object, tenants: list[tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        cast(forms.ChoiceField, self.fields["tenant"]).choices = tenants

"""django-allauth hooks: our OTP step joins allauth's login stages."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter


class AccountAdapter(DefaultAccountAdapter):
    def get_login_stages(self) -> list[str]:
        # After e-mail verification: a user with MFA is not logged in until a code passes (tenants.mfa).
        return [*super().get_login_stages(), "tenants.login_stage.OTPLoginStage"]

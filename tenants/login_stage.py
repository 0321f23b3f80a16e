"""The OTP step of allauth's login flow (enabled in tenants/adapter.py)."""

from __future__ import annotations

# allauth's stages module cannot be the first of its internals to be imported (a circular import inside
# allauth); importing the package that owns the flows first avoids it.
import allauth.account.internal  # noqa: F401
from allauth.account.stages import LoginStage, LoginStageController
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse

from tenants.mfa import user_has_mfa

__all__ = ["LoginStageController", "OTPLoginStage"]


class OTPLoginStage(LoginStage):
    """After the password: users with MFA must enter a code before the login completes."""

    key = "gatehouse_otp"
    urlname = "mfa_login"

    def handle(self) -> tuple[HttpResponse | None, bool]:
        if self.login.user is not None and user_has_mfa(self.login.user):
            return HttpResponseRedirect(reverse(self.urlname)), True
        return None, True

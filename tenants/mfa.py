"""Two-factor authentication with django-otp: the login stage, step-up and the helpers around them.

- A user *has MFA* once they confirmed a TOTP device; backup codes are a second device for when the phone is
  lost. A login by password is not complete until an OTP step (tenants/login_stage.py) passes.
- Privileged actions need a *step-up*: an OTP verification in this session at most
  ``GATEHOUSE_MFA_STEP_UP_SECONDS`` ago. ``step_up_required`` sends the user to verify and brings them back.
- Wrong codes are throttled by django-otp (each failure doubles the wait); a TOTP code is accepted once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

import django_otp
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.models import BackupCodeDevice, User

STEP_UP_SESSION_KEY = "gatehouse_mfa_verified_at"
_BACKUP_CODE = re.compile(r"^[a-z0-9]{10}$")


def backup_code_digest(code: str) -> str:
    normalized = re.sub(r"[\s-]", "", code).lower()
    return salted_hmac("gatehouse.mfa.backup-code", normalized, algorithm="sha256").hexdigest()


def totp_device(user: User, *, confirmed: bool = True) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=confirmed).first()


def user_has_mfa(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and totp_device(user) is not None


def _backup_device(user: User) -> BackupCodeDevice | None:
    return BackupCodeDevice.objects.filter(user=user, confirmed=True).first()


@dataclass(frozen=True)
class Verification:
    device: Device | None = None
    locked_until: datetime | None = None  # set when wrong codes throttled the device

    @property
    def ok(self) -> bool:
        return self.device is not None


def verify_code(user: User, code: str) -> Verification:
    """Check a 6-digit TOTP code or a backup code against the user's devices.

    Runs through ``django_otp.verify_token``, which locks the device row, so the same TOTP code submitted twice
    at once is still accepted only once.
    """
    code = code.strip().replace(" ", "")
    device: Device | None
    if code.isdigit():
        device = totp_device(user)
    elif _BACKUP_CODE.match(code.replace("-", "").lower()):
        device = _backup_device(user)
    else:
        return Verification()
    if device is None:
        return Verification()
    allowed, info = device.verify_is_allowed()
    if not allowed:
        return Verification(locked_until=(info or {}).get("locked_until"))
    return Verification(device=django_otp.verify_token(user, device.persistent_id, code))


def mark_verified(request: HttpRequest, device: Device) -> None:
    django_otp.login(request, device)
    request.session[STEP_UP_SESSION_KEY] = time.time()


def is_recently_verified(request: HttpRequest) -> bool:
    user = request.user
    if not getattr(user, "is_verified", lambda: False)():
        return False
    verified_at = request.session.get(STEP_UP_SESSION_KEY, 0)
    return time.time() - float(verified_at) <= settings.GATEHOUSE_MFA_STEP_UP_SECONDS


def safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


def _come_back_to(request: HttpRequest) -> str:
    """Where to return after verifying: this page for a GET; for a form POST, the page the form was on (a
    POST-only URL cannot be reopened, and the action is not replayed behind the user's back)."""
    if request.method == "GET":
        return request.get_full_path()
    referer = request.headers.get("referer", "")
    return referer if url_has_allowed_host_and_scheme(referer, {request.get_host()}) else reverse("portal:home")


def redirect_with_next(urlname: str, request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse(urlname)}?{urlencode({'next': _come_back_to(request)})}")


def step_up_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Privileged views: MFA must be set up, and verified within the step-up window; else verify and come back.

    A POST that arrives after the window closed is not carried out: the user verifies and lands on the same
    URL with GET (the form), to submit again knowingly.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_has_mfa(request.user):
            messages.warning(request, "This action needs two-factor authentication. Set it up first.")
            return redirect_with_next("mfa_setup", request)
        if not is_recently_verified(request):
            return redirect_with_next("mfa_verify", request)
        return view(request, *args, **kwargs)

    wrapper.step_up = True  # type: ignore[attr-defined]
    return wrapper

"""Pages about the signed-in person: home, profile, security (MFA), tokens, invitations, new tenants."""

from __future__ import annotations

import base64
from typing import cast

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.errors import DomainError
from tenants import selectors, services
from tenants.forms import (
    OTPCodeForm,
    PasswordConfirmForm,
    ProfileForm,
    TenantCreateForm,
    TokenCreateForm,
    TOTPConfirmForm,
)
from tenants.login_stage import LoginStageController, OTPLoginStage
from tenants.mfa import (
    is_recently_verified,
    mark_verified,
    safe_next,
    step_up_required,
    totp_device,
    user_has_mfa,
    verify_code,
)
from tenants.models import BackupCode, PersonalAccessToken, User
from tenants.services import Actor


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "tenants/home.html",
        {
            "memberships": selectors.memberships_of_user(user=user),
            "invitations": selectors.pending_invitations_for_email(email=user.email),
            "has_mfa": user_has_mfa(user),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def tenant_create(request: HttpRequest) -> HttpResponse:
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = services.tenant_create(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                owner=_user(request),
                actor=Actor.from_request(request),
            )
        except DomainError as error:
            form.add_error("slug", error.message)
        else:
            messages.success(request, f"{tenant.name} is ready. You are its owner.")
            return redirect("tenants:overview", tenant_slug=tenant.slug)
    return render(request, "tenants/tenant_create.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ProfileForm(request.POST or None, initial={"first_name": user.first_name, "last_name": user.last_name})
    if request.method == "POST" and form.is_valid():
        services.user_update_profile(user=user, actor=Actor.from_request(request), **form.cleaned_data)
        messages.success(request, "Your profile is saved.")
        return redirect("account_profile")
    return render(request, "tenants/profile.html", {"form": form})


@login_required
def security(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "tenants/security.html",
        {
            "device": totp_device(user),
            "backup_codes_left": _backup_codes_left(user),
            "recently_verified": is_recently_verified(request),
        },
    )


def _backup_codes_left(user: User) -> int:
    return BackupCode.objects.filter(device__user=user).count()


def _qr_svg(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_setup(request: HttpRequest) -> HttpResponse:
    """Enroll (or re-enroll) an authenticator app: scan, confirm with a first code, save the backup codes."""
    user = _user(request)
    replacing = user_has_mfa(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if request.method == "GET" or device is None:
        device = services.mfa_totp_start(user=user)
    form = TOTPConfirmForm(request.POST or None, replacing=replacing)
    if request.method == "POST" and form.is_valid():
        try:
            codes = services.mfa_totp_confirm(
                user=user,
                device=device,
                code=form.cleaned_data["code"],
                password=form.cleaned_data.get("password"),
                actor=Actor.from_request(request),
            )
        except DomainError as error:
            form.add_error("code", error.message)
        else:
            device.refresh_from_db()
            mark_verified(request, device)
            messages.success(request, "Two-factor authentication is on.")
            return render(
                request,
                "tenants/backup_codes.html",
                {"codes": codes, "next": safe_next(request, reverse("account_security"))},
            )
    return render(
        request,
        "tenants/mfa_setup.html",
        {
            "form": form,
            "qr_svg": _qr_svg(device.config_url),
            "secret": base64.b32encode(device.bin_key).decode().rstrip("="),
            "next": request.GET.get("next", ""),
        },
    )


def _verify_form(request: HttpRequest, user: User) -> tuple[OTPCodeForm, object | None]:
    form = OTPCodeForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return form, None
    result = verify_code(user, form.cleaned_data["code"])
    if result.locked_until is not None:
        form.add_error("code", "Too many wrong codes. Wait a few seconds, then try again.")
    elif not result.ok:
        form.add_error("code", "That code is not valid (each code works once). Try the next one.")
    return form, result.device


@never_cache
@require_http_methods(["GET", "POST"])
def mfa_login(request: HttpRequest) -> HttpResponse:
    """The OTP step of a login: the password was right, the session is not logged in yet."""
    if request.user.is_authenticated:
        return redirect("portal:home")
    stage = LoginStageController.enter(request, OTPLoginStage.key)
    if stage is None or stage.login.user is None:
        return redirect("account_login")
    form, device = _verify_form(request, stage.login.user)
    if device is not None:
        response = stage.exit()
        if request.user.is_authenticated:
            mark_verified(request, device)
        return response
    return render(request, "tenants/mfa_login.html", {"form": form})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    """Step-up: confirm it is still you before a privileged action, then go back to it."""
    user = _user(request)
    if not user_has_mfa(user):
        return redirect(f"{reverse('mfa_setup')}?{urlencode({'next': safe_next(request, '')})}")
    form, device = _verify_form(request, user)
    if device is not None:
        mark_verified(request, device)
        return redirect(safe_next(request, reverse("portal:home")))
    return render(request, "tenants/mfa_verify.html", {"form": form, "next": safe_next(request, "")})


@login_required
@require_POST
@step_up_required
def mfa_backup_codes(request: HttpRequest) -> HttpResponse:
    codes = services.mfa_backup_codes_regenerate(user=_user(request), actor=Actor.from_request(request))
    messages.success(request, "New backup codes are ready; the old ones no longer work.")
    return render(request, "tenants/backup_codes.html", {"codes": codes, "next": reverse("account_security")})


@login_required
@require_http_methods(["GET", "POST"])
def mfa_disable(request: HttpRequest) -> HttpResponse:
    form = PasswordConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.mfa_disable(
                user=_user(request), password=form.cleaned_data["password"], actor=Actor.from_request(request)
            )
        except DomainError as error:
            form.add_error("password", error.message)
        else:
            messages.success(request, "Two-factor authentication is off. Privileged actions need it again.")
            return redirect("account_security")
    return render(request, "tenants/mfa_disable.html", {"form": form})


@login_required
@step_up_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    memberships = selectors.memberships_of_user(user=user)
    form = TokenCreateForm(request.POST or None, tenants=[(m.tenant.slug, m.tenant.name) for m in memberships])
    created = None
    if request.method == "POST" and form.is_valid():
        tenant = next(m.tenant for m in memberships if m.tenant.slug == form.cleaned_data["tenant"])
        try:
            _, created = services.pat_create(
                user=user,
                tenant=tenant,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                expires_in_days=form.cleaned_data["expires_in_days"],
                actor=Actor.from_request(request),
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            form = TokenCreateForm(tenants=[(m.tenant.slug, m.tenant.name) for m in memberships])
    return render(
        request,
        "tenants/tokens.html",
        {"form": form, "tokens": selectors.tokens_of_user(user=user), "created": created},
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(PersonalAccessToken, pk=token_id, user=_user(request))
    services.pat_revoke(token=token, actor=Actor.from_request(request))
    messages.success(request, f"Token “{token.name}” is revoked.")
    return redirect("account_tokens")


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_by_token(token)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.method == "POST":
        try:
            membership = services.invitation_accept(token=token, user=_user(request), actor=Actor.from_request(request))
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Welcome to {membership.tenant.name}! You joined as {membership.role}.")
            return redirect("tenants:overview", tenant_slug=membership.tenant.slug)
    return render(request, "tenants/invitation.html", {"invitation": invitation})

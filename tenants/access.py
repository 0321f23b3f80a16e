"""Tenant resolution and permission checks for pages (``tenant_view``) — one mechanism for every /t/<slug>/ URL.

The tenant comes from the URL, is resolved once per request, and is attached as ``request.tenant_ctx``.
Anonymous → login; not a member (or no such tenant) → 404, the same answer either way; a member whose role lacks
the permission → 403; privileged permissions also need a fresh MFA step-up (tenants/mfa.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render

from tenants.mfa import is_recently_verified, redirect_with_next, user_has_mfa
from tenants.models import Membership, Tenant, User
from tenants.permissions import PRIVILEGED, Perm, role_has


@dataclass(frozen=True)
class TenantContext:
    tenant: Tenant
    membership: Membership

    def can(self, perm: Perm) -> bool:
        return role_has(self.membership.role, perm)


def resolve_tenant(user: User, slug: str) -> TenantContext | None:
    """The tenant with this slug if ``user`` is a member of it; None for a missing tenant and a foreign one."""
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        return None
    membership = Membership.objects.for_tenant(tenant).filter(user=user).select_related("user").first()
    if membership is None:
        return None
    return TenantContext(tenant=tenant, membership=membership)


View = Callable[..., HttpResponseBase]


def tenant_view(permission: Perm, *, post: Perm | None = None) -> Callable[[View], View]:
    """Guard a view under /t/<tenant_slug>/: ``permission`` for GET, ``post`` (default: the same) for POST."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            ctx = resolve_tenant(request.user, tenant_slug)
            if ctx is None:
                raise Http404("No such tenant.")
            if ctx.tenant.require_mfa and not user_has_mfa(request.user):
                messages.warning(request, f"{ctx.tenant.name} requires two-factor authentication. Set it up first.")
                return redirect_with_next("mfa_setup", request)
            needed = post if request.method == "POST" and post is not None else permission
            if not ctx.can(needed):
                raise PermissionDenied(f"Your role ({ctx.membership.role}) cannot do this.")
            if needed in PRIVILEGED:
                if not user_has_mfa(request.user):
                    messages.warning(request, "This action needs two-factor authentication. Set it up first.")
                    return redirect_with_next("mfa_setup", request)
                if not is_recently_verified(request):
                    return redirect_with_next("mfa_verify", request)
            request.tenant_ctx = ctx  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)

        wrapper.tenant_permission = permission  # type: ignore[attr-defined]
        wrapper.tenant_post_permission = post or permission  # type: ignore[attr-defined]
        return wrapper

    return decorator


def tenant_context(request: HttpRequest) -> TenantContext:
    """The tenant resolved by ``tenant_view`` for this request."""
    return request.tenant_ctx  # type: ignore[attr-defined]


def render_tenant_page(
    request: HttpRequest, template: str, context: dict[str, object], status: int = 200
) -> HttpResponse:
    """Render a /t/<slug>/ page with what tenant_base.html needs: the tenant, the membership, the permissions."""
    ctx = tenant_context(request)
    perms = {perm.value for perm in Perm if ctx.can(perm)}
    return render(
        request,
        template,
        {"tenant": ctx.tenant, "membership": ctx.membership, "tenant_perms": perms, **context},
        status=status,
    )

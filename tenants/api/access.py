"""Tenant scoping for management-API views: the API twin of tenants.access.tenant_view.

The tenant comes from the URL (``/api/v1/tenants/<tenant_slug>/…``). A personal access token is bound to one
tenant: any other tenant's URL answers 404, as it does for non-members. Read-only tokens may not write.
Privileged permissions over a browser session need a recent MFA verification; a token carries the step-up of
its creation.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from tenants.access import TenantContext, resolve_tenant
from tenants.mfa import is_recently_verified
from tenants.models import PersonalAccessToken
from tenants.permissions import PRIVILEGED, Perm

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class StepUpRequired(exceptions.PermissionDenied):
    default_detail = "This action needs a recent two-factor verification: verify in the web UI, or use a token."
    default_code = "mfa_step_up_required"


class TenantAPIView(APIView):
    """Base of every tenant-scoped API view. Declare ``permissions`` per HTTP method."""

    permissions: ClassVar[dict[str, Perm]] = {}
    tenant_ctx: TenantContext

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, IsAuthenticated, throttles
        token = request.auth if isinstance(request.auth, PersonalAccessToken) else None
        ctx = resolve_tenant(request.user, kwargs["tenant_slug"])  # type: ignore[arg-type]
        if ctx is None or (token is not None and token.tenant_id != ctx.tenant.pk):
            raise exceptions.NotFound("No such tenant.")
        if token is not None and token.scope == PersonalAccessToken.Scope.READ and request.method not in SAFE_METHODS:
            raise exceptions.PermissionDenied("This token is read-only.")
        needed = self.permissions.get(request.method or "GET")
        if needed is None or not ctx.can(needed):
            raise exceptions.PermissionDenied(f"Your role ({ctx.membership.role}) cannot do this.")
        if needed in PRIVILEGED and token is None and not is_recently_verified(request._request):
            raise StepUpRequired()
        self.tenant_ctx = ctx

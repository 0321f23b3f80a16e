from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def site(request: HttpRequest) -> dict[str, object]:
    """What every page template may use, each part queried only when a page renders it:

    - ``gateway_base_url``: the public base URL for code samples;
    - ``my_memberships``: the signed-in user's tenants (the tenant switcher);
    - ``current_tenant``: the tenant of the current /t/<slug>/ page;
    - ``approvals_inbox``: for approvers, what waits for a decision (the badge in the top bar);
    - ``approvals_badge``: what waits in the current tenant.
    """
    from subscriptions.selectors import approvals_count
    from tenants.permissions import Perm, role_has
    from tenants.selectors import memberships_of_user

    ctx = getattr(request, "tenant_ctx", None)
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    memberships = SimpleLazyObject(lambda: list(memberships_of_user(user=user)) if signed_in else [])  # type: ignore[arg-type]

    def inbox() -> dict[str, Any]:
        waiting = [
            (m.tenant, approvals_count(tenant=m.tenant))
            for m in memberships
            if role_has(m.role, Perm.SUBSCRIPTIONS_APPROVE)
        ]
        busy = [(tenant, count) for tenant, count in waiting if count]
        first = busy[0][0] if busy else (waiting[0][0] if waiting else None)
        return {"is_approver": bool(waiting), "total": sum(c for _, c in busy), "tenant": first}

    return {
        "gateway_base_url": settings.GATEHOUSE_PUBLIC_BASE_URL,
        "my_memberships": memberships,
        "current_tenant": ctx.tenant if ctx else None,
        "approvals_inbox": SimpleLazyObject(inbox),
        "approvals_badge": SimpleLazyObject(lambda: approvals_count(tenant=ctx.tenant) if ctx else 0),
    }

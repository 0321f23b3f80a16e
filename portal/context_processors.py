from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def site(request: HttpRequest) -> dict[str, object]:
    """What every page template may use: the public base URL, the signed-in user's tenants (for the switcher,
    queried only when a page renders it) and the tenant of the current /t/<slug>/ page."""
    from tenants.selectors import memberships_of_user

    ctx = getattr(request, "tenant_ctx", None)
    user = getattr(request, "user", None)
    return {
        "gateway_base_url": settings.GATEHOUSE_PUBLIC_BASE_URL,
        "my_memberships": SimpleLazyObject(
            lambda: list(memberships_of_user(user=user)) if user is not None and user.is_authenticated else []
        ),
        "current_tenant": ctx.tenant if ctx else None,
    }

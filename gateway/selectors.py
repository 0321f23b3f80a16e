"""Reads of the catalog."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from gateway.models import AiApi, ApiVersion, Plan
from tenants.models import Membership, User

SERVING = (ApiVersion.Status.PUBLISHED, ApiVersion.Status.DEPRECATED)


def _member_tenant_ids(user: User | None) -> list[int]:
    if user is None or not user.is_authenticated:
        return []
    return list(Membership.all_tenants.filter(user=user).values_list("tenant_id", flat=True))


def catalog_for(*, user: User | None, query: str = "", kind: str = "") -> QuerySet[AiApi]:
    """APIs listed to this viewer: public ones with a serving version, plus their own tenants' APIs."""
    own = _member_tenant_ids(user)
    apis = (
        AiApi.all_tenants.filter(Q(visibility=AiApi.Visibility.PUBLIC) | Q(tenant_id__in=own))
        .filter(Q(versions__status__in=SERVING) | Q(tenant_id__in=own))
        .select_related("tenant")
        .distinct()
    )
    if kind:
        apis = apis.filter(kind=kind)
    for word in query.split():
        apis = apis.filter(
            Q(name__icontains=word)
            | Q(summary__icontains=word)
            | Q(slug__icontains=word)
            | Q(tenant__name__icontains=word)
            | Q(tenant__slug__icontains=word)
            | Q(tags__icontains=word.lower())
        )
    return apis.order_by("name")


def api_for_viewer(*, user: User | None, publisher_slug: str, api_slug: str) -> AiApi | None:
    """One API as this viewer may see it: private ones only to the publisher's members (else None → 404)."""
    api = AiApi.all_tenants.select_related("tenant").filter(tenant__slug=publisher_slug, slug=api_slug).first()
    if api is None:
        return None
    if api.visibility == AiApi.Visibility.PRIVATE and api.tenant_id not in _member_tenant_ids(user):
        return None
    return api


def serving_versions(*, api: AiApi) -> list[ApiVersion]:
    return list(api.versions.filter(status__in=SERVING).order_by("-created_at"))


def active_plans(*, api: AiApi) -> QuerySet[Plan]:
    return api.plans.filter(is_active=True).order_by("name")

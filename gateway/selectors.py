"""Reads of the catalog."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from gateway.models import AiApi, ApiVersion, Plan, Policy, PolicyDocumentVersion
from gateway.policy_documents import FORMAT, plan_entry
from tenants.models import Membership, Tenant, User

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


def policy_document_of(*, tenant: Tenant) -> dict[str, Any]:
    """The tenant's plans and policies as a policy document (gateway/policy_documents.py): every API it
    publishes with all its plans; the policies it set, and only those."""
    from subscriptions.models import Application

    own = {(p.level, p.api_id, p.version_id, p.application_id, p.key_id): p.rules for p in tenant.policies.all()}
    publisher: dict[str, Any] = {}
    if (rules := own.get((Policy.Level.PUBLISHER, None, None, None, None))) is not None:
        publisher["policy"] = rules
    apis: dict[str, Any] = {}
    for api in AiApi.all_tenants.filter(tenant=tenant).prefetch_related("versions", "plans").order_by("slug"):
        entry: dict[str, Any] = {}
        if (rules := own.get((Policy.Level.API, api.pk, None, None, None))) is not None:
            entry["policy"] = rules
        versions = {
            v.version: own[(Policy.Level.VERSION, None, v.pk, None, None)]
            for v in sorted(api.versions.all(), key=lambda v: v.version)
            if (Policy.Level.VERSION, None, v.pk, None, None) in own
        }
        if versions:
            entry["versions"] = versions
        entry["plans"] = {plan.slug: plan_entry(plan) for plan in sorted(api.plans.all(), key=lambda p: p.slug)}
        apis[api.slug] = entry
    if apis:
        publisher["apis"] = apis
    consumer: dict[str, Any] = {}
    if (rules := own.get((Policy.Level.CONSUMER, None, None, None, None))) is not None:
        consumer["policy"] = rules
    applications: dict[str, Any] = {}
    for app in Application.all_tenants.filter(tenant=tenant).prefetch_related("keys").order_by("slug"):
        entry = {}
        if (rules := own.get((Policy.Level.APPLICATION, None, None, app.pk, None))) is not None:
            entry["policy"] = rules
        keys = {
            key.public_id: own[(Policy.Level.KEY, None, None, None, key.pk)]
            for key in sorted(app.keys.all(), key=lambda k: k.public_id)
            if (Policy.Level.KEY, None, None, None, key.pk) in own
        }
        if keys:
            entry["keys"] = keys
        if entry:
            applications[app.slug] = entry
    if applications:
        consumer["applications"] = applications
    document: dict[str, Any] = {"gatehouse": FORMAT, "tenant": tenant.slug}
    if publisher:
        document["publisher"] = publisher
    if consumer:
        document["consumer"] = consumer
    return document


def policy_document_versions(*, tenant: Tenant) -> QuerySet[PolicyDocumentVersion]:
    return PolicyDocumentVersion.objects.filter(tenant=tenant).select_related("created_by").order_by("-number")

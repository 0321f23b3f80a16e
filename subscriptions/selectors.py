"""Reads of applications, subscriptions and keys — including the access snapshot the gateway consults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from gateway.models import ApiVersion
from gateway.proxy.limits import Limit, per_minute
from subscriptions.models import ApiKey, Application, ChangeRequest, Subscription
from tenants.models import Tenant

SERVING = (ApiVersion.Status.PUBLISHED, ApiVersion.Status.DEPRECATED)


@dataclass(frozen=True)
class ApiGrant:
    """What one approved subscription lets a key call. Plain data: safe to cache in another process."""

    api_id: int
    api_slug: str
    publisher_id: int
    publisher_slug: str
    kind: str
    subscription_id: int
    plan_slug: str
    models: tuple[str, ...]
    requests_per_minute: int | None
    tokens_per_minute: int | None
    quota_period: str
    token_quota: int | None
    cost_quota_micros: int | None
    # Model aliases served only by deprecated versions → their sunset (answers carry deprecation headers).
    sunsets: tuple[tuple[str, datetime | None], ...] = ()
    # Model aliases of retired versions → the alias that replaces them (answers are 410 naming it).
    retired: tuple[tuple[str, str], ...] = ()
    # The rate limits a call through this grant counts against, with where each was set.
    limits: tuple[Limit, ...] = ()

    def sunset_of(self, model: str) -> tuple[bool, datetime | None]:
        for alias, sunset in self.sunsets:
            if alias == model:
                return True, sunset
        return False, None

    def successor_of(self, model: str) -> str | None:
        return next((successor for alias, successor in self.retired if alias == model), None)


@dataclass(frozen=True)
class KeyAccess:
    """Everything the gateway needs to decide about one key, without the ORM."""

    public_id: str
    digest: str
    application_id: int
    application_slug: str
    consumer_tenant_id: int
    consumer_slug: str
    expires_at: datetime | None
    valid_until: datetime | None
    ip_allowlist: tuple[str, ...]
    grants: tuple[ApiGrant, ...]

    def is_usable(self, now: datetime) -> bool:
        return (self.expires_at is None or self.expires_at > now) and (
            self.valid_until is None or self.valid_until > now
        )

    def grant_for_model(self, model: str) -> ApiGrant | None:
        return next((g for g in self.grants if model in g.models), None)

    def grant_for_api(self, api_id: int) -> ApiGrant | None:
        return next((g for g in self.grants if g.api_id == api_id), None)


def _grant(subscription: Subscription) -> ApiGrant:
    plan, api = subscription.plan, subscription.api
    aliases = {v.model_alias for v in api.versions.all() if v.status in SERVING and v.model_alias}
    allowed = set(plan.allowed_models) or aliases
    # A prompt API is called by its own URL, never by model name: its model alias grants nothing directly.
    models = () if api.kind == "prompt" else tuple(sorted((aliases & allowed) | set(subscription.extra_models)))
    quota = None if plan.token_quota is None else plan.token_quota + subscription.extra_token_quota
    versions = sorted(api.versions.all(), key=lambda v: v.created_at)
    published = {v.model_alias for v in versions if v.status == ApiVersion.Status.PUBLISHED}
    sunsets = tuple(
        (v.model_alias, v.sunset_at)
        for v in versions
        if v.status == ApiVersion.Status.DEPRECATED and v.model_alias and v.model_alias not in published
    )
    newest = next((v.model_alias for v in reversed(versions) if v.status in SERVING and v.model_alias), "")
    retired = tuple(
        (v.model_alias, newest)
        for v in versions
        if v.status == ApiVersion.Status.RETIRED and v.model_alias and v.model_alias not in aliases and newest
    )
    return ApiGrant(
        api_id=api.pk,
        api_slug=api.slug,
        publisher_id=api.tenant_id,
        publisher_slug=api.tenant.slug,
        kind=api.kind,
        subscription_id=subscription.pk,
        plan_slug=plan.slug,
        models=models,
        requests_per_minute=plan.requests_per_minute,
        tokens_per_minute=plan.tokens_per_minute,
        quota_period=plan.quota_period,
        token_quota=quota,
        cost_quota_micros=plan.cost_quota_micros,
        sunsets=() if api.kind == "prompt" else sunsets,
        retired=() if api.kind == "prompt" else retired,
        limits=subscription_limits(subscription),
    )


def subscription_limits(subscription: Subscription) -> tuple[Limit, ...]:
    """The rate limits calls through this subscription count against, with where each was set.

    The gateway enforces exactly these (they ride in the key's snapshot) and the application page lists them.
    Today: the plan's per-minute limits, counted per subscription.
    """
    plan = subscription.plan
    return per_minute(
        "subscription", subscription.pk, plan.requests_per_minute, plan.tokens_per_minute, f"plan {plan.name}"
    )


def key_access_snapshot(public_id: str) -> KeyAccess | None:
    """The access of one key as plain data, or None when it does not exist or is revoked.

    Time limits (expiry, rotation grace) are carried, not applied, so a cached snapshot stays correct as time
    passes; every change that could alter the answer publishes ``portal.events.access_changed``.
    """
    key = ApiKey.objects.select_related("application__tenant").filter(public_id=public_id, revoked_at=None).first()
    if key is None:
        return None
    subscriptions = (
        Subscription.objects.filter(application=key.application, state=Subscription.State.APPROVED)
        .select_related("plan", "api__tenant")
        .prefetch_related("api__versions")
    )
    if key.scopes:
        subscriptions = subscriptions.filter(api_id__in=key.scopes)
    application = key.application
    return KeyAccess(
        public_id=key.public_id,
        digest=key.digest,
        application_id=application.pk,
        application_slug=application.slug,
        consumer_tenant_id=application.tenant_id,
        consumer_slug=application.tenant.slug,
        expires_at=key.expires_at,
        valid_until=key.valid_until,
        ip_allowlist=tuple(key.ip_allowlist),
        grants=tuple(_grant(s) for s in subscriptions),
    )


def _one_or_404(queryset: QuerySet[Any], what: str) -> Any:
    found = queryset.first()
    if found is None:
        raise Http404(f"No such {what}.")
    return found


def subscription_of_consumer_or_404(*, tenant: Tenant, pk: int) -> Subscription:
    """One of the tenant's own subscriptions; someone else's and a missing one are the same 404."""
    return _one_or_404(
        Subscription.objects.filter(consumer=tenant, pk=pk).select_related("api", "plan", "application"),
        "subscription",
    )


def subscription_of_publisher_or_404(*, tenant: Tenant, pk: int) -> Subscription:
    """A subscription to one of the tenant's APIs (the publisher's side)."""
    return _one_or_404(Subscription.objects.filter(publisher=tenant, pk=pk).select_related("api"), "subscription")


def change_request_of_publisher_or_404(*, tenant: Tenant, pk: int) -> ChangeRequest:
    return _one_or_404(ChangeRequest.objects.filter(subscription__publisher=tenant, pk=pk), "change request")


def applications_of(*, tenant: Tenant) -> QuerySet[Application]:
    return Application.objects.for_tenant(tenant).prefetch_related("subscriptions__api", "keys")


def subscriptions_pending_for_publisher(*, tenant: Tenant) -> QuerySet[Subscription]:
    return Subscription.objects.filter(publisher=tenant, state=Subscription.State.PENDING).select_related(
        "application__tenant", "api", "plan", "requested_by"
    )


def change_requests_pending_for_publisher(*, tenant: Tenant) -> QuerySet[ChangeRequest]:
    return ChangeRequest.objects.filter(
        subscription__publisher=tenant, state=ChangeRequest.State.PENDING
    ).select_related("subscription__application__tenant", "subscription__api", "new_plan", "requested_by")


def approvals_count(*, tenant: Tenant) -> int:
    """The number on the inbox badge."""
    return (
        subscriptions_pending_for_publisher(tenant=tenant).count()
        + change_requests_pending_for_publisher(tenant=tenant).count()
    )

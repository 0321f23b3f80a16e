"""Reads of applications, subscriptions and keys — including the access snapshot the gateway consults."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from gateway.models import ApiVersion, Policy
from gateway.policies import EffectivePolicy, Layer, effective_policy, plan_rules
from gateway.proxy.limits import Quota, held_now
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
    # Model aliases served only by deprecated versions → their sunset (answers carry deprecation headers).
    sunsets: tuple[tuple[str, datetime | None], ...] = ()
    # Model aliases of retired versions → the alias that replaces them (answers are 410 naming it).
    retired: tuple[tuple[str, str], ...] = ()
    # The limits and quotas a call through this grant counts against, with where each was set
    # (gateway/policies.py); a version with its own policy has its own here, by model alias.
    policy: EffectivePolicy = field(default_factory=EffectivePolicy)
    alias_policies: tuple[tuple[str, EffectivePolicy], ...] = ()

    def policy_for(self, model: str) -> EffectivePolicy:
        for alias, policy in self.alias_policies:
            if alias == model:
                return policy
        return self.policy

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
    consumer_timezone: str
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


class _Policies:
    """The policies that can apply to one key's calls, loaded in one query and sorted by level."""

    def __init__(self, *, application: Application, key: ApiKey | None, subscriptions: list[Subscription]) -> None:
        apis = {s.api for s in subscriptions}
        found = Policy.objects.filter(
            Q(level=Policy.Level.PLATFORM)
            | Q(level=Policy.Level.PUBLISHER, tenant_id__in={api.tenant_id for api in apis})
            | Q(level=Policy.Level.API, api__in=apis)
            | Q(level=Policy.Level.VERSION, version__api__in=apis)
            | Q(level=Policy.Level.CONSUMER, tenant_id=application.tenant_id)
            | Q(level=Policy.Level.APPLICATION, application=application)
            | (Q(level=Policy.Level.KEY, key=key) if key is not None else Q(pk__in=[]))
        ).select_related("tenant", "api__tenant", "version__api__tenant", "application", "key")
        self.by_level: dict[tuple[str, int | None], Policy] = {}
        for policy in found:
            # Publisher-side levels may hold several policies (one per publisher, API, version); the consumer's
            # side holds at most one per level for one key.
            targets: dict[str, int | None] = {
                Policy.Level.PUBLISHER: policy.tenant_id,
                Policy.Level.API: policy.api_id,
                Policy.Level.VERSION: policy.version_id,
            }
            target = targets.get(policy.level)
            self.by_level[(policy.level, target)] = policy

    def _layer(self, level: str, target: int | None) -> list[Layer]:
        policy = self.by_level.get((level, target))
        return [(policy.label, policy.rules)] if policy is not None else []

    def consumer_layers(self) -> list[tuple[str, object, Layer]]:
        layers: list[tuple[str, object, Layer]] = []
        for level, scope in ((Policy.Level.CONSUMER, "tenant"), (Policy.Level.APPLICATION, "application")):
            policy = self.by_level.get((level, None))
            if policy is not None:
                subject = policy.tenant_id if scope == "tenant" else policy.application_id
                layers.append((scope, subject, (policy.label, policy.rules)))
        key_policy = self.by_level.get((Policy.Level.KEY, None))
        if key_policy is not None and key_policy.key is not None:
            layers.append(("key", key_policy.key.public_id, (key_policy.label, key_policy.rules)))
        return layers

    def for_subscription(self, subscription: Subscription, version: ApiVersion | None = None) -> EffectivePolicy:
        api, plan = subscription.api, subscription.plan
        layers = [
            *self._layer(Policy.Level.PLATFORM, None),
            *self._layer(Policy.Level.PUBLISHER, api.tenant_id),
            *self._layer(Policy.Level.API, api.pk),
            *(self._layer(Policy.Level.VERSION, version.pk) if version is not None else []),
            (f"plan {plan.name}", plan_rules(plan, subscription.extra_token_quota)),
        ]
        tenant = subscription.application.tenant
        return effective_policy(
            subscription_id=subscription.pk,
            publisher_layers=layers,
            consumer_layers=self.consumer_layers(),
            tenant_id=tenant.pk,
            timezone=tenant.timezone,
        )

    def versions_with_policy(self) -> set[int]:
        return {target for (level, target) in self.by_level if level == Policy.Level.VERSION and target is not None}


def _grant(subscription: Subscription, policies: _Policies) -> ApiGrant:
    plan, api = subscription.plan, subscription.api
    aliases = {v.model_alias for v in api.versions.all() if v.status in SERVING and v.model_alias}
    allowed = set(plan.allowed_models) or aliases
    # A prompt API is called by its own URL, never by model name: its model alias grants nothing directly.
    models = () if api.kind == "prompt" else tuple(sorted((aliases & allowed) | set(subscription.extra_models)))
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
    own = policies.versions_with_policy()
    alias_policies = tuple(
        (v.model_alias, policies.for_subscription(subscription, v))
        for v in versions
        if v.pk in own and v.status in SERVING and v.model_alias
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
        sunsets=() if api.kind == "prompt" else sunsets,
        retired=() if api.kind == "prompt" else retired,
        policy=policies.for_subscription(subscription),
        alias_policies=alias_policies,
    )


def subscription_policy(subscription: Subscription) -> EffectivePolicy:
    """The limits and quotas calls through this subscription count against (without any key's own policy),
    with where each was set — what the application page lists, computed as the gateway computes it."""
    policies = _Policies(application=subscription.application, key=None, subscriptions=[subscription])
    return policies.for_subscription(subscription)


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
        .select_related("plan", "api__tenant", "application__tenant")
        .prefetch_related("api__versions")
    )
    if key.scopes:
        subscriptions = subscriptions.filter(api_id__in=key.scopes)
    application = key.application
    approved = list(subscriptions)
    policies = _Policies(application=application, key=key, subscriptions=approved)
    return KeyAccess(
        public_id=key.public_id,
        digest=key.digest,
        application_id=application.pk,
        application_slug=application.slug,
        consumer_tenant_id=application.tenant_id,
        consumer_slug=application.tenant.slug,
        consumer_timezone=application.tenant.timezone,
        expires_at=key.expires_at,
        valid_until=key.valid_until,
        ip_allowlist=tuple(key.ip_allowlist),
        grants=tuple(_grant(s, policies) for s in approved),
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


@dataclass(frozen=True)
class QuotaStanding:
    """A quota and where it stands in its current period (None: the counters cannot be read right now)."""

    quota: Quota
    period: str  # e.g. "20261127"
    used: int | None
    reserved: int | None

    @property
    def percent(self) -> int | None:
        return None if self.used is None else min(100, self.used * 100 // max(1, self.quota.limit))


@dataclass(frozen=True)
class GrantLimits:
    """For the key page: one API the key may call, and everything that limits those calls."""

    grant: ApiGrant
    policy: EffectivePolicy
    quotas: tuple[QuotaStanding, ...]


def key_limits(key: ApiKey) -> list[GrantLimits]:
    """What limits a key's calls — the gateway's own snapshot of the key, so the page cannot disagree with it —
    and how much of each quota is used this period. Empty for a revoked key."""
    access = key_access_snapshot(key.public_id)
    if access is None:
        return []
    now = time.time()
    found = []
    for grant in access.grants:
        standings = []
        for quota in grant.policy.quotas:
            period = quota.at(now)
            held = held_now(period)
            standings.append(QuotaStanding(quota, period.label, *(held or (None, None))))
        found.append(GrantLimits(grant, grant.policy, tuple(standings)))
    return found

"""Writes of the catalog (APIs, versions, plans) and of providers and deployments. Each writes an audit event in
the same transaction."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from gateway import prompts
from gateway.models import AiApi, ApiVersion, Deployment, Plan, Provider, Route
from portal import events
from portal.crypto import decrypt, encrypt
from portal.errors import DomainError
from portal.http_client import OutboundBlocked, check_url
from tenants.models import Tenant
from tenants.services import Actor, audit_record

VERSION_TRANSITIONS: dict[str, set[str]] = {
    ApiVersion.Status.DRAFT: {ApiVersion.Status.PUBLISHED},
    ApiVersion.Status.PUBLISHED: {ApiVersion.Status.DEPRECATED, ApiVersion.Status.RETIRED},
    ApiVersion.Status.DEPRECATED: {ApiVersion.Status.PUBLISHED, ApiVersion.Status.RETIRED},
    ApiVersion.Status.RETIRED: set(),
}


@transaction.atomic
def api_create(
    *,
    tenant: Tenant,
    slug: str,
    name: str,
    kind: str,
    actor: Actor,
    summary: str = "",
    description: str = "",
    tags: list[str] | None = None,
    visibility: str = AiApi.Visibility.PUBLIC,
    requires_approval: bool = True,
) -> AiApi:
    try:
        with transaction.atomic():
            api = AiApi.all_tenants.create(
                tenant=tenant,
                slug=slug,
                name=name,
                kind=AiApi.Kind(kind),
                summary=summary,
                description=description,
                tags=sorted({t.strip().lower() for t in tags or [] if t.strip()}),
                visibility=AiApi.Visibility(visibility),
                requires_approval=requires_approval,
            )
    except IntegrityError:
        raise DomainError(f"{tenant.name} already has an API called “{slug}”.", code="slug_taken") from None
    audit_record(actor=actor, action="api.created", tenant=tenant, target=api, details={"slug": slug, "kind": kind})
    return api


@transaction.atomic
def api_update(*, api: AiApi, actor: Actor, **changes: Any) -> AiApi:
    allowed = {"name", "summary", "description", "tags", "visibility", "requires_approval"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainError(f"These fields cannot be changed here: {', '.join(sorted(unknown))}.")
    diff = {k: {"from": getattr(api, k), "to": v} for k, v in changes.items() if getattr(api, k) != v}
    for field, value in changes.items():
        setattr(api, field, value)
    api.save()
    if "visibility" in diff:
        events.routes_changed(api_ids=[api.pk])  # gateways tell "not subscribed" from "no such model" by it
    if diff:
        audit_record(
            actor=actor, action="api.updated", tenant=api.tenant, target=api, details={"changed": sorted(diff)}
        )
    return api


@transaction.atomic
def version_create(
    *,
    api: AiApi,
    version: str,
    actor: Actor,
    model_alias: str = "",
    prompt_template: str = "",
    variables_schema: dict[str, Any] | None = None,
) -> ApiVersion:
    if api.kind == AiApi.Kind.PROMPT:
        try:
            prompts.check_template(prompt_template, variables_schema or {})
        except prompts.PromptError as error:
            raise DomainError(str(error), code="invalid_prompt") from None
        if not model_alias:
            raise DomainError("A prompt API version needs the model alias it runs on (its routes serve that alias).")
    elif not model_alias:
        raise DomainError("A chat or embeddings version needs the model alias clients will send.")
    try:
        with transaction.atomic():
            created = ApiVersion.objects.create(
                api=api,
                version=version,
                model_alias=model_alias,
                prompt_template=prompt_template,
                variables_schema=variables_schema or {},
            )
    except IntegrityError:
        raise DomainError(f"{api.name} already has a version {version}.", code="version_taken") from None
    audit_record(
        actor=actor, action="api.version_created", tenant=api.tenant, target=created, details={"version": version}
    )
    return created


@transaction.atomic
def version_set_status(
    *, version: ApiVersion, status: str, actor: Actor, sunset_at: datetime | None = None
) -> ApiVersion:
    """Move a version along draft → published → deprecated (needs a sunset date) → retired."""
    target = ApiVersion.Status(status)
    if target not in VERSION_TRANSITIONS[ApiVersion.Status(version.status)]:
        raise DomainError(f"A {version.status} version cannot become {target}.", code="illegal_transition")
    if target == ApiVersion.Status.DEPRECATED:
        if sunset_at is None or sunset_at <= timezone.now():
            raise DomainError("Deprecating a version needs a sunset date in the future.")
        version.sunset_at = sunset_at
    if target == ApiVersion.Status.PUBLISHED and version.published_at is None:
        version.published_at = timezone.now()
    previous, version.status = version.status, target
    version.save()
    # Which aliases are served, deprecated or retired is part of every subscriber key's snapshot.
    subscribers = list(version.api.subscriptions.values_list("application_id", flat=True).distinct())
    events.access_changed(application_ids=subscribers)
    events.routes_changed(api_ids=[version.api_id])
    audit_record(
        actor=actor,
        action=f"api.version_{target}",
        tenant=version.api.tenant,
        target=version,
        details={
            "version": version.version,
            "from": previous,
            "sunset_at": sunset_at.isoformat() if sunset_at else None,
        },
    )
    return version


@transaction.atomic
def plan_create(*, api: AiApi, slug: str, name: str, actor: Actor, **limits: Any) -> Plan:
    fields = {
        "description",
        "requests_per_minute",
        "tokens_per_minute",
        "quota_period",
        "token_quota",
        "cost_quota_micros",
        "allowed_models",
        "requires_approval",
    }
    unknown = set(limits) - fields
    if unknown:
        raise DomainError(f"Unknown plan settings: {', '.join(sorted(unknown))}.")
    for name_ in ("requests_per_minute", "tokens_per_minute", "token_quota", "cost_quota_micros"):
        value = limits.get(name_)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise DomainError(f"{name_} must be a positive whole number, or empty for no limit.")
    try:
        with transaction.atomic():
            plan = Plan.objects.create(api=api, slug=slug, name=name, **limits)
    except IntegrityError:
        raise DomainError(f"{api.name} already has a plan “{slug}”.", code="slug_taken") from None
    audit_record(actor=actor, action="plan.created", tenant=api.tenant, target=plan, details={"slug": slug, **limits})
    return plan


# --- providers and deployments -------------------------------------------------------------------------------


def _check_api_base(api_base: str) -> None:
    if not api_base:
        return
    try:
        check_url(api_base, allow_private=settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS)
    except OutboundBlocked as blocked:
        raise DomainError(str(blocked), code="upstream_not_allowed") from None


@transaction.atomic
def provider_create(
    *, tenant: Tenant, name: str, kind: str, actor: Actor, api_base: str = "", credentials: dict[str, str] | None = None
) -> Provider:
    """Register where models run. ``credentials`` (e.g. ``{"api_key": …}``) are encrypted before they are saved."""
    _check_api_base(api_base)
    try:
        with transaction.atomic():
            provider = Provider.all_tenants.create(
                tenant=tenant,
                name=name,
                kind=Provider.Kind(kind),
                api_base=api_base.rstrip("/"),
                credentials=encrypt(json.dumps(credentials)) if credentials else "",
            )
    except IntegrityError:
        raise DomainError(f"{tenant.name} already has a provider “{name}”.", code="name_taken") from None
    audit_record(
        actor=actor,
        action="provider.created",
        tenant=tenant,
        target=provider,
        details={"name": name, "kind": kind, "api_base": provider.api_base, "authenticated": bool(credentials)},
    )
    return provider


@transaction.atomic
def provider_set_credentials(*, provider: Provider, credentials: dict[str, str], actor: Actor) -> Provider:
    provider.credentials = encrypt(json.dumps(credentials))
    provider.save(update_fields=["credentials"])
    audit_record(actor=actor, action="provider.credentials_changed", tenant=provider.tenant, target=provider)
    return provider


def provider_credentials(provider: Provider) -> dict[str, str]:
    """The decrypted credentials, for the moment of calling the provider only."""
    return json.loads(decrypt(provider.credentials)) if provider.credentials else {}


def list_price_micros_per_mtok(*, model: str, kind: str) -> tuple[int, int] | None:
    """Input and output prices from litellm's bundled (offline) price map, in micro-USD per 1M tokens."""
    import litellm  # imported on demand: it costs seconds, and only this write path needs it

    info = litellm.model_cost.get(model) or litellm.model_cost.get(f"{kind}/{model}")
    if not info:
        return None

    def micros(per_token: object) -> int:
        return int((Decimal(str(per_token or 0)) * 10**12).to_integral_value())

    return micros(info.get("input_cost_per_token")), micros(info.get("output_cost_per_token"))


@transaction.atomic
def deployment_create(
    *,
    provider: Provider,
    name: str,
    model: str,
    actor: Actor,
    region: str = "eu",
    input_price_micros_per_mtok: int | None = None,
    output_price_micros_per_mtok: int | None = None,
    timeout_seconds: int = 60,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> Deployment:
    """A model at a provider. Prices left empty come from litellm's price map (0 if it does not know the model)."""
    if input_price_micros_per_mtok is None or output_price_micros_per_mtok is None:
        listed = list_price_micros_per_mtok(model=model, kind=provider.kind) or (0, 0)
        input_price_micros_per_mtok = listed[0] if input_price_micros_per_mtok is None else input_price_micros_per_mtok
        output_price_micros_per_mtok = (
            listed[1] if output_price_micros_per_mtok is None else output_price_micros_per_mtok
        )
    if not 1 <= timeout_seconds <= 600:
        raise DomainError("The timeout is between 1 and 600 seconds.")
    if any(limit is not None and limit < 1 for limit in (requests_per_minute, tokens_per_minute)):
        raise DomainError("A per-minute limit is at least 1 (leave it empty for none).")
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                provider=provider,
                name=name,
                model=model,
                region=region,
                input_price_micros_per_mtok=input_price_micros_per_mtok,
                output_price_micros_per_mtok=output_price_micros_per_mtok,
                timeout_seconds=timeout_seconds,
                requests_per_minute=requests_per_minute,
                tokens_per_minute=tokens_per_minute,
            )
    except IntegrityError:
        raise DomainError(f"{provider.name} already has a deployment “{name}”.", code="name_taken") from None
    audit_record(
        actor=actor,
        action="deployment.created",
        tenant=provider.tenant,
        target=deployment,
        details={
            "name": name,
            "model": model,
            "region": region,
            "input_price_micros_per_mtok": input_price_micros_per_mtok,
            "output_price_micros_per_mtok": output_price_micros_per_mtok,
            "requests_per_minute": requests_per_minute,
            "tokens_per_minute": tokens_per_minute,
        },
    )
    return deployment


@transaction.atomic
def route_add(
    *, version: ApiVersion, deployment: Deployment, actor: Actor, weight: int = 100, fallback_order: int = 0
) -> Route:
    """Serve ``version`` from ``deployment`` (of the same publisher)."""
    if deployment.provider.tenant_id != version.api.tenant_id:
        raise DomainError("A version can only be served by its publisher's own deployments.", status=404)
    if not 0 <= weight <= 1000:
        raise DomainError("The weight is between 0 and 1000.")
    route, _ = Route.objects.update_or_create(
        version=version, deployment=deployment, defaults={"weight": weight, "fallback_order": fallback_order}
    )
    audit_record(
        actor=actor,
        action="route.set",
        tenant=version.api.tenant,
        target=route,
        details={"version": str(version), "deployment": deployment.name, "weight": weight, "fallback": fallback_order},
    )
    events.routes_changed(api_ids=[version.api_id])
    return route

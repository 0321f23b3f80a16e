"""Writes of the catalog (APIs, versions, plans) and of providers and deployments. Each writes an audit event in
the same transaction."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from gateway import policy_documents, prompts
from gateway.models import AiApi, ApiVersion, Deployment, Plan, Policy, PolicyDocumentVersion, Provider, Route
from gateway.policies import RulesError, validate_rules
from gateway.policy_documents import plan_settings
from gateway.selectors import policy_document_of
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


PLAN_SETTINGS = frozenset(
    {
        "description",
        "requests_per_minute",
        "tokens_per_minute",
        "quota_period",
        "token_quota",
        "cost_quota_micros",
        "allowed_models",
        "regions",
        "requires_approval",
    }
)


def _check_plan_settings(settings_: dict[str, Any], allowed: frozenset[str] = PLAN_SETTINGS) -> None:
    unknown = set(settings_) - allowed
    if unknown:
        raise DomainError(f"Unknown plan settings: {', '.join(sorted(unknown))}.")
    for name_ in ("requests_per_minute", "tokens_per_minute", "token_quota", "cost_quota_micros"):
        value = settings_.get(name_)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise DomainError(f"{name_} must be a positive whole number, or empty for no limit.")


@transaction.atomic
def plan_create(*, api: AiApi, slug: str, name: str, actor: Actor, **limits: Any) -> Plan:
    _check_plan_settings(limits)
    try:
        with transaction.atomic():
            plan = Plan.objects.create(api=api, slug=slug, name=name, **limits)
    except IntegrityError:
        raise DomainError(f"{api.name} already has a plan “{slug}”.", code="slug_taken") from None
    audit_record(actor=actor, action="plan.created", tenant=api.tenant, target=plan, details={"slug": slug, **limits})
    return plan


@transaction.atomic
def plan_update(*, plan: Plan, actor: Actor, **changes: Any) -> Plan:
    """Change a plan's name, limits, quotas, models or state; its subscribers' calls see it at once."""
    _check_plan_settings(changes, PLAN_SETTINGS | {"name", "is_active"})
    before = {field: getattr(plan, field) for field in changes}
    changed = {field: value for field, value in changes.items() if before[field] != value}
    if not changed:
        return plan
    for field, value in changed.items():
        setattr(plan, field, value)
    plan.save(update_fields=list(changed))
    audit_record(
        actor=actor,
        action="plan.updated",
        tenant=plan.api.tenant,
        target=plan,
        details={"before": {f: before[f] for f in changed}, "after": changed},
    )
    events.access_changed(everything=True)
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


# --- policies ------------------------------------------------------------------------------------------------


def _policy_target(level: str, target: Any) -> tuple[dict[str, Any], Tenant | None]:
    """The attachment fields of a policy at ``level`` on ``target``, and the tenant that owns it."""
    from subscriptions.models import ApiKey, Application

    expected: dict[str, type | None] = {
        Policy.Level.PLATFORM: None,
        Policy.Level.PUBLISHER: Tenant,
        Policy.Level.CONSUMER: Tenant,
        Policy.Level.API: AiApi,
        Policy.Level.VERSION: ApiVersion,
        Policy.Level.APPLICATION: Application,
        Policy.Level.KEY: ApiKey,
    }
    if level not in expected:
        raise DomainError(f"Unknown policy level “{level}”.")
    kind = expected[level]
    if (kind is None) != (target is None) or (kind is not None and not isinstance(target, kind)):
        raise DomainError(f"A {level} policy attaches to {kind.__name__ if kind else 'nothing'}.")
    if level == Policy.Level.PLATFORM:
        return {}, None
    if level in (Policy.Level.PUBLISHER, Policy.Level.CONSUMER):
        return {"tenant": target}, target
    if level == Policy.Level.API:
        return {"api": target, "tenant": target.tenant}, target.tenant
    if level == Policy.Level.VERSION:
        return {"version": target, "tenant": target.api.tenant}, target.api.tenant
    if level == Policy.Level.APPLICATION:
        return {"application": target, "tenant": target.tenant}, target.tenant
    tenant = target.application.tenant
    return {"key": target, "tenant": tenant}, tenant


@transaction.atomic
def policy_set(*, level: str, target: Any = None, rules: dict[str, Any], actor: Actor) -> Policy | None:
    """Attach ``rules`` at ``level`` on ``target`` (None for the platform default), replacing what was there;
    empty rules remove the policy. Validated against RULES_SCHEMA, audited with before and after, and every
    gateway drops its cached access at once (a policy can touch many keys)."""
    try:
        rules = validate_rules(rules)
    except RulesError as error:
        raise DomainError(f"Invalid policy: {error}", code="invalid_policy") from None
    rules = {section: values for section, values in rules.items() if values}
    attachment, tenant = _policy_target(level, target)
    existing = Policy.objects.select_for_update().filter(level=level, **attachment).first()
    before = existing.rules if existing else {}
    if rules == before:
        return existing
    if not rules:
        policy = None
        if existing is not None:
            existing.delete()
    elif existing is not None:
        existing.rules = rules
        existing.save(update_fields=["rules", "updated_at"])
        policy = existing
    else:
        policy = Policy.objects.create(level=level, rules=rules, **attachment)
    audit_record(
        actor=actor,
        action="policy.set" if rules else "policy.removed",
        tenant=tenant,
        target=policy or target,
        details={"level": level, "before": before, "after": rules},
    )
    events.access_changed(everything=True)
    return policy


# --- policy documents (policy as code) -----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDocumentChange:
    """What applying a policy document changed (or, in a dry run, would change), and the version it made."""

    changes: list[str]
    version: PolicyDocumentVersion | None


def _named_plans_only(document: dict[str, Any], named: dict[str, set[str]]) -> dict[str, Any]:
    """The document with only the plans ``named`` (by API): a document leaves the plans it does not name alone,
    so those are no change."""
    document = copy.deepcopy(document)
    apis = document.get("publisher", {}).get("apis", {})
    for slug in list(apis):
        plans = {k: v for k, v in apis[slug].get("plans", {}).items() if k in named.get(slug, set())}
        if plans:
            apis[slug]["plans"] = plans
        else:
            apis[slug].pop("plans", None)
        if not apis[slug]:
            del apis[slug]
    return document


def _apply_document(tenant: Tenant, document: dict[str, Any], actor: Actor) -> None:
    from subscriptions.models import ApiKey, Application

    def missing(path: str, what: str) -> DomainError:
        return DomainError(f"{path}: {tenant.name} has no {what}.", code="invalid_document")

    desired: list[tuple[str, Any, dict[str, Any]]] = []
    publisher = document.get("publisher", {})
    if "policy" in publisher:
        desired.append((Policy.Level.PUBLISHER, tenant, publisher["policy"]))
    for slug, entry in publisher.get("apis", {}).items():
        api = AiApi.all_tenants.filter(tenant=tenant, slug=slug).first()
        if api is None:
            raise missing(f"publisher.apis.{slug}", f"API “{slug}”")
        if "policy" in entry:
            desired.append((Policy.Level.API, api, entry["policy"]))
        for name, rules in entry.get("versions", {}).items():
            version = api.versions.filter(version=name).first()
            if version is None:
                raise missing(f"publisher.apis.{slug}.versions.{name}", f"version {name} of {slug}")
            desired.append((Policy.Level.VERSION, version, rules))
        for plan_slug, plan_entry_ in entry.get("plans", {}).items():
            settings_ = plan_settings(plan_entry_)
            plan = api.plans.filter(slug=plan_slug).first()
            if plan is None:
                is_active = settings_.pop("is_active")
                name = settings_.pop("name")
                plan = plan_create(api=api, slug=plan_slug, name=name, actor=actor, **settings_)
                plan_update(plan=plan, actor=actor, is_active=is_active)
            else:
                plan_update(plan=plan, actor=actor, **settings_)
    consumer = document.get("consumer", {})
    if "policy" in consumer:
        desired.append((Policy.Level.CONSUMER, tenant, consumer["policy"]))
    for slug, entry in consumer.get("applications", {}).items():
        application = Application.all_tenants.filter(tenant=tenant, slug=slug).first()
        if application is None:
            raise missing(f"consumer.applications.{slug}", f"application “{slug}”")
        if "policy" in entry:
            desired.append((Policy.Level.APPLICATION, application, entry["policy"]))
        for public_id, rules in entry.get("keys", {}).items():
            key = ApiKey.objects.filter(application=application, public_id=public_id).first()
            if key is None:
                raise missing(f"consumer.applications.{slug}.keys.{public_id}", f"key gh_{public_id} in {slug}")
            desired.append((Policy.Level.KEY, key, rules))
    kept = set()
    for level, target, rules in desired:
        policy = policy_set(level=level, target=target, rules=rules, actor=actor)
        if policy is not None:
            kept.add(policy.pk)
    for stale in tenant.policies.exclude(pk__in=kept):  # the document is the whole truth about its policies
        policy_set(level=stale.level, target=_policy_attachment(stale), rules={}, actor=actor)


def _policy_attachment(policy: Policy) -> Any:
    attachments: dict[str, Any] = {
        Policy.Level.PUBLISHER: policy.tenant,
        Policy.Level.CONSUMER: policy.tenant,
        Policy.Level.API: policy.api,
        Policy.Level.VERSION: policy.version,
        Policy.Level.APPLICATION: policy.application,
        Policy.Level.KEY: policy.key,
    }
    return attachments.get(policy.level)


@transaction.atomic
def policy_document_apply(
    *, tenant: Tenant, document: Any, actor: Actor, dry_run: bool = False, note: str = ""
) -> PolicyDocumentChange:
    """Make the tenant's plans and policies what ``document`` says, all or nothing; keep it as a new version.

    The diff is computed by applying for real and comparing the export before and after, so what a dry run
    shows is exactly what applying does (a dry run then rolls everything back, audit events included).
    Policies the document leaves out are removed; plans it leaves out are left alone. Nothing changed: no
    version.
    """
    try:
        document = policy_documents.validate(document)
    except policy_documents.DocumentError as error:
        raise DomainError(f"Invalid policy document: {error}", code="invalid_document") from None
    if document["tenant"] != tenant.slug:
        raise DomainError(
            f"This document is for tenant “{document['tenant']}”, not “{tenant.slug}”.", code="invalid_document"
        )
    Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # one apply at a time per tenant
    named = {slug: set(entry.get("plans", {})) for slug, entry in document.get("publisher", {}).get("apis", {}).items()}
    original = policy_document_of(tenant=tenant)
    before = _named_plans_only(original, named)
    savepoint = transaction.savepoint()
    _apply_document(tenant, document, actor)
    after = policy_document_of(tenant=tenant)
    changes = policy_documents.diff(before, _named_plans_only(after, named))
    if dry_run or not changes:
        transaction.savepoint_rollback(savepoint)
        return PolicyDocumentChange(changes, None)
    transaction.savepoint_commit(savepoint)
    last = PolicyDocumentVersion.objects.filter(tenant=tenant).order_by("-number").first()
    if last is None:  # the first apply: keep what was there before too, so that it can be rolled back to
        last = PolicyDocumentVersion.objects.create(
            tenant=tenant, number=1, document=original, created_by=None, note="as it was before the first apply"
        )
    version = PolicyDocumentVersion.objects.create(
        tenant=tenant,
        number=last.number + 1,
        document=after,
        changes=changes,
        created_by=actor.user,
        note=note[:200],
    )
    audit_record(
        actor=actor,
        action="policies.applied",
        tenant=tenant,
        target=version,
        details={"version": version.number, "note": note, "changes": changes[:500]},
    )
    return PolicyDocumentChange(changes, version)


def policy_document_rollback(
    *, tenant: Tenant, number: int, actor: Actor, dry_run: bool = False
) -> PolicyDocumentChange:
    """Apply an earlier version's document again, as a new version."""
    version = PolicyDocumentVersion.objects.filter(tenant=tenant, number=number).first()
    if version is None:
        raise DomainError(f"There is no version {number} of these policies.", code="not_found", status=404)
    return policy_document_apply(
        tenant=tenant, document=version.document, actor=actor, dry_run=dry_run, note=f"rollback to version {number}"
    )

"""Writes of applications, subscriptions, change requests and API keys.

Every state change: checks the transition is legal (under a row lock), writes an audit event, notifies who
needs to know (after commit), and — when it can change what a key may call — publishes an access-changed
event so gateways drop their cached view of those keys.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from gateway.models import AiApi, Plan
from portal import events
from portal.errors import DomainError
from subscriptions import keys
from subscriptions.models import ApiKey, Application, ChangeRequest, Subscription
from tenants.models import Membership, Tenant, User
from tenants.permissions import Perm, role_has
from tenants.services import Actor, audit_record

State = Subscription.State

# (from state, action) → to state. Anything else is refused.
TRANSITIONS: dict[tuple[str, str], str] = {
    (State.PENDING, "approve"): State.APPROVED,
    (State.PENDING, "reject"): State.REJECTED,
    (State.APPROVED, "suspend"): State.SUSPENDED,
    (State.SUSPENDED, "resume"): State.APPROVED,
    (State.APPROVED, "revoke"): State.REVOKED,
    (State.SUSPENDED, "revoke"): State.REVOKED,
    (State.APPROVED, "expire"): State.EXPIRED,
    (State.SUSPENDED, "expire"): State.EXPIRED,
}


def _notify(subject: str, template: str, recipients: list[str], context: dict[str, object]) -> None:
    if not recipients:
        return
    body = render_to_string(template, context)
    transaction.on_commit(
        lambda: send_mail(
            subject=f"[Gatehouse] {subject}",
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=recipients,
        )
    )


def approvers_of(tenant: Tenant) -> list[str]:
    """E-mail addresses of the members who may approve subscriptions for this publisher."""
    members = Membership.objects.for_tenant(tenant).select_related("user")
    return sorted(m.user.email for m in members if role_has(m.role, Perm.SUBSCRIPTIONS_APPROVE))


# --- applications --------------------------------------------------------------------------------------------


@transaction.atomic
def application_create(*, tenant: Tenant, slug: str, name: str, actor: Actor, description: str = "") -> Application:
    try:
        with transaction.atomic():
            application = Application.all_tenants.create(
                tenant=tenant, slug=slug, name=name, description=description, owner=actor.user
            )
    except IntegrityError:
        raise DomainError(f"{tenant.name} already has an application “{slug}”.", code="slug_taken") from None
    audit_record(actor=actor, action="application.created", tenant=tenant, target=application, details={"slug": slug})
    return application


@transaction.atomic
def application_delete(*, application: Application, actor: Actor) -> None:
    """Delete the application; its keys stop working at once (and gateways are told)."""
    key_ids = list(application.keys.values_list("public_id", flat=True))
    audit_record(
        actor=actor,
        action="application.deleted",
        tenant=application.tenant,
        target=application,
        details={"slug": application.slug, "keys": len(key_ids)},
    )
    events.access_changed(key_ids=key_ids, application_ids=[application.pk])
    application.delete()


# --- subscriptions -------------------------------------------------------------------------------------------


def _visible_to(api: AiApi, tenant: Tenant) -> bool:
    return api.visibility != AiApi.Visibility.PRIVATE or api.tenant_id == tenant.pk


@transaction.atomic
def subscription_request(
    *,
    application: Application,
    api: AiApi,
    plan: Plan,
    actor: Actor,
    justification: str = "",
    ends_at: datetime | None = None,
) -> Subscription:
    """Ask for access. Approved at once when neither the API nor the plan needs approval; otherwise pending,
    and the publisher's approvers are e-mailed (and see it in their inbox)."""
    if not _visible_to(api, application.tenant):
        raise DomainError("No such API.", status=404)
    if plan.api_id != api.pk or not plan.is_active:
        raise DomainError("Choose one of this API's current plans.")
    if not api.versions.filter(status__in=["published", "deprecated"]).exists():
        raise DomainError(f"{api.name} has no published version yet.")
    if ends_at is not None and ends_at <= timezone.now():
        raise DomainError("The end date must be in the future.")
    auto = not plan.needs_approval
    now = timezone.now()
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                application=application,
                api=api,
                plan=plan,
                consumer=application.tenant,
                publisher=api.tenant,
                state=State.APPROVED if auto else State.PENDING,
                justification=justification.strip(),
                requested_by=actor.user,
                decided_at=now if auto else None,
                decision_reason="Approved automatically: the plan needs no approval." if auto else "",
                ends_at=ends_at,
            )
    except IntegrityError:
        raise DomainError(
            f"{application.name} already has a subscription to {api.name}; ask for a change instead.",
            code="already_subscribed",
        ) from None
    details = {"application": str(application), "api": str(api), "plan": plan.slug, "state": subscription.state}
    for tenant in {application.tenant, api.tenant}:
        audit_record(actor=actor, action="subscription.requested", tenant=tenant, target=subscription, details=details)
    if auto:
        events.access_changed(application_ids=[application.pk])
    else:
        _notify(
            f"{application.tenant.name} asks to use {api.name}",
            "subscriptions/email/requested.txt",
            approvers_of(api.tenant),
            {"subscription": subscription, "base_url": settings.GATEHOUSE_PUBLIC_BASE_URL},
        )
    return subscription


@transaction.atomic
def _transition(*, subscription: Subscription, action: str, actor: Actor, reason: str = "") -> Subscription:
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    target = TRANSITIONS.get((locked.state, action))
    if target is None:
        raise DomainError(f"A {locked.state} subscription cannot be {action}d.", code="illegal_transition")
    previous = locked.state
    locked.state = target
    locked.decision_reason = reason.strip()
    if action in ("approve", "reject"):
        locked.decided_by, locked.decided_at = actor.user, timezone.now()
    locked.save()
    details = {"application": str(locked.application), "api": str(locked.api), "from": previous, "to": target}
    if reason:
        details["reason"] = reason.strip()
    for tenant in {locked.consumer, locked.publisher}:
        audit_record(actor=actor, action=f"subscription.{target}", tenant=tenant, target=locked, details=details)
    events.access_changed(application_ids=[locked.application_id])
    requester: User | None = locked.requested_by
    if requester is not None and action in ("approve", "reject", "suspend", "resume", "revoke"):
        _notify(
            f"Your subscription to {locked.api.name} is {target}",
            "subscriptions/email/decided.txt",
            [requester.email],
            {"subscription": locked, "base_url": settings.GATEHOUSE_PUBLIC_BASE_URL},
        )
    subscription.refresh_from_db()
    return subscription


def subscription_approve(*, subscription: Subscription, actor: Actor, reason: str = "") -> Subscription:
    return _transition(subscription=subscription, action="approve", actor=actor, reason=reason)


def subscription_reject(*, subscription: Subscription, actor: Actor, reason: str) -> Subscription:
    if not reason.strip():
        raise DomainError("Say why, so the requester knows what to change.")
    return _transition(subscription=subscription, action="reject", actor=actor, reason=reason)


def subscription_suspend(*, subscription: Subscription, actor: Actor, reason: str = "") -> Subscription:
    return _transition(subscription=subscription, action="suspend", actor=actor, reason=reason)


def subscription_resume(*, subscription: Subscription, actor: Actor, reason: str = "") -> Subscription:
    return _transition(subscription=subscription, action="resume", actor=actor, reason=reason)


def subscription_revoke(*, subscription: Subscription, actor: Actor, reason: str = "") -> Subscription:
    return _transition(subscription=subscription, action="revoke", actor=actor, reason=reason)


def subscription_decide(*, subscription: Subscription, decision: str, actor: Actor, reason: str = "") -> Subscription:
    """The publisher's answer to a pending request: "approve" or "reject" (which needs a reason)."""
    if decision == "approve":
        return subscription_approve(subscription=subscription, actor=actor, reason=reason)
    if decision == "reject":
        return subscription_reject(subscription=subscription, actor=actor, reason=reason)
    raise DomainError("Decide approve or reject.")


def subscriptions_expire_due(*, now: datetime | None = None) -> int:
    """End subscriptions whose end date passed (a scheduled task). Returns how many ended."""
    now = now or timezone.now()
    due = Subscription.objects.filter(state__in=[State.APPROVED, State.SUSPENDED], ends_at__lte=now)
    count = 0
    for subscription in due:
        _transition(subscription=subscription, action="expire", actor=Actor(user=None), reason="End date reached.")
        count += 1
    return count


# --- change requests -----------------------------------------------------------------------------------------


@transaction.atomic
def change_request_create(
    *,
    subscription: Subscription,
    actor: Actor,
    new_plan: Plan | None = None,
    extra_tokens: int = 0,
    extra_models: list[str] | None = None,
    ends_at: datetime | None = None,
    justification: str = "",
) -> ChangeRequest:
    """Ask for another plan, more tokens or more models on an approved subscription, optionally until ``ends_at``.
    Goes through approval like a subscription does (approved at once when the plans need no approval)."""
    if subscription.state != State.APPROVED:
        raise DomainError("Only an approved subscription can be changed.")
    if new_plan is None and extra_tokens <= 0 and not extra_models:
        raise DomainError("Ask for a plan, tokens or models.")
    if new_plan is not None and (new_plan.api_id != subscription.api_id or not new_plan.is_active):
        raise DomainError("Choose one of this API's current plans.")
    if extra_tokens < 0:
        raise DomainError("Extra tokens must be positive.")
    if ends_at is not None and ends_at <= timezone.now():
        raise DomainError("The end date must be in the future.")
    request = ChangeRequest.objects.create(
        subscription=subscription,
        new_plan=new_plan,
        extra_tokens=extra_tokens,
        extra_models=sorted(set(extra_models or [])),
        ends_at=ends_at,
        justification=justification.strip(),
        requested_by=actor.user,
    )
    details = {
        "new_plan": new_plan.slug if new_plan else None,
        "extra_tokens": extra_tokens,
        "extra_models": request.extra_models,
        "ends_at": ends_at.isoformat() if ends_at else None,
    }
    for tenant in {subscription.consumer, subscription.publisher}:
        audit_record(actor=actor, action="change_request.created", tenant=tenant, target=request, details=details)
    needs_approval = (new_plan or subscription.plan).needs_approval or subscription.plan.needs_approval
    if not needs_approval:
        return change_request_approve(change_request=request, actor=actor, reason="Approved automatically.")
    _notify(
        f"{subscription.consumer.name} asks for more on {subscription.api.name}",
        "subscriptions/email/change_requested.txt",
        approvers_of(subscription.publisher),
        {"change": request, "subscription": subscription, "base_url": settings.GATEHOUSE_PUBLIC_BASE_URL},
    )
    return request


def _apply(request: ChangeRequest, subscription: Subscription) -> None:
    if request.new_plan is not None:
        request.previous_plan = subscription.plan
        subscription.plan = request.new_plan
    subscription.extra_token_quota += request.extra_tokens
    subscription.extra_models = sorted(set(subscription.extra_models) | set(request.extra_models))


@transaction.atomic
def change_request_approve(*, change_request: ChangeRequest, actor: Actor, reason: str = "") -> ChangeRequest:
    request = ChangeRequest.objects.select_for_update().get(pk=change_request.pk)
    subscription = Subscription.objects.select_for_update().get(pk=request.subscription_id)
    if request.state != ChangeRequest.State.PENDING:
        raise DomainError(f"A {request.state} change request cannot be approved.", code="illegal_transition")
    if subscription.state != State.APPROVED:
        raise DomainError("The subscription is no longer approved.", code="illegal_transition")
    _apply(request, subscription)
    subscription.save()
    request.state, request.decided_by, request.decided_at = ChangeRequest.State.APPROVED, actor.user, timezone.now()
    request.decision_reason = reason.strip()
    request.save()
    for tenant in {subscription.consumer, subscription.publisher}:
        audit_record(
            actor=actor, action="change_request.approved", tenant=tenant, target=request, details={"reason": reason}
        )
    events.access_changed(application_ids=[subscription.application_id])
    if request.requested_by is not None:
        _notify(
            f"Your change on {subscription.api.name} is approved",
            "subscriptions/email/change_decided.txt",
            [request.requested_by.email],
            {"change": request, "subscription": subscription, "base_url": settings.GATEHOUSE_PUBLIC_BASE_URL},
        )
    return request


@transaction.atomic
def change_request_reject(*, change_request: ChangeRequest, actor: Actor, reason: str) -> ChangeRequest:
    if not reason.strip():
        raise DomainError("Say why, so the requester knows what to change.")
    request = ChangeRequest.objects.select_for_update().get(pk=change_request.pk)
    if request.state != ChangeRequest.State.PENDING:
        raise DomainError(f"A {request.state} change request cannot be rejected.", code="illegal_transition")
    request.state, request.decided_by, request.decided_at = ChangeRequest.State.REJECTED, actor.user, timezone.now()
    request.decision_reason = reason.strip()
    request.save()
    subscription = request.subscription
    for tenant in {subscription.consumer, subscription.publisher}:
        audit_record(
            actor=actor, action="change_request.rejected", tenant=tenant, target=request, details={"reason": reason}
        )
    if request.requested_by is not None:
        _notify(
            f"Your change on {subscription.api.name} was not approved",
            "subscriptions/email/change_decided.txt",
            [request.requested_by.email],
            {"change": request, "subscription": subscription, "base_url": settings.GATEHOUSE_PUBLIC_BASE_URL},
        )
    return request


def change_request_decide(
    *, change_request: ChangeRequest, decision: str, actor: Actor, reason: str = ""
) -> ChangeRequest:
    if decision == "approve":
        return change_request_approve(change_request=change_request, actor=actor, reason=reason)
    if decision == "reject":
        return change_request_reject(change_request=change_request, actor=actor, reason=reason)
    raise DomainError("Decide approve or reject.")


@transaction.atomic
def change_requests_revert_due(*, now: datetime | None = None) -> int:
    """Undo approved, time-boxed changes whose end passed (a scheduled task). Returns how many were reverted."""
    now = now or timezone.now()
    due = ChangeRequest.objects.select_for_update().filter(
        state=ChangeRequest.State.APPROVED, ends_at__lte=now, reverted_at=None
    )
    count = 0
    for request in due:
        subscription = Subscription.objects.select_for_update().get(pk=request.subscription_id)
        if request.new_plan_id is not None and subscription.plan_id == request.new_plan_id and request.previous_plan:
            subscription.plan = request.previous_plan
        subscription.extra_token_quota = max(0, subscription.extra_token_quota - request.extra_tokens)
        still_granted = set()
        for other in subscription.change_requests.filter(state=ChangeRequest.State.APPROVED).exclude(pk=request.pk):
            still_granted |= set(other.extra_models)
        subscription.extra_models = sorted((set(subscription.extra_models) - set(request.extra_models)) | still_granted)
        subscription.save()
        request.state, request.reverted_at = ChangeRequest.State.REVERTED, now
        request.save()
        for tenant in {subscription.consumer, subscription.publisher}:
            audit_record(actor=Actor(user=None), action="change_request.reverted", tenant=tenant, target=request)
        events.access_changed(application_ids=[subscription.application_id])
        count += 1
    return count


# --- API keys ------------------------------------------------------------------------------------------------


def _clean_allowlist(entries: list[str]) -> list[str]:
    cleaned = []
    for entry in entries:
        try:
            cleaned.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise DomainError(f"“{entry}” is not an IP address or CIDR range (e.g. 203.0.113.0/24).") from None
    return cleaned


@transaction.atomic
def api_key_create(
    *,
    application: Application,
    name: str,
    actor: Actor,
    scopes: list[int] | None = None,
    ip_allowlist: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key; returns it and the full key string, which is shown once and never stored."""
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError("The expiry must be in the future.")
    subscribed = set(application.subscriptions.values_list("api_id", flat=True))
    if scopes and not set(scopes) <= subscribed:
        raise DomainError("A key can only be scoped to APIs the application subscribes to.")
    public_id, secret, full = keys.generate()
    key = ApiKey.objects.create(
        application=application,
        name=name.strip() or "key",
        public_id=public_id,
        digest=keys.digest(secret),
        scopes=sorted(scopes or []),
        ip_allowlist=_clean_allowlist(ip_allowlist or []),
        expires_at=expires_at,
        created_by=actor.user,
    )
    audit_record(
        actor=actor,
        action="key.created",
        tenant=application.tenant,
        target=key,
        details={"application": application.slug, "name": key.name, "public_id": public_id},
    )
    events.access_changed(key_ids=[public_id])
    return key, full


@transaction.atomic
def api_key_rotate(*, key: ApiKey, actor: Actor, grace: timedelta = timedelta(hours=24)) -> tuple[ApiKey, str]:
    """Issue a replacement with the same settings; the old key keeps working for ``grace``, then stops."""
    old = ApiKey.objects.select_for_update().get(pk=key.pk)
    if not old.is_usable() or old.rotated_to_id is not None:
        raise DomainError("Only a working key that was not rotated yet can be rotated.")
    if grace < timedelta(0) or grace > timedelta(days=30):
        raise DomainError("The grace period is between 0 and 30 days.")
    new, full = api_key_create(
        application=old.application,
        name=old.name,
        actor=actor,
        scopes=old.scopes,
        ip_allowlist=old.ip_allowlist,
        expires_at=old.expires_at,
    )
    old.valid_until = timezone.now() + grace
    old.rotated_to = new
    old.save(update_fields=["valid_until", "rotated_to"])
    audit_record(
        actor=actor,
        action="key.rotated",
        tenant=old.application.tenant,
        target=old,
        details={"old": old.public_id, "new": new.public_id, "grace_seconds": int(grace.total_seconds())},
    )
    events.access_changed(key_ids=[old.public_id])
    return new, full


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    """Stop the key at once."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="key.revoked",
            tenant=key.application.tenant,
            target=key,
            details={"public_id": key.public_id, "name": key.name},
        )
        events.access_changed(key_ids=[key.public_id])
    return key


def api_keys_record_use(*, last_used: dict[str, datetime]) -> int:
    """Batched ``last_used_at`` (the gateway collects uses and flushes them here, never a write per call)."""
    updated = 0
    for public_id, when in last_used.items():
        updated += ApiKey.objects.filter(public_id=public_id).exclude(last_used_at__gte=when).update(last_used_at=when)
    return updated

"""Writes of analytics (`<entity>_<action>` services, keyword-only, atomic, doing their own side effects).

Usage events travel gateway → Redis stream ``USAGE_STREAM`` → ``usage_stream_drain`` (a beat task) → the
``UsageEvent`` table; without Redis (embedded mode) the gateway hands its batches to ``usage_events_record``
directly. Either way an event is stored once: ``(occurred_at, event_id)`` is unique and repeats are ignored.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import secrets
import smtplib
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from analytics import selectors, sketch, webhooks
from analytics.models import (
    AlertDelivery,
    AlertEvent,
    AlertKind,
    AlertRule,
    CallPayload,
    RollupBacklog,
    UsageEvent,
    UsageRollup,
)
from portal.crypto import decrypt, encrypt
from tenants.models import Tenant
from tenants.services import Actor, audit_record

logger = logging.getLogger(__name__)

CONSUMER_GROUP = "ingest"
# A delivered event not acknowledged within this long belongs to a consumer that died: another one takes it over.
CLAIM_IDLE_MS = 60_000
_FIELDS = {f.attname for f in UsageEvent._meta.concrete_fields} - {"id"}


def _row(event: dict[str, Any], publishers: set[int]) -> UsageEvent:
    fields = {k: v for k, v in event.items() if k in _FIELDS}
    fields["occurred_at"] = datetime.fromisoformat(event["occurred_at"])
    fields["client_ip"] = _address(event.get("client_ip"))
    if fields.get("publisher_id") not in publishers:
        fields["publisher_id"] = None  # the publisher was deleted meanwhile; the consumer's log keeps the call
    return UsageEvent(**fields)


def _payload_row(event: dict[str, Any]) -> CallPayload:
    payload = event["payload"]
    # Its own retention, and never longer than its call's.
    days = max(1, min(int(payload.get("retention_days") or 1), settings.CALL_LOG_RETENTION_DAYS))
    return CallPayload(
        event_id=event["event_id"],
        tenant_id=event["tenant_id"],
        request_text=str(payload.get("request") or ""),
        answer_text=str(payload.get("answer") or ""),
        expires_at=datetime.fromisoformat(event["occurred_at"]) + timedelta(days=days),
    )


def _address(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def _alert(event: dict[str, Any]) -> AlertEvent:
    envelope = ("type", "event_id", "occurred_at", "tenant_id", "kind", "message")
    details = {k: v for k, v in event.items() if k not in envelope}
    message = str(event.get("message") or event.get("kind") or "alert")
    return AlertEvent(
        event_id=event["event_id"][:200],
        occurred_at=datetime.fromisoformat(event["occurred_at"]),
        tenant_id=event["tenant_id"],
        kind=event.get("kind", AlertEvent.Kind.QUOTA_THRESHOLD),
        message=message[:300],
        details=details,
    )


def alert_events_record(*, events: list[dict[str, Any]]) -> int:
    """Store the gateway's alert events; one per ``event_id`` (the condition and its period). Returns how many
    were new."""
    ids = {e["event_id"] for e in events}
    seen = set(AlertEvent.all_tenants.filter(event_id__in=ids).values_list("event_id", flat=True))
    existing = set(Tenant.objects.filter(pk__in={e["tenant_id"] for e in events}).values_list("pk", flat=True))
    fresh = {e["event_id"]: _alert(e) for e in events if e["event_id"] not in seen and e["tenant_id"] in existing}
    AlertEvent.all_tenants.bulk_create(fresh.values(), ignore_conflicts=True)
    if fresh:
        _plan_quota_deliveries(set(fresh))
    return len(fresh)


@transaction.atomic
def usage_events_record(*, events: list[dict[str, Any]]) -> int:
    """Store gateway usage events (and the alert events that travel with them); ids already stored are skipped.
    Returns how many were new.

    Events of a tenant deleted meanwhile are dropped (its call log went with it).
    """
    alerts = [e for e in events if e.get("type") == "alert"]
    events = [e for e in events if e.get("type") != "alert"]
    stored = alert_events_record(events=alerts) if alerts else 0
    if not events:
        return stored
    ids = {e["event_id"] for e in events}
    seen = set(UsageEvent.all_tenants.filter(event_id__in=ids).values_list("event_id", flat=True))
    tenant_ids = {e["tenant_id"] for e in events} | {e.get("publisher_id") for e in events}
    existing = set(Tenant.objects.filter(pk__in=[t for t in tenant_ids if t]).values_list("pk", flat=True))
    fresh: dict[str, UsageEvent] = {}
    for event in events:
        if event["event_id"] in seen or event["event_id"] in fresh or event["tenant_id"] not in existing:
            continue
        fresh[event["event_id"]] = _row(event, existing)
    # ignore_conflicts: a concurrent drain that stored the same event first is not an error.
    UsageEvent.all_tenants.bulk_create(fresh.values(), ignore_conflicts=True)
    CallPayload.all_tenants.bulk_create(
        [_payload_row(event) for event in events if event["event_id"] in fresh and event.get("payload")],
        ignore_conflicts=True,
    )
    # Their hours are rolled up (again): in this transaction, so no event is ever left out of its rollup.
    hours = {_hour(row.occurred_at) for row in fresh.values()}
    RollupBacklog.objects.bulk_create([RollupBacklog(hour=hour) for hour in hours], ignore_conflicts=True)
    return stored + len(fresh)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_timeout=30)


def _ensure_group(client: redis.Redis, stream: str) -> None:
    try:
        client.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def _store(client: redis.Redis, stream: str, entries: list[tuple[bytes, dict[bytes, bytes] | None]]) -> int:
    """Store a batch, commit, then acknowledge and delete it from the stream."""
    events = []
    for entry_id, fields in entries:
        if not fields:  # deleted from the stream after it was stored: only the acknowledgement is missing
            continue
        try:
            events.append(json.loads(fields[b"event"]))
        except (KeyError, ValueError):
            logger.error("unreadable usage event %s skipped", entry_id)
    stored = usage_events_record(events=events)
    ids = [entry_id for entry_id, _ in entries]
    if ids:
        client.xack(stream, CONSUMER_GROUP, *ids)
        client.xdel(stream, *ids)
    return stored


def usage_stream_drain(*, consumer: str, batch_size: int = 500, client: redis.Redis | None = None) -> int:
    """Move usage events from the Redis stream into the database; returns how many were new.

    Each batch is stored, committed, then acknowledged and deleted from the stream. A drain that dies between
    commit and acknowledgement leaves the batch pending; the next drain takes it over (its own at once, another
    consumer's after ``CLAIM_IDLE_MS``) and stores it again, which the unique ``event_id`` turns into a no-op.
    Nothing is lost and nothing is counted twice.
    """
    client = client or redis_client()
    stream = settings.USAGE_STREAM
    _ensure_group(client, stream)

    def read(start: str) -> list[Any]:
        reply: Any = client.xreadgroup(CONSUMER_GROUP, consumer, {stream: start}, count=batch_size)
        return reply[0][1] if reply else []

    claimed: Any = client.xautoclaim(stream, CONSUMER_GROUP, consumer, CLAIM_IDLE_MS, count=batch_size)
    abandoned = claimed[1]
    stored = _store(client, stream, abandoned)
    while True:
        entries = read("0") or read(">")  # this consumer's unacknowledged ones first, then new ones
        if not entries:
            return stored
        stored += _store(client, stream, entries)


# --- rollups and retention -----------------------------------------------------------------------------------

ROLLUP_DIMENSIONS = (
    "tenant_id", "publisher_id", "application_id", "application_slug", "key_public_id", "api_id", "api_label",
    "model", "deployment_id",
)  # fmt: skip


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _nearest_rank(ordered: list[int], quantile: float) -> int:
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)] if ordered else 0


def _roll_up(granularity: str, start: datetime, end: datetime) -> int:
    """Recompute one bucket's rollups from the raw rows (exact sums, exact percentiles)."""
    UsageRollup.all_tenants.filter(granularity=granularity, bucket_start=start).delete()
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    rows = UsageEvent.all_tenants.filter(occurred_at__gte=start, occurred_at__lt=end).values_list(
        *ROLLUP_DIMENSIONS, "status", "cache_hit", "prompt_tokens", "completion_tokens", "cost_micros", "latency_ms"
    )
    for row in rows.iterator(chunk_size=5000):
        dims = row[: len(ROLLUP_DIMENSIONS)]
        status, cache_hit, prompt, completion, cost, latency = row[len(ROLLUP_DIMENSIONS) :]
        group = groups.setdefault(dims, {"requests": 0, "errors": 0, "cache_hits": 0, "prompt_tokens": 0,
                                         "completion_tokens": 0, "cost_micros": 0, "latencies": []})  # fmt: skip
        group["requests"] += 1
        group["errors"] += status >= 400
        group["cache_hits"] += cache_hit
        group["prompt_tokens"] += prompt
        group["completion_tokens"] += completion
        group["cost_micros"] += cost
        group["latencies"].append(latency)
    rollups = []
    for dims, group in groups.items():
        latencies = sorted(group.pop("latencies"))
        identity = dict(zip(ROLLUP_DIMENSIONS, dims, strict=True))
        for name in ("publisher_id", "api_id", "deployment_id"):
            identity[name] = identity[name] or 0
        rollups.append(
            UsageRollup(
                granularity=granularity,
                bucket_start=start,
                **identity,
                **group,
                latency_p50_ms=_nearest_rank(latencies, 0.5),
                latency_p95_ms=_nearest_rank(latencies, 0.95),
                latency_histogram=sketch.histogram_of(latencies),
            )
        )
    UsageRollup.all_tenants.bulk_create(rollups)
    return len(rollups)


def usage_rollups_refresh(*, limit: int = 200) -> int:
    """Roll up the hours waiting in the backlog, and their days, from the raw call log. Returns how many hours.

    A bucket is always recomputed whole (never incremented), so running this twice, or after a late or
    repeated event, gives the same numbers. Hours older than the call log's retention are not recomputed (their
    raw rows are gone); they are dropped from the backlog.
    """
    horizon = timezone.now() - timedelta(days=settings.CALL_LOG_RETENTION_DAYS)
    with transaction.atomic():
        backlog = list(RollupBacklog.objects.select_for_update().order_by("hour")[:limit])
        days: set[datetime] = set()
        for entry in backlog:
            if entry.hour < horizon:
                logger.warning("late usage for %s is older than the call log's retention: not rolled up", entry.hour)
                continue
            _roll_up(UsageRollup.Granularity.HOUR, entry.hour, entry.hour + timedelta(hours=1))
            days.add(entry.hour.replace(hour=0))
        for day in sorted(days):
            _roll_up(UsageRollup.Granularity.DAY, day, day + timedelta(days=1))
        RollupBacklog.objects.filter(pk__in=[entry.pk for entry in backlog]).delete()
    return len(backlog)


def call_log_trim(*, older_than_days: int | None = None) -> int:
    """Drop raw call-log rows older than the retention (rollups stay). Returns how many rows went."""
    days = settings.CALL_LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = UsageEvent.all_tenants.filter(occurred_at__lt=cutoff).delete()
    CallPayload.all_tenants.filter(expires_at__lt=timezone.now()).delete()  # their own retention
    return deleted


# --- alerts -------------------------------------------------------------------------------------------------

# Seconds to wait before attempt 2, 3, …; after the last the delivery is given up (and shown as failed).
DELIVERY_BACKOFF = (30, 120, 600, 1800, 7200)
DELIVERY_LEASE = timedelta(minutes=5)


@transaction.atomic
def alert_rule_create(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    kind: str,
    threshold: float = 0,
    window_minutes: int = 15,
    min_requests: int = 20,
    budget_micros: int = 0,
    metric: str = AlertRule.Metric.REQUESTS,
    email_to: str = "",
    webhook_url: str = "",
) -> tuple[AlertRule, str]:
    """Create a rule; returns it and, when it has a webhook, the signing secret (shown to the user once)."""
    secret = f"whsec_{secrets.token_urlsafe(24)}" if webhook_url else ""
    rule = AlertRule(
        tenant=tenant, name=name, kind=kind, threshold=threshold, window_minutes=window_minutes,
        min_requests=min_requests, budget_micros=budget_micros, metric=metric, email_to=email_to,
        webhook_url=webhook_url, webhook_secret=encrypt(secret) if secret else "",
    )  # fmt: skip
    rule.full_clean()
    rule.save()
    audit_record(
        actor=actor, action="alert_rule.created", tenant=tenant, target=rule,
        details={"name": name, "kind": kind, "email_to": email_to, "webhook_url": webhook_url},
    )  # fmt: skip
    return rule, secret


@transaction.atomic
def alert_rule_delete(*, rule: AlertRule, actor: Actor) -> None:
    audit_record(actor=actor, action="alert_rule.deleted", tenant=rule.tenant, target=rule, details={"name": rule.name})
    rule.delete()


def _plan_deliveries(alert: AlertEvent, rules: list[AlertRule], now: datetime) -> int:
    """One pending delivery per channel of each rule (unique: planning twice sends once); sent after commit."""
    planned = []
    for rule in rules:
        if rule.recipients:
            planned.append(
                AlertDelivery(alert=alert, rule=rule, channel=AlertDelivery.Channel.EMAIL, next_attempt_at=now)
            )
        if rule.webhook_url:
            planned.append(
                AlertDelivery(alert=alert, rule=rule, channel=AlertDelivery.Channel.WEBHOOK, next_attempt_at=now)
            )
    AlertDelivery.objects.bulk_create(planned, ignore_conflicts=True)
    if planned:
        from analytics.tasks import deliver_alerts

        transaction.on_commit(deliver_alerts.delay)
    return len(planned)


def _plan_quota_deliveries(event_ids: set[str]) -> None:
    """The gateway's quota crossings go out through the tenant's quota rules whose threshold they reached."""
    for alert in AlertEvent.all_tenants.filter(event_id__in=event_ids, kind=AlertKind.QUOTA_THRESHOLD):
        percent = alert.details.get("percent", 0)
        rules = AlertRule.all_tenants.filter(
            tenant_id=alert.tenant_id, kind=AlertKind.QUOTA_THRESHOLD, is_active=True, threshold__lte=percent
        )
        _plan_deliveries(alert, list(rules), timezone.now())


def alert_fire(*, rule: AlertRule, condition: selectors.Condition, now: datetime) -> AlertEvent | None:
    """Raise a rule's condition once: the event id names rule and window, so a second call is a no-op.
    Returns the new event, or None when it was already raised."""
    with transaction.atomic():
        alert, created = AlertEvent.all_tenants.get_or_create(
            event_id=f"rule:{rule.pk}:{condition.key}"[:200],
            defaults={"occurred_at": now, "tenant": rule.tenant, "rule": rule, "kind": rule.kind,
                      "message": condition.message[:300], "details": condition.details},
        )  # fmt: skip
        if not created:
            return None
        _plan_deliveries(alert, [rule], now)
    return alert


def alerts_evaluate(*, now: datetime | None = None) -> int:
    """Check every active evaluated rule (error rate, latency, forecast, anomaly); returns how many fired."""
    now = now or timezone.now()
    fired = 0
    rules = (
        AlertRule.all_tenants.filter(is_active=True).exclude(kind=AlertKind.QUOTA_THRESHOLD).select_related("tenant")
    )
    for rule in rules:
        for condition in selectors.alert_conditions(rule, now):
            fired += alert_fire(rule=rule, condition=condition, now=now) is not None
    return fired


def _payload(delivery: AlertDelivery) -> dict[str, Any]:
    alert = delivery.alert
    return {
        "id": alert.event_id,
        "type": alert.kind,
        "tenant": alert.tenant.slug,
        "occurred_at": alert.occurred_at.isoformat(),
        "message": alert.message,
        "details": alert.details,
        "rule": {"id": delivery.rule_id, "name": delivery.rule.name},
    }


def _send(delivery: AlertDelivery) -> webhooks.Outcome:
    if delivery.channel == AlertDelivery.Channel.WEBHOOK:
        return webhooks.post(delivery.rule.webhook_url, decrypt(delivery.rule.webhook_secret), _payload(delivery))
    alert = delivery.alert
    body = (
        f"{alert.message}\n\nTenant: {alert.tenant.name}\nRule: {delivery.rule.name}\n"
        f"At: {alert.occurred_at:%Y-%m-%d %H:%M} UTC\n"
    )
    try:
        send_mail(f"[Gatehouse] {alert.get_kind_display()}: {alert.tenant.name}", body, None, delivery.rule.recipients)
    except (OSError, smtplib.SMTPException) as trouble:
        return webhooks.Outcome(delivered=False, retry=True, error=f"mail server: {type(trouble).__name__}")
    return webhooks.Outcome(delivered=True, retry=False)


def alert_deliveries_send(*, now: datetime | None = None, limit: int = 100) -> int:
    """Send the deliveries that are due; returns how many were delivered.

    Each is first leased (its next attempt pushed ``DELIVERY_LEASE`` ahead, committed), so two workers never
    send the same one and a worker that dies mid-send leaves it to be retried. A failure that is worth
    retrying waits ``DELIVERY_BACKOFF`` before the next attempt; a refused target (SSRF guard) or a 4xx is not.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            AlertDelivery.objects.select_for_update(skip_locked=True)
            .filter(state=AlertDelivery.State.PENDING, next_attempt_at__lte=now)
            .select_related("alert__tenant", "rule")
            .order_by("next_attempt_at")[:limit]
        )
        AlertDelivery.objects.filter(pk__in=[d.pk for d in due]).update(next_attempt_at=now + DELIVERY_LEASE)
    delivered = 0
    for delivery in due:
        outcome = _send(delivery)
        delivery.attempts += 1
        delivery.last_error = outcome.error[:300]
        if outcome.delivered:
            delivery.state, delivery.delivered_at = AlertDelivery.State.DELIVERED, timezone.now()
            delivered += 1
        elif outcome.retry and delivery.attempts <= len(DELIVERY_BACKOFF):
            delivery.next_attempt_at = now + timedelta(seconds=DELIVERY_BACKOFF[delivery.attempts - 1])
        else:
            delivery.state = AlertDelivery.State.FAILED
            logger.warning(
                "alert delivery %s gave up after %d attempts: %s", delivery.pk, delivery.attempts, outcome.error
            )
        delivery.save(update_fields=["attempts", "last_error", "state", "delivered_at", "next_attempt_at"])
    return delivered

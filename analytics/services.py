"""Writes of analytics (`<entity>_<action>` services, keyword-only, atomic, doing their own side effects).

Usage events travel gateway → Redis stream ``USAGE_STREAM`` → ``usage_stream_drain`` (a beat task) → the
``UsageEvent`` table; without Redis (embedded mode) the gateway hands its batches to ``usage_events_record``
directly. Either way an event is stored once: ``event_id`` is unique and repeats are ignored.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analytics.models import AlertEvent, RollupBacklog, UsageEvent, UsageRollup
from tenants.models import Tenant

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
    return deleted

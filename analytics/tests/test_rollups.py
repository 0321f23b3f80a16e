"""Rollups: the call log summed per hour and per day, exactly, recomputed when late events arrive; raw rows
trimmed after their retention while rollups stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from analytics import services, tasks
from analytics.models import RollupBacklog, UsageEvent, UsageRollup
from analytics.tests.fixtures import usage_event

pytestmark = pytest.mark.django_db


def event(market, when: datetime, **overrides) -> dict:
    return usage_event(market, when, **overrides)


def hour_of(market, when: datetime, **filters) -> list[UsageRollup]:
    return list(
        UsageRollup.all_tenants.filter(granularity="hour", bucket_start=when.replace(minute=0), **filters).order_by(
            "model"
        )
    )


def test_rollups_equal_the_sums_over_the_raw_events(market):
    ten = datetime(2026, 11, 20, 10, tzinfo=UTC)
    events = [
        event(market, ten + timedelta(minutes=i), latency_ms=latency, cost_micros=cost, status=status)
        for i, (latency, cost, status) in enumerate([(100, 3, 200), (300, 5, 200), (200, 7, 500), (900, 0, 429)])
    ]
    events.append(event(market, ten + timedelta(minutes=30), model="text-embedding-3-small", cost_micros=11))
    events.append(event(market, ten + timedelta(hours=1, minutes=5), cost_micros=13))
    services.usage_events_record(events=events)

    assert tasks.roll_up_usage() == 2

    [chat, embed] = hour_of(market, ten)
    assert (chat.requests, chat.errors, chat.cost_micros) == (4, 2, 15)
    assert (chat.prompt_tokens, chat.completion_tokens) == (40, 20)
    assert (chat.latency_p50_ms, chat.latency_p95_ms) == (200, 900)  # nearest rank over 100, 200, 300, 900
    assert (embed.requests, embed.cost_micros) == (1, 11)
    [day] = UsageRollup.all_tenants.filter(granularity="day", model="gpt-4o-mini")
    assert (day.bucket_start, day.requests, day.cost_micros) == (ten.replace(hour=0), 5, 28)
    raw = sum(e.cost_micros for e in UsageEvent.all_tenants.all())
    assert sum(r.cost_micros for r in UsageRollup.all_tenants.filter(granularity="day")) == raw == 39
    assert not RollupBacklog.objects.exists()


def test_a_late_event_recomputes_its_bucket_and_a_repeated_one_changes_nothing(market):
    ten = datetime(2026, 11, 20, 10, tzinfo=UTC)
    first = event(market, ten, cost_micros=5)
    services.usage_events_record(events=[first])
    tasks.roll_up_usage()

    late = event(market, ten + timedelta(minutes=59), cost_micros=6)
    services.usage_events_record(events=[late, first])  # the first one delivered again
    tasks.roll_up_usage()
    tasks.roll_up_usage()  # nothing waiting: nothing changes

    [bucket] = hour_of(market, ten)
    assert (bucket.requests, bucket.cost_micros) == (2, 11)
    assert UsageRollup.all_tenants.get(granularity="day").cost_micros == 11


def test_rollups_keep_apart_what_reports_break_down_by(market):
    ten = datetime(2026, 11, 20, 10, tzinfo=UTC)
    services.usage_events_record(
        events=[
            event(market, ten, key_public_id="AAAAaaaa"),
            event(market, ten, key_public_id="BBBBbbbb"),
            event(market, ten, key_public_id="BBBBbbbb", deployment_id=8),
        ]
    )

    tasks.roll_up_usage()

    assert sorted((r.key_public_id, r.deployment_id, r.requests) for r in hour_of(market, ten)) == [
        ("AAAAaaaa", 7, 1),
        ("BBBBbbbb", 7, 1),
        ("BBBBbbbb", 8, 1),
    ]


def test_trimming_drops_old_raw_rows_and_keeps_the_rollups(market, settings):
    settings.CALL_LOG_RETENTION_DAYS = 60
    old, recent = timezone.now() - timedelta(days=40), timezone.now() - timedelta(days=1)
    services.usage_events_record(events=[event(market, old), event(market, recent)])
    tasks.roll_up_usage()
    settings.CALL_LOG_RETENTION_DAYS = 30

    trimmed = tasks.trim_call_log()

    assert trimmed == 1
    assert UsageEvent.all_tenants.count() == 1
    assert UsageRollup.all_tenants.filter(granularity="hour").count() == 2  # the old hour's rollup stays


def test_a_late_event_older_than_the_retention_does_not_wipe_its_rollup(market, settings):
    settings.CALL_LOG_RETENTION_DAYS = 30
    old = (timezone.now() - timedelta(days=40)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    UsageRollup.all_tenants.create(
        granularity="hour", bucket_start=old, tenant=market.globex, requests=9, cost_micros=90
    )

    services.usage_events_record(events=[event(market, old + timedelta(minutes=1))])
    tasks.roll_up_usage()

    assert UsageRollup.all_tenants.get(granularity="hour", bucket_start=old).requests == 9
    assert not RollupBacklog.objects.exists()


def test_the_call_log_keeps_what_the_gateway_saw(market):
    services.usage_events_record(events=[event(market, timezone.now(), cached_tokens=3, upstream_ms=42)])

    row = UsageEvent.all_tenants.get()

    assert (row.client_ip, row.region, row.cached_tokens, row.upstream_ms) == ("10.1.2.3", "eu", 3, 42)
    assert row.policy_decisions == ["prompt_injection:classifier:flag"]

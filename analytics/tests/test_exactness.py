"""Acceptance for analytics through the real gateway: after a mixed load the books agree to the micro-USD, and
ingestion is exactly once whatever the worker does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from analytics import selectors, tasks
from analytics.models import UsageEvent, UsageRollup
from analytics.services import usage_stream_drain
from gateway import services as catalog
from gateway.proxy import limits, usage
from gateway.tests.fixtures import recorded_usage, stream_and_hang_up
from subscriptions import services as subscription_services
from tenants import services as tenant_services
from tenants.models import Tenant
from tenants.tests.fixtures import make_user

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = tenant_services.SYSTEM


@pytest.fixture(autouse=True)
async def _limiter_closed():
    yield
    await limits.LIMITER.close()


def _second_consumer(market) -> dict[str, str]:
    initech = tenant_services.tenant_create(slug="initech", name="Initech", owner=make_user("o@initech.test"))
    app = subscription_services.application_create(tenant=initech, slug="app", name="App", actor=SYSTEM)
    subscription_services.subscription_request(application=app, api=market.api, plan=market.free, actor=SYSTEM)
    return {
        "authorization": f"Bearer {subscription_services.api_key_create(application=app, name='k', actor=SYSTEM)[1]}"
    }


def _chat(text: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def _load(gateway, auth: dict[str, str], who: str) -> None:
    """Plain and streamed answers (with and without usage asked for), a cache miss and hit, refused calls."""
    for n in range(3):
        assert (
            await gateway.post("/v1/chat/completions", json=_chat(f"{who} question {n}"), headers=auth)
        ).status_code == 200
    for options in ({}, {"stream_options": {"include_usage": True}}):
        body = _chat(f"{who} tell me a story", stream=True, **options)
        assert (await gateway.post("/v1/chat/completions", json=body, headers=auth)).status_code == 200
    cached = [await gateway.post("/v1/chat/completions", json=_chat(f"{who} capital?", temperature=0), headers=auth)
              for _ in range(2)]  # fmt: skip
    assert [a.headers["x-gatehouse-cache"] for a in cached] == ["miss", "hit"]
    assert (await gateway.post("/v1/chat/completions", json=_chat("x", max_tokens=-1), headers=auth)).status_code == 400
    unknown = await gateway.post("/v1/chat/completions", json={**_chat("x"), "model": "nope"}, headers=auth)
    assert unknown.status_code == 404


def _sums(rows: Iterable) -> tuple[int, int, int, int, int]:
    rows = list(rows)
    return (
        len(rows),
        sum(r.status >= 400 for r in rows),
        sum(r.cache_hit for r in rows),
        sum(r.prompt_tokens + r.completion_tokens for r in rows),
        sum(r.cost_micros for r in rows),
    )


async def test_after_a_mixed_load_rollups_reports_and_statements_equal_the_raw_events(
    gateway, served, market, mock_llm
):
    await sync_to_async(catalog.policy_set)(
        level="publisher", target=market.acme, rules={"cache": {"enabled": True, "ttl_seconds": 60}}, actor=SYSTEM
    )
    market.acme.markup_basis_points = 1000
    await sync_to_async(market.acme.save)()
    initech = await sync_to_async(_second_consumer)(market)
    globex = served["auth"]

    await _load(gateway, globex, "globex")
    await _load(gateway, initech, "initech")
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/fail/500/v1", "broken")  # the provider fails
    for auth in (globex, initech):
        assert (await gateway.post("/v1/chat/completions", json=_chat("anyone?"), headers=auth)).status_code == 502
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/stream-delay/100/v1", "slow")
    for auth in (globex, initech):  # clients that leave mid-stream: billed for what was streamed
        await stream_and_hang_up(auth, _chat("a long story please", stream=True))
    await asyncio.sleep(0.3)

    events = await recorded_usage()
    await sync_to_async(tasks.roll_up_usage)()

    def books(tenant: Tenant) -> dict:
        months = {(e.occurred_at.year, e.occurred_at.month) for e in events if e.tenant_id == tenant.pk}
        periods = [selectors.month_period(tenant, year, month) for year, month in sorted(months)]
        scope = selectors.UsageScope(tenant=tenant)
        statements = [selectors.statement_for(tenant, period) for period in periods]
        return {
            "hourly": _sums_of_rollups(UsageRollup.objects.for_tenant(tenant).filter(granularity="hour")),
            "daily": _sums_of_rollups(UsageRollup.objects.for_tenant(tenant).filter(granularity="day")),
            "totals": [selectors.usage_summary(scope, period)[0] for period in periods],
            "report": sum(line.cost_micros for p in periods for line in selectors.cost_report(scope, p)),
            "statement_cost": sum(s.cost_micros for s in statements),
            "statement_markup": sum(s.markup_micros for s in statements),
            "lines": sum(len(s.lines) for s in statements),
        }

    for slug in ("globex", "initech"):
        tenant = await sync_to_async(Tenant.objects.get)(slug=slug)
        raw = [e for e in events if e.tenant_id == tenant.pk]
        kept = await sync_to_async(books)(tenant)
        expected = _sums(raw)
        assert expected[0] == 11  # 3 + 2 streams + 2 cached + 2 refused + 1 upstream failure + 1 left mid-stream
        assert {e.status for e in raw} == {200, 400, 404, 499, 502}
        assert kept["hourly"] == kept["daily"] == expected
        totals = kept["totals"]
        assert (sum(t.requests for t in totals), sum(t.errors for t in totals)) == expected[:2]
        assert sum(t.cache_hits for t in totals) == expected[2]
        assert kept["report"] == kept["statement_cost"] == expected[4] > 0
        # 10 % markup, rounded half up once per statement line.
        assert abs(kept["statement_markup"] - expected[4] / 10) <= kept["lines"] / 2
        assert any(e.is_stream and e.status == 499 and e.cost_micros > 0 for e in raw)  # cut stream costs its part
        assert all(e.cost_micros == 0 for e in raw if e.cache_hit or e.status in (400, 404, 502))


def _sums_of_rollups(rows) -> tuple[int, int, int, int, int]:
    rows = list(rows)
    return (
        sum(r.requests for r in rows),
        sum(r.errors for r in rows),
        sum(r.cache_hits for r in rows),
        sum(r.prompt_tokens + r.completion_tokens for r in rows),
        sum(r.cost_micros for r in rows),
    )


needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="the usage stream needs Redis (CI runs with it)")


@needs_redis
async def test_events_wait_in_the_stream_while_the_ingest_worker_is_stopped_and_arrive_once_it_returns(gateway, served):
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for n in range(5):  # the worker is stopped: nothing drains the stream
        await gateway.post("/v1/chat/completions", json=_chat(f"while the worker is away {n}"), headers=served["auth"])
    await usage.RECORDER.flush()

    waiting = await sync_to_async(client.xlen)(settings.USAGE_STREAM)
    stored_meanwhile = await sync_to_async(UsageEvent.all_tenants.count)()
    first = await sync_to_async(usage_stream_drain)(consumer="restarted-worker")  # the worker comes back
    second = await sync_to_async(usage_stream_drain)(consumer="restarted-worker")

    assert (waiting, stored_meanwhile) == (5, 0)
    assert (first, second) == (5, 0)
    assert await sync_to_async(UsageEvent.all_tenants.count)() == 5
    client.close()


@needs_redis
def test_a_batch_delivered_twice_is_stored_once(market):
    import redis

    from analytics.tests.fixtures import usage_event

    client = redis.Redis.from_url(settings.REDIS_URL)
    batch = [usage_event(market, datetime.now(UTC)) for _ in range(4)]
    for _ in range(2):  # e.g. a gateway whose XADD reply was lost sends its batch again
        for event in batch:
            client.xadd(settings.USAGE_STREAM, {"event": json.dumps(event)})

    stored = usage_stream_drain(consumer="worker")
    tasks.roll_up_usage()

    assert stored == 4
    assert UsageEvent.all_tenants.count() == 4
    assert sum(r.requests for r in UsageRollup.all_tenants.filter(granularity="hour")) == 4
    client.close()

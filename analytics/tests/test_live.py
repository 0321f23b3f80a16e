"""Live figures, the live dashboard's websocket, and /metrics — fed by the gateway's usage flush."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
import redis
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import Client

from analytics import live
from analytics.tests.fixtures import usage_event
from portal.routing import websocket_urlpatterns


@pytest.fixture(autouse=True)
def _own_counters(settings):
    """Counters of this test only: a key prefix of its own in Redis, empty memory when embedded."""
    settings.CACHE_KEY_PREFIX = f"gh-live-{uuid.uuid4().hex[:8]}"
    live.MEMORY.clear()
    yield
    live.MEMORY.clear()


def feed(settings, events: list[dict], now: float) -> None:
    """What the gateway's flush does with a batch: the Redis pipeline, or process memory when embedded."""
    if settings.REDIS_URL:
        pipe = redis.Redis.from_url(settings.REDIS_URL).pipeline(transaction=False)
        live.redis_commands(pipe, events, now)
        pipe.execute()
    else:
        live.MEMORY.add(events, now)


@pytest.mark.django_db
def test_figures_are_the_last_seconds_of_the_tenants_calls(market, settings):
    now = time.time()
    when = datetime.now(UTC)
    feed(settings, [usage_event(market, when, latency_ms=40, cost_micros=1000) for _ in range(8)], now - 2)
    feed(settings, [usage_event(market, when, status=502, latency_ms=900, cost_micros=0) for _ in range(2)], now - 1)
    feed(settings, [usage_event(market, when, tenant_id=market.acme.pk)], now - 1)  # another tenant's

    figures = live.figures_for(market.globex, with_costs=True, now=now)
    hidden = live.figures_for(market.globex, with_costs=False, now=now)

    assert figures["calls_last_minute"] == 10
    assert figures["requests_per_second"] == 10 / live.RATE_WINDOW
    assert figures["error_rate_percent"] == 20.0
    assert 900 <= figures["latency_p95_ms"] <= 1125  # the sketch: never below, within one bucket
    assert figures["spend_today_micros"] == 8000
    assert "spend_today_micros" not in hidden
    assert live.figures_for(market.globex, with_costs=True, now=now + 120)["calls_last_minute"] == 0


@pytest.mark.django_db
def test_metrics_need_the_token_and_speak_prometheus(market, settings):
    client = Client()
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404  # turned off
    settings.METRICS_TOKEN = "scrape-me"
    feed(settings, [usage_event(market, datetime.now(UTC)) for _ in range(2)], time.time())
    feed(settings, [usage_event(market, datetime.now(UTC), status=429, error_code="rate_limit_exceeded")], time.time())

    wrong = client.get("/metrics", headers={"authorization": "Bearer nope"})
    right = client.get("/metrics", headers={"authorization": "Bearer scrape-me"})

    assert wrong.status_code == 401
    assert b"gatehouse_requests_total" not in wrong.content
    assert right.status_code == 200
    body = right.content.decode()
    assert 'gatehouse_requests_total{tenant="globex",model="gpt-4o-mini",status="200"} 2' in body
    assert 'gatehouse_rate_limited_total{tenant="globex",code="rate_limit_exceeded"} 1' in body
    assert 'gatehouse_request_duration_seconds_bucket{model="gpt-4o-mini",le="0.1"} 3' in body
    assert 'gatehouse_request_duration_seconds_bucket{model="gpt-4o-mini",le="0.05"} 0' in body
    assert 'gatehouse_request_duration_seconds_bucket{model="gpt-4o-mini",le="60"} 3' in body  # cumulative
    assert 'gatehouse_request_duration_seconds_count{model="gpt-4o-mini"} 3' in body
    assert 'gatehouse_cost_micro_usd_total{tenant="globex",model="gpt-4o-mini"} 12' in body
    assert (
        'gatehouse_policy_decisions_total{policy="prompt_injection",decision="prompt_injection:classifier:flag"} 3'
        in body
    )


async def _connect(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/t/globex/live/")
    communicator.scope["user"] = user
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_members_get_a_message_a_second_and_only_finance_sees_spend(market, globex_finance, settings):
    feed(settings, [usage_event(market, datetime.now(UTC), cost_micros=500) for _ in range(3)], time.time() - 1)
    finance, developer = await _connect(globex_finance), await _connect(market.developer)

    assert (await finance.connect())[0]
    assert (await developer.connect())[0]
    first, second = await finance.receive_json_from(timeout=3), await finance.receive_json_from(timeout=3)
    seen_by_developer = await developer.receive_json_from(timeout=3)
    await finance.disconnect()
    await developer.disconnect()

    assert first["calls_last_minute"] == 3
    assert first["spend_today_micros"] == 1500
    assert second["at"] > first["at"]  # a new message each second
    assert seen_by_developer["calls_last_minute"] == 3
    assert "spend_today_micros" not in seen_by_developer


@pytest.mark.django_db(transaction=True)
async def test_outsiders_and_anonymous_users_are_refused(market):
    from django.contrib.auth.models import AnonymousUser

    outsider = await _connect(market.acme_owner)  # a member of Acme, not of Globex
    anonymous = await _connect(AnonymousUser())

    assert await outsider.connect() == (False, 4403)
    assert await anonymous.connect() == (False, 4403)
    await asyncio.sleep(0)

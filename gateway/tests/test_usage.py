"""Every call leaves exactly one usage event: tokens, cost, latency, deployment, status — none lost, none twice."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from analytics.models import UsageEvent
from analytics.services import usage_events_record, usage_stream_drain
from gateway.proxy import usage
from gateway.tests.fixtures import recorded_usage, stream_and_hang_up

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there, usage"}]}


def _sse_events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


async def test_a_call_is_recorded_once_with_tokens_cost_and_deployment(gateway, served, market):
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    reported = response.json()["usage"]

    [event] = await recorded_usage()

    assert event.request_id == response.headers["x-request-id"]
    assert (event.tenant_id, event.publisher_id) == (market.globex.pk, market.acme.pk)
    assert (event.application_slug, event.api_label, event.model) == ("globex-web", "acme/assistant", "gpt-4o-mini")
    assert (event.status, event.endpoint, event.deployment_name, event.attempts) == (200, "chat", "mock", 1)
    assert (event.prompt_tokens, event.completion_tokens) == (reported["prompt_tokens"], reported["completion_tokens"])
    # $0.15 / $0.60 per 1M tokens, in micro-USD, rounded half up
    expected = (reported["prompt_tokens"] * 150_000 + reported["completion_tokens"] * 600_000 + 500_000) // 1_000_000
    assert event.cost_micros == expected
    assert event.key_public_id == served["key"].public_id
    assert not event.usage_is_estimated
    assert (event.region, event.client_ip) == ("eu", "127.0.0.1")
    assert event.upstream_ms is not None
    assert event.upstream_ms <= event.latency_ms


async def test_a_stream_is_billed_by_the_usage_the_client_did_not_ask_for(gateway, served, mock_llm):
    response = await gateway.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=served["auth"])

    chunks = _sse_events(response.text)
    [event] = await recorded_usage()

    assert mock_llm.journal[-1]["body"]["stream_options"] == {"include_usage": True}  # asked upstream…
    assert all(chunk.get("usage") is None for chunk in chunks)  # …but not passed on: the client did not ask
    assert all(chunk["model"] == "gpt-4o-mini" for chunk in chunks)
    assert event.is_stream
    assert event.status == 200
    assert event.prompt_tokens > 0
    assert event.completion_tokens > 0
    assert event.ttft_ms is not None
    assert event.ttft_ms <= event.latency_ms


async def test_a_stream_that_asks_for_usage_gets_it_and_the_same_numbers_are_billed(gateway, served):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])

    usage_chunk = _sse_events(response.text)[-1]
    [event] = await recorded_usage()

    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == event.prompt_tokens
    assert usage_chunk["usage"]["completion_tokens"] == event.completion_tokens


async def test_refused_calls_of_a_known_key_are_logged_for_its_tenant_and_unknown_keys_are_not(gateway, served):
    refused = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=served["auth"])
    stranger = await gateway.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer gh_x"})

    events = await recorded_usage()

    assert (refused.status_code, stranger.status_code) == (404, 401)
    assert [(e.status, e.error_code, e.prompt_tokens, e.cost_micros) for e in events] == [
        (404, "model_not_found", 0, 0)
    ]


async def test_many_concurrent_calls_leave_exactly_as_many_events(gateway, served):
    responses = await asyncio.gather(
        *(gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(120))
    )

    events = await recorded_usage()

    assert [r.status_code for r in responses] == [200] * 120
    assert sorted(e.request_id for e in events) == sorted(r.headers["x-request-id"] for r in responses)


async def test_a_client_leaving_mid_stream_cancels_the_upstream_call_and_is_recorded_once(gateway, served, mock_llm):

    await sync_to_async(served["route_to"])(f"{mock_llm.url}/stream-delay/200/v1", "slow")
    sent = await stream_and_hang_up(served["auth"], {**CHAT, "stream": True})
    await asyncio.sleep(0.2)  # the mock notices the closed connection at its next write

    [event] = await recorded_usage()

    assert mock_llm.journal[-1]["outcome"] == "cancelled"
    assert not any(b"[DONE]" in m.get("body", b"") for m in sent)
    assert (event.status, event.error_code, event.is_stream) == (499, "client_disconnected", True)
    assert event.usage_is_estimated
    assert event.prompt_tokens > 0
    assert event.completion_tokens >= 1


async def test_events_wait_in_memory_while_every_sink_fails_and_are_delivered_later(gateway, served, monkeypatch):
    async def broken(self, events):
        raise ConnectionError("sink down")

    monkeypatch.setattr(usage.RedisStreamSink, "write", broken)
    monkeypatch.setattr(usage.DatabaseSink, "write", broken)
    for _ in range(3):
        assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code == 200
    assert not await usage.RECORDER.flush()
    assert usage.RECORDER.pending == 3

    monkeypatch.undo()
    events = await recorded_usage()

    assert len(events) == 3
    assert usage.RECORDER.pending == 0


@pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis stream needs Redis (CI runs with it)")
async def test_with_redis_down_events_go_straight_to_the_database(gateway, served, monkeypatch):
    async def redis_down(self, events):
        raise ConnectionError("redis down")

    monkeypatch.setattr(usage.RedisStreamSink, "write", redis_down)
    await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    await usage.RECORDER.flush()

    assert await sync_to_async(UsageEvent.all_tenants.count)() == 1


def _event(market, event_id: str) -> dict:
    return {"event_id": event_id, "request_id": "r", "occurred_at": "2026-11-27T10:00:00+00:00",
            "tenant_id": market.globex.pk, "publisher_id": market.acme.pk, "application_id": market.app.pk,
            "application_slug": "globex-web", "key_public_id": "abcdefgh", "endpoint": "chat", "status": 200,
            "prompt_tokens": 3, "completion_tokens": 4, "cost_micros": 1}  # fmt: skip


def test_recording_the_same_events_again_stores_nothing_new(market):
    events = [_event(market, "a" * 32), _event(market, "b" * 32)]

    assert usage_events_record(events=events) == 2
    assert usage_events_record(events=[*events, _event(market, "c" * 32)]) == 1
    assert UsageEvent.all_tenants.count() == 3


@pytest.mark.skipif(not settings.REDIS_URL, reason="the Redis stream needs Redis (CI runs with it)")
def test_a_drain_that_died_before_acknowledging_is_taken_over_without_double_counting(market, monkeypatch):
    import redis

    from analytics import services

    client = redis.Redis.from_url(settings.REDIS_URL)
    for n in range(5):
        client.xadd(settings.USAGE_STREAM, {"event": json.dumps(_event(market, f"{n:032d}"))})
    monkeypatch.setattr(redis.Redis, "xack", lambda *a, **k: (_ for _ in ()).throw(redis.ConnectionError("died")))
    with pytest.raises(redis.ConnectionError):
        usage_stream_drain(consumer="worker-1")  # stored and committed, then died before acknowledging
    monkeypatch.undo()
    monkeypatch.setattr(services, "CLAIM_IDLE_MS", 0)  # as if worker-1 had been silent for a minute

    taken_over = usage_stream_drain(consumer="worker-2")
    again = usage_stream_drain(consumer="worker-2")

    assert UsageEvent.all_tenants.count() == 5
    assert (taken_over, again) == (0, 0)  # the 5 were already stored by worker-1: nothing counted twice
    assert client.xlen(settings.USAGE_STREAM) == 0
    assert client.xpending(settings.USAGE_STREAM, services.CONSUMER_GROUP)["pending"] == 0
    client.close()

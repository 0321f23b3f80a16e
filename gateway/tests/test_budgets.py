"""Quotas and budgets: reserve the worst case, settle what was used, never overspend — in parallel, while
streaming, and without Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async

from analytics.models import AlertEvent
from gateway import services as catalog
from gateway.proxy import budgets, limits
from gateway.proxy.limits import Quota
from gateway.tests.fixtures import recorded_usage
from tenants import services as tenant_services
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)  # the gateway reads the database from another thread
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture(autouse=True)
async def _limiter_closed():
    yield
    await limits.LIMITER.close()


@pytest.fixture
def quota(request, served, market):
    """The publisher's policy: these rules for every subscription to its APIs (set before the gateway caches)."""
    catalog.policy_set(level="publisher", target=market.acme, rules=request.param, actor=tenant_services.SYSTEM)
    return request.param


async def held(served, metric: str, period: str = "day") -> tuple[int, int]:
    """(used, reserved) of the served subscription's quota of ``metric`` this period."""
    await limits.LIMITER.flush()  # with Redis, settlements are written in batches every 50 ms
    quota = Quota("subscription", str(served["subscription"].pk), metric, 1, period, "UTC")
    return await limits.LIMITER.held(quota.at(time.time()))


def _sse(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


# --- max_tokens ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ['-1', '0', '1.5', 'NaN', 'Infinity', 'true', '"100"', '100000000000000000000'], ids=str
)  # fmt: skip
async def test_a_max_tokens_that_is_not_a_sane_whole_number_is_refused_before_anything_is_spent(
    gateway, served, mock_llm, raw
):
    body = json.dumps(CHAT)[:-1] + f', "max_tokens": {raw}}}'

    answer = await gateway.post("/v1/chat/completions", content=body, headers=served["auth"])

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "max_tokens"
    assert "whole number from 1 to 10,000,000" in answer.json()["error"]["message"]
    assert len(mock_llm.journal) == 0


# --- quotas through the gateway -----------------------------------------------------------------------------


@pytest.mark.parametrize("quota", [{"quota": {"period": "day", "requests": 2}}], indirect=True)
async def test_a_request_quota_refuses_with_insufficient_quota_until_the_period_ends(quota, gateway, served, mock_llm):
    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    error = answers[2].json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "quota of 2 requests per day (set by publisher acme)" in error["message"]
    assert 0 < int(answers[2].headers["retry-after"]) <= 86_400  # the next midnight (the tenant's: UTC)
    assert len(mock_llm.journal) == 2
    assert await held(served, "requests") == (2, 0)


@pytest.mark.parametrize("quota", [{"quota": {"period": "day", "tokens": 100}}], indirect=True)
async def test_a_reservation_is_settled_to_what_the_call_used(quota, gateway, served):
    # Each call reserves its prompt (counted offline) + max_tokens 50 ≈ 59 tokens: two reservations held at once
    # would not fit 100, so the second call passes only because the first one settled to its real ~4 tokens.
    body = {**CHAT, "max_tokens": 50}
    assert budgets.prompt_tokens(body) + 50 > 50

    first = await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])
    await limits.LIMITER.flush()
    second = await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])

    assert (first.status_code, second.status_code) == (200, 200)
    used = sum(a.json()["usage"]["total_tokens"] for a in (first, second))
    assert await held(served, "tokens") == (used, 0)  # nothing stays reserved


@pytest.mark.parametrize("quota", [{"quota": {"period": "day", "tokens": 100}}], indirect=True)
async def test_a_call_whose_worst_case_exceeds_the_whole_quota_is_refused(quota, gateway, served, mock_llm):
    answer = await gateway.post("/v1/chat/completions", json={**CHAT, "max_tokens": 500}, headers=served["auth"])

    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "insufficient_quota"
    assert "is larger than the whole subscription quota of 100 tokens per day" in answer.json()["error"]["message"]
    assert "retry-after" not in answer.headers  # waiting would not help
    assert len(mock_llm.journal) == 0


@pytest.mark.parametrize("quota", [{"quota": {"tokens": 10_000}, "max_tokens": {"default": 7}}], indirect=True)
async def test_an_answer_without_max_tokens_is_capped_where_its_reservation_ends(quota, gateway, served, mock_llm):
    answer = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert answer.status_code == 200
    assert mock_llm.journal[-1]["body"]["max_tokens"] == 7


@pytest.mark.parametrize("quota", [{"quota": {"period": "month", "cost_micros": 1_000_000}}], indirect=True)
async def test_the_settled_spend_equals_the_call_logs_cost_to_the_micro_dollar(quota, gateway, served):
    bodies = [{**CHAT, "messages": [{"role": "user", "content": "word " * n}]} for n in (1, 7, 40)]
    for body in bodies:
        assert (await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])).status_code == 200
    stream = await gateway.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=served["auth"])
    assert stream.status_code == 200

    events = await recorded_usage()

    assert len(events) == 4
    spent = sum(e.cost_micros for e in events)
    assert spent > 0
    assert await held(served, "cost", "month") == (spent, 0)


@pytest.mark.parametrize("quota", [{"quota": {"period": "day", "tokens": 190}}], indirect=True)
async def test_parallel_calls_never_overspend_a_budget(quota, gateway, served, mock_llm):
    """100 calls at once, each reserving ~19 tokens (prompt + max_tokens 10), against 190: ten fit."""
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/latency/300/v1", "slow")  # all in flight together
    body = {**CHAT, "max_tokens": 10}
    worst = budgets.prompt_tokens(body) + 10
    assert 190 // worst == 10

    answers = await asyncio.gather(
        *(gateway.post("/v1/chat/completions", json=body, headers=served["auth"]) for _ in range(100))
    )

    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 90
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} == {"insufficient_quota"}
    used, reserved = await held(served, "tokens")
    assert reserved == 0
    assert used == sum(a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200) <= 190


@pytest.mark.parametrize(
    "quota", [{"quota": {"period": "day", "tokens": 26}, "max_tokens": {"default": 2}}], indirect=True
)
async def test_a_stream_is_cut_with_an_error_chunk_when_its_budget_runs_out(quota, gateway, served):
    words = "one two three four five six seven eight nine ten"
    body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": f"!reply {words}"}]}
    prompt = budgets.prompt_tokens(body)
    room = 26 - prompt  # completion tokens the budget can pay for
    assert 2 <= room < 10

    response = await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])

    data = _sse(response.text)
    assert response.status_code == 200  # the stream had started: the error travels in it
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert (error["code"], error["type"]) == ("insufficient_quota", "insufficient_quota")
    streamed = "".join(
        chunk["choices"][0]["delta"].get("content") or "" for chunk in map(json.loads, data[:-2]) if chunk["choices"]
    )
    assert streamed == " ".join(words.split()[:room])  # every token the budget covers, and not one more
    [event] = await recorded_usage()
    assert (event.status, event.error_code, event.usage_is_estimated) == (200, "insufficient_quota", True)
    assert (event.prompt_tokens, event.completion_tokens) == (prompt, room)
    assert await held(served, "tokens") == (prompt + room, 0)  # settled at what was streamed: 26


@pytest.mark.parametrize("quota", [{"quota": {"period": "day", "requests": 1}}], indirect=True)
async def test_without_redis_quotas_fail_closed_while_rate_limits_fall_back(quota, gateway, served, mock_llm, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    await limits.LIMITER.close()

    answer = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "quota_unavailable"
    assert answer.headers["retry-after"] == "1"
    assert len(mock_llm.journal) == 0  # money is never spent blind


@pytest.mark.parametrize(
    "quota", [{"quota": {"period": "day", "requests": 4, "alert_at_percent": [50, 100]}}], indirect=True
)
async def test_thresholds_raise_one_alert_each_per_period(quota, gateway, served, market):
    for _ in range(5):
        await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
        await limits.LIMITER.flush()

    await recorded_usage()  # alert events travel with the usage events
    alerts = await sync_to_async(lambda: list(AlertEvent.all_tenants.order_by("occurred_at")))()

    assert [a.details["percent"] for a in alerts] == [50, 100]
    assert {a.tenant_id for a in alerts} == {market.globex.pk}  # the consumer hears about its own quota
    assert alerts[0].message == "50% of the subscription quota of 4 requests per day (set by publisher acme) is used."


@pytest.mark.parametrize("quota", [{"quota": {"period": "day", "requests": 10, "grace_percent": 20}}], indirect=True)
async def test_a_grace_percentage_lets_calls_run_past_the_quota_by_that_much(quota, gateway, served):
    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(13)]

    assert [a.status_code for a in answers].count(200) == 12
    assert answers[-1].status_code == 429


# --- Redis going away and coming back ------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path, settings):
    """A Redis server of this test's own (the shared one cannot be stopped), with its data on disk like
    production's (appendonly), pointed to by REDIS_URL; ``stop()`` and ``start()`` it at will."""
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    port = free_port()
    processes: list[subprocess.Popen] = []

    def start() -> None:
        command = ["redis-server", "--port", str(port), "--dir", str(tmp_path), "--appendonly", "yes", "--save", ""]
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop() -> None:
        processes[-1].terminate()
        processes[-1].wait(10)

    start()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    yield SimpleNamespace(start=start, stop=stop)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize("quota", [{"quota": {"period": "day", "tokens": 10_000}}], indirect=True)
async def test_redis_stopped_mid_test_fails_budgets_closed_and_recovery_counts_once(
    quota, own_redis, gateway, served, mock_llm, monkeypatch
):
    await limits.LIMITER.close()  # forget the shared Redis: talk to this test's own
    monkeypatch.setattr(limits, "TOKENS_FLUSH_SECONDS", 3600.0)  # settlements wait until this test flushes them
    first = await gateway.post("/v1/chat/completions", json={**CHAT, "max_tokens": 20}, headers=served["auth"])
    assert first.status_code == 200
    used = first.json()["usage"]["total_tokens"]

    own_redis.stop()  # the call's reservation is in Redis, its settlement is not written yet
    await limits.LIMITER.flush()  # fails: the settlement is kept
    during = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    own_redis.start()  # with its data (appendonly): the reservation is still held
    await asyncio.sleep(limits.REDIS_RETRY_SECONDS + 0.1)
    await limits.LIMITER.flush()  # written now…
    await limits.LIMITER.flush()  # …and only once
    after = await gateway.post("/v1/chat/completions", json={**CHAT, "max_tokens": 20}, headers=served["auth"])
    await limits.LIMITER.flush()

    assert (during.status_code, during.json()["error"]["code"]) == (503, "quota_unavailable")
    assert after.status_code == 200
    assert await held(served, "tokens") == (used + after.json()["usage"]["total_tokens"], 0)
    assert len(mock_llm.journal) == 2  # nothing was spent blind


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (CI runs with it)")
async def test_a_settlement_sent_again_after_a_lost_reply_counts_once(served, monkeypatch):
    from redis.asyncio.client import Pipeline

    quota = Quota("subscription", "x", "tokens", 1000, "day", "UTC").at(time.time())
    for used in (3, 4):  # two calls ending together: one write for the quota
        limits.LIMITER.settle([limits.Settlement(quota, reserved=0, used=used)])
    execute = Pipeline.execute

    async def written_but_reply_lost(self, *args, **kwargs):
        await execute(self, *args, **kwargs)
        raise ConnectionError("the reply was lost")

    monkeypatch.setattr(Pipeline, "execute", written_but_reply_lost)
    await limits.LIMITER.flush()  # written, but the limiter cannot know: it keeps the write
    monkeypatch.setattr(Pipeline, "execute", execute)
    await asyncio.sleep(limits.REDIS_RETRY_SECONDS + 0.1)  # the limiter rests after a failure
    await limits.LIMITER.flush()  # sent again, with the same id

    assert await limits.LIMITER.held(quota) == (7, 0)

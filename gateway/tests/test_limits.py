"""Rate limits: exact sliding windows, all counters in one atomic step, OpenAI's headers, Redis or local."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from asgiref.sync import sync_to_async

from gateway.models import Plan
from gateway.proxy import limits
from gateway.proxy.limits import Limit, LocalWindows, Take

pytestmark = pytest.mark.django_db(transaction=True)  # the gateway reads the database from another thread
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (CI runs with it)")


@pytest.fixture(autouse=True)
async def _limiter_closed():
    yield
    await limits.LIMITER.close()


def per_minute(n: int, metric: str = "requests", subject: str = "1") -> Limit:
    return Limit("subscription", subject, metric, n, 60, "plan Test")


# --- the windows, in process memory -------------------------------------------------------------------------


def test_a_window_admits_exactly_its_limit_and_says_when_room_comes_back():
    windows, limit = LocalWindows(), per_minute(3)
    admitted = [windows.take([Take(limit, 1, 1)], now=1000 + i).allowed for i in range(5)]

    assert admitted == [True, True, True, False, False]
    refused = windows.take([Take(limit, 1, 1)], now=1010)
    assert refused.retry_after == 50  # the call of second 1000 leaves the window at 1060
    assert not windows.take([Take(limit, 1, 1)], now=1059).allowed
    assert windows.take([Take(limit, 1, 1)], now=1060).allowed


def test_counters_are_taken_all_or_nothing():
    windows, tight, loose = LocalWindows(), per_minute(1, subject="a"), per_minute(10, subject="b")
    assert windows.take([Take(tight, 1, 1), Take(loose, 1, 1)], now=0).allowed

    for _ in range(5):
        refused = windows.take([Take(tight, 1, 1), Take(loose, 1, 1)], now=1)
        assert not refused.allowed
        assert refused.blocked_by == tight

    assert windows.take([Take(loose, 1, 1)], now=2).states[0].used == 2  # the refusals consumed nothing


def test_tokens_are_checked_by_estimate_and_counted_by_use():
    windows, tokens = LocalWindows(), per_minute(100, "tokens")
    first = windows.take([Take(tokens, 10, 0)], now=0)
    windows.add(tokens, first.second, 95)

    assert not windows.take([Take(tokens, 10, 0)], now=1).allowed
    assert windows.take([Take(tokens, 5, 0)], now=1).allowed


async def test_a_request_larger_than_a_limit_is_refused_without_a_retry_time():
    decision = await limits.LIMITER.take([Take(per_minute(100, "tokens"), 500, 0)])

    assert not decision.allowed
    assert "retry-after" not in decision.headers()
    assert "allows at all" in limits.retry_after_message(decision)


def test_without_redis_each_worker_counts_its_share():
    windows = LocalWindows(divisor=4)

    assert [windows.take([Take(per_minute(10), 1, 1)], now=0).allowed for _ in range(3)] == [True, True, False]


# --- the windows in Redis: one atomic script, shared by every worker ----------------------------------------


@needs_redis
async def test_a_hundred_concurrent_calls_against_sixty_per_minute_admit_exactly_sixty():
    limit = per_minute(60)

    decisions = await asyncio.gather(*(limits.LIMITER.take([Take(limit, 1, 1)]) for _ in range(100)))

    assert sum(d.allowed for d in decisions) == 60
    assert all(d.retry_after >= 1 for d in decisions if not d.allowed)


@needs_redis
async def test_redis_counters_are_all_or_nothing_and_report_their_state():
    tight, loose = per_minute(2, subject="t"), per_minute(100, subject="l")
    for _ in range(5):
        await limits.LIMITER.take([Take(tight, 1, 1), Take(loose, 1, 1)])

    state = await limits.LIMITER.take([Take(loose, 1, 1)])

    assert state.states[0].used == 3  # two admitted together with `tight`, and this one
    assert state.headers()["x-ratelimit-remaining-requests"] == "97"
    assert state.headers()["x-ratelimit-reset-requests"].endswith("s")


@needs_redis
async def test_when_redis_goes_away_limits_are_kept_locally_and_an_alert_is_logged(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.GATEHOUSE_EXPECTED_WORKERS = 2
    limiter = limits.Limiter()

    with caplog.at_level(logging.ERROR, logger="gateway.proxy.limits"):
        decisions = [await limiter.take([Take(per_minute(6), 1, 1)]) for _ in range(5)]
    await limiter.close()

    assert [d.allowed for d in decisions] == [True, True, True, False, False]  # 6 ÷ 2 workers
    assert len([r for r in caplog.records if "ALERT" in r.message]) == 1  # once per outage, not per call


# --- through the gateway ------------------------------------------------------------------------------------


@pytest.fixture
def plan_limits(request, served) -> None:
    """The served subscription's plan gets these limits (set before the gateway first caches the key)."""
    Plan.objects.filter(pk=served["subscription"].plan_id).update(**request.param)


@pytest.mark.parametrize("plan_limits", [{"requests_per_minute": 2}], indirect=True)
async def test_the_gateway_refuses_over_the_plans_requests_per_minute(plan_limits, gateway, served, mock_llm):
    mock_llm.journal.clear()

    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["x-ratelimit-limit-requests"] == "2"
    assert answers[1].headers["x-ratelimit-remaining-requests"] == "0"
    refused = answers[2]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "2 requests per minute (set by plan Free)" in refused.json()["error"]["message"]
    assert len(mock_llm.journal) == 2  # the refused call never reached the provider


@pytest.mark.parametrize("plan_limits", [{"tokens_per_minute": 45}], indirect=True)
async def test_the_gateway_counts_real_tokens_against_tokens_per_minute(plan_limits, gateway, served, mock_llm):
    # Estimated at ~33 tokens before the call (fits 45); really 20 prompt + 22 echoed tokens.
    long = {**CHAT, "messages": [{"role": "user", "content": "word " * 20}]}

    first = await gateway.post("/v1/chat/completions", json=long, headers=served["auth"])
    await limits.LIMITER.flush()  # with Redis, token counts are written in batches every 50 ms
    second = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "45"
    assert first.json()["usage"]["total_tokens"] > 45 - 9  # what is left is less than the next call's estimate
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "tokens"


@pytest.mark.parametrize("plan_limits", [{"requests_per_minute": 1}], indirect=True)
async def test_a_refused_call_is_in_the_call_log(plan_limits, gateway, served, mock_llm):
    from gateway.tests.fixtures import recorded_usage

    for _ in range(2):
        await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    events = await recorded_usage()

    assert [(e.status, e.error_code) for e in events] == [(200, ""), (429, "rate_limit_exceeded")]


# --- deployments: upstream protection ------------------------------------------------------------------------


async def test_a_full_deployment_is_passed_over_for_the_next_one(gateway, served, mock_llm):
    from gateway.tests.fixtures import recorded_usage

    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "small", requests_per_minute=1)
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "spare", fallback_order=1, replace=False)

    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all("x-ratelimit-limit-requests" not in a.headers for a in answers)  # the publisher's business
    assert [e.deployment_name for e in await recorded_usage()] == ["small", "spare", "spare"]
    assert all(e.attempts == 1 for e in await recorded_usage())  # passed over, not tried and failed


async def test_when_every_deployment_is_full_the_call_is_refused_like_a_provider_would(gateway, served, mock_llm):
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "small", requests_per_minute=1)
    mock_llm.journal.clear()

    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]
    assert "at its capacity" in answers[1].json()["error"]["message"]
    assert "small" not in answers[1].text  # deployment names stay the publisher's
    assert 1 <= int(answers[1].headers["retry-after"]) <= 60
    assert len(mock_llm.journal) == 1


@pytest.mark.parametrize("plan_limits", [{"requests_per_minute": 5}], indirect=True)
async def test_a_call_refused_by_its_own_limit_takes_nothing_from_the_deployment(
    plan_limits, gateway, served, mock_llm
):
    from gateway.models import Deployment

    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "small", requests_per_minute=100)
    statuses = [
        (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code for _ in range(7)
    ]
    assert statuses == [200] * 5 + [429] * 2

    deployment_id = await sync_to_async(lambda: Deployment.objects.get(name="small").pk)()
    probe = await limits.LIMITER.take([Take(Limit("deployment", str(deployment_id), "requests", 100), 1, 1)])
    assert probe.states[0].used == 6  # the five admitted calls and this probe: the refusals took nothing

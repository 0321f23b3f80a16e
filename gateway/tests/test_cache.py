"""The response cache: deterministic answers served again without the provider, never across tenants, counted as
requests but never as tokens or money."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async

from gateway import services as catalog
from gateway.models import Plan
from gateway.proxy import limits
from gateway.proxy.limits import Quota
from gateway.tests.fixtures import recorded_usage
from subscriptions import services as subscription_services
from tenants import services as tenant_services
from tenants.tests.fixtures import make_user

pytestmark = pytest.mark.django_db(transaction=True)
SYSTEM = tenant_services.SYSTEM
DETERMINISTIC = {
    "model": "gpt-4o-mini",
    "temperature": 0,
    "messages": [{"role": "user", "content": "Capital of France?"}],
}


@pytest.fixture(autouse=True)
async def _limiter_closed():
    yield
    await limits.LIMITER.close()


@pytest.fixture
def cached(request, served, market):
    """Acme caches the answers of its APIs (plus whatever rules the test adds)."""
    rules = {"cache": {"enabled": True, "ttl_seconds": 60}, **getattr(request, "param", {})}
    catalog.policy_set(level="publisher", target=market.acme, rules=rules, actor=SYSTEM)


async def call(gateway, served, body=DETERMINISTIC, **headers):
    return await gateway.post("/v1/chat/completions", json=body, headers={**served["auth"], **headers})


async def test_a_deterministic_answer_is_served_again_without_the_provider_and_costs_nothing(
    cached, gateway, served, mock_llm
):
    first = await call(gateway, served)
    second = await call(gateway, served)

    assert (first.headers["x-gatehouse-cache"], second.headers["x-gatehouse-cache"]) == ("miss", "hit")
    assert second.json() == first.json()
    assert len(mock_llm.journal) == 1
    events = await recorded_usage()
    assert [(e.cache_hit, e.status) for e in events] == [(False, 200), (True, 200)]
    assert (events[1].prompt_tokens, events[1].completion_tokens, events[1].cost_micros) == (0, 0, 0)
    assert events[0].cost_micros > 0


async def test_no_cache_skips_the_lookup_and_stores_the_fresh_answer(cached, gateway, served, mock_llm):
    await call(gateway, served)
    fresh = await call(gateway, served, **{"cache-control": "no-cache"})
    again = await call(gateway, served)

    assert fresh.headers["x-gatehouse-cache"] == "miss"
    assert again.headers["x-gatehouse-cache"] == "hit"
    assert len(mock_llm.journal) == 2


@pytest.mark.parametrize(
    "body",
    [
        {**DETERMINISTIC, "temperature": 0.7},
        {key: value for key, value in DETERMINISTIC.items() if key != "temperature"},
        {**DETERMINISTIC, "n": 2},
        {**DETERMINISTIC, "stream": True},
    ],
    ids=["warm", "default-temperature", "several-choices", "stream"],
)
async def test_answers_that_may_differ_are_never_cached(cached, gateway, served, mock_llm, body):
    answers = [await call(gateway, served, body) for _ in range(2)]

    assert all("x-gatehouse-cache" not in a.headers for a in answers)
    assert len(mock_llm.journal) == 2


async def test_embeddings_are_cached_too(served_embeddings, cached, gateway, served, mock_llm, market):
    body = {"model": "text-embedding-3-small", "input": "hello"}

    answers = [await gateway.post("/v1/embeddings", json=body, headers=served["auth"]) for _ in range(2)]

    assert [a.headers.get("x-gatehouse-cache") for a in answers] == ["miss", "hit"]
    assert len(mock_llm.journal) == 1


async def test_answers_are_never_shared_across_tenants(cached, gateway, served, market, mock_llm):
    def other_tenant_key() -> str:
        initech = tenant_services.tenant_create(slug="initech", name="Initech", owner=make_user("o@initech.test"))
        app = subscription_services.application_create(tenant=initech, slug="app", name="App", actor=SYSTEM)
        subscription_services.subscription_request(application=app, api=market.api, plan=market.free, actor=SYSTEM)
        return subscription_services.api_key_create(application=app, name="k", actor=SYSTEM)[1]

    other = {"authorization": f"Bearer {await sync_to_async(other_tenant_key)()}"}
    await call(gateway, served)

    theirs = await gateway.post("/v1/chat/completions", json=DETERMINISTIC, headers=other)

    assert theirs.headers["x-gatehouse-cache"] == "miss"
    assert len(mock_llm.journal) == 2


@pytest.mark.parametrize("cached", [{"quota": {"period": "day", "requests": 3, "tokens": 10_000}}], indirect=True)
async def test_hits_count_as_requests_but_not_as_tokens(cached, gateway, served, market, mock_llm):
    await sync_to_async(Plan.objects.filter(pk=market.free.pk).update)(requests_per_minute=2)

    answers = [await call(gateway, served) for _ in range(3)]
    await limits.LIMITER.flush()

    assert [a.status_code for a in answers] == [200, 200, 429]  # a miss and a hit fill the 2 requests/min
    assert answers[1].headers["x-gatehouse-cache"] == "hit"
    assert answers[1].headers["x-ratelimit-remaining-requests"] == "0"
    subscription = str(served["subscription"].pk)
    now = time.time()
    requests = await limits.LIMITER.held(Quota("subscription", subscription, "requests", 3, "day", "UTC").at(now))
    tokens = await limits.LIMITER.held(Quota("subscription", subscription, "tokens", 1, "day", "UTC").at(now))
    assert requests == (2, 0)
    assert tokens == (answers[0].json()["usage"]["total_tokens"], 0)  # the miss only


@pytest.mark.parametrize("cached", [{"output": {"deny_terms": ["paris"], "action": "mask"}}], indirect=True)
async def test_a_cached_answer_passes_the_output_filter_too(cached, gateway, served, mock_llm):
    body = {**DETERMINISTIC, "messages": [{"role": "user", "content": "!reply It is Paris."}]}

    answers = [await call(gateway, served, body) for _ in range(2)]

    assert [a.headers["x-gatehouse-cache"] for a in answers] == ["miss", "hit"]
    assert [a.json()["choices"][0]["message"]["content"] for a in answers] == ["It is [FILTERED]."] * 2

"""The hot path in-process: zero ORM queries once warm, access changes effective at once, upstream failures mapped."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.db.backends.utils import CursorWrapper

from gateway import services as catalog
from subscriptions import services as subscription_services
from tenants import services as tenant_services

pytestmark = pytest.mark.django_db(transaction=True)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


async def test_a_warm_call_touches_no_database(gateway, served, monkeypatch):
    warm = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    assert warm.status_code == 200

    def no_queries(*args, **kwargs):
        raise AssertionError("the hot path ran a database query")

    monkeypatch.setattr(CursorWrapper, "execute", no_queries)
    monkeypatch.setattr(CursorWrapper, "executemany", no_queries)
    answers = [await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"]) for _ in range(50)]
    models = await gateway.get("/v1/models", headers=served["auth"])

    assert [a.status_code for a in answers] == [200] * 50
    assert answers[-1].json()["choices"][0]["message"]["content"] == "echo: Hi"
    assert models.status_code == 200


async def test_revoking_a_key_takes_effect_on_the_next_call(gateway, served):
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code == 200

    await sync_to_async(subscription_services.api_key_revoke)(key=served["key"], actor=tenant_services.SYSTEM)
    after = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_api_key"


async def test_suspending_the_subscription_takes_effect_on_the_next_call(gateway, served):
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code == 200

    await sync_to_async(subscription_services.subscription_suspend)(
        subscription=served["subscription"], actor=tenant_services.SYSTEM
    )
    after = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert after.status_code == 403
    assert after.json()["error"]["code"] == "subscription_required"
    assert "acme/assistant" in after.json()["error"]["message"]


@pytest.mark.parametrize(
    ("prefix", "status", "code"),
    [
        ("/fail/429", 429, "rate_limit_exceeded"),
        ("/fail/500", 502, "upstream_error"),
        ("/fail/503", 502, "upstream_error"),
        ("/fail/badjson", 502, "upstream_bad_response"),
        ("/fail/reset", 502, "upstream_unreachable"),
        ("/fail/timeout", 504, "upstream_timeout"),
    ],
)
async def test_upstream_failures_map_to_openai_errors_without_leaking(gateway, served, mock_llm, prefix, status, code):
    await sync_to_async(served["route_to"])(
        f"{mock_llm.url}{prefix}/v1", f"faulty{prefix.replace('/', '-')}", timeout=1
    )

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert "mock" not in error["message"]  # nothing of the upstream's own answer is passed on
    assert "127.0.0.1" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "1"


async def test_unreachable_upstream_is_a_502(gateway, served):
    from tests.servers import free_port

    await sync_to_async(served["route_to"])(f"http://127.0.0.1:{free_port()}/v1", "nowhere")

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


async def test_oversized_and_malformed_bodies_are_refused(gateway, served):
    huge = await gateway.post(
        "/v1/chat/completions", content=b'{"x": "' + b"a" * (11 * 1024 * 1024) + b'"}', headers=served["auth"]
    )
    broken = await gateway.post("/v1/chat/completions", content=b"{nope", headers=served["auth"])
    listed = await gateway.post("/v1/chat/completions", content=b"[1, 2]", headers=served["auth"])

    assert huge.status_code == 413
    assert broken.status_code == 400
    assert listed.status_code == 400


async def test_keys_are_read_from_the_three_headers_and_never_the_query_string(gateway, served):
    full = served["auth"]["authorization"].removeprefix("Bearer ")

    for headers in ({"api-key": full}, {"x-api-key": full}, {"authorization": f"bearer {full}"}):
        assert (await gateway.get("/v1/models", headers=headers)).status_code == 200
    assert (await gateway.get(f"/v1/models?api_key={full}")).status_code == 401


async def test_a_failing_primary_falls_back_before_the_client_sees_anything(gateway, served, mock_llm):
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/fail/503/v1", "primary")
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "fallback", fallback_order=1, replace=False)
    mock_llm.journal.clear()

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: Hi"
    assert [r["path"] for r in mock_llm.journal] == ["/fail/503/v1/chat/completions", "/v1/chat/completions"]


async def test_streams_fall_back_too_while_nothing_was_sent(gateway, served, mock_llm):
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/fail/429/v1", "primary")
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "fallback", fallback_order=1, replace=False)

    response = await gateway.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=served["auth"])

    assert response.status_code == 200
    assert "echo:" in response.text
    assert response.text.rstrip().endswith("data: [DONE]")


async def test_when_every_deployment_fails_the_last_error_is_reported(gateway, served, mock_llm):
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/fail/503/v1", "primary")
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/fail/429/v1", "fallback", fallback_order=1, replace=False)

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"


async def test_guessed_keys_cannot_grow_the_cache_without_bound(monkeypatch, db):
    from gateway.proxy import snapshot

    monkeypatch.setattr(snapshot, "MAX_NEGATIVE_ENTRIES", 5)
    monkeypatch.setattr(snapshot, "key_access_snapshot", lambda public_id: None)
    cache = snapshot.AccessCache()

    for n in range(50):
        assert await cache.key(f"guess{n:03d}") is None

    assert len(cache._keys) == 5


async def test_a_failing_deployment_is_retried_within_the_attempt_budget(gateway, served, mock_llm):
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/fail/503/v1", "flaky")
    mock_llm.journal.clear()

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert response.status_code == 502
    assert len(mock_llm.journal) == 3  # MAX_ATTEMPTS, with a jittered backoff between them


async def test_a_deployment_that_keeps_failing_is_skipped_until_its_probe(gateway, served, mock_llm, monkeypatch):
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/fail/503/v1", "primary")
    await sync_to_async(served["route_to"])(f"{mock_llm.url}/v1", "fallback", fallback_order=1, replace=False)
    for _ in range(5):  # five failures of the primary open its circuit
        assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code == 200
    mock_llm.journal.clear()

    skipped = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    assert skipped.status_code == 200
    assert [r["path"] for r in mock_llm.journal] == ["/v1/chat/completions"]  # the primary was not tried

    later = time.monotonic() + 31  # after the cool-down, one request probes the primary again
    monkeypatch.setattr(time, "monotonic", lambda: later)
    mock_llm.journal.clear()
    await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    assert [r["path"] for r in mock_llm.journal] == [
        "/fail/503/v1/chat/completions",  # the probe (fails: open again)
        "/v1/chat/completions",
        "/v1/chat/completions",  # skipped again
    ]


async def test_a_deprecated_version_answers_with_deprecation_and_sunset_headers(gateway, served, market):
    from datetime import UTC, datetime, timedelta

    sunset = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code == 200
    version = await sync_to_async(market.api.versions.get)()
    await sync_to_async(catalog.version_set_status)(
        version=version, status="deprecated", sunset_at=sunset, actor=tenant_services.SYSTEM
    )

    plain = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])
    streamed = await gateway.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=served["auth"])

    for response in (plain, streamed):
        assert response.status_code == 200
        assert response.headers["deprecation"].startswith("@")
        assert response.headers["sunset"] == "Thu, 31 Jan 2030 12:00:00 GMT"
    assert timedelta(0) < sunset - datetime.now(UTC)


async def test_a_retired_version_answers_410_naming_its_successor(gateway, served, market):
    version = await sync_to_async(market.api.versions.get)()

    def publish_v2_and_retire_v1() -> None:
        v2 = catalog.version_create(api=market.api, version="v2", model_alias="gpt-4o", actor=tenant_services.SYSTEM)
        catalog.version_set_status(version=v2, status="published", actor=tenant_services.SYSTEM)
        catalog.version_set_status(version=version, status="retired", actor=tenant_services.SYSTEM)

    await sync_to_async(publish_v2_and_retire_v1)()
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "model_retired"
    assert "gpt-4o" in response.json()["error"]["message"]


async def test_a_model_of_an_api_without_a_subscription_asks_for_one_and_private_ones_stay_hidden(
    gateway, served, market
):
    def publish(slug: str, alias: str, visibility: str) -> None:
        api = catalog.api_create(
            tenant=market.acme, slug=slug, name=slug, kind="chat", actor=tenant_services.SYSTEM, visibility=visibility
        )
        version = catalog.version_create(api=api, version="v1", model_alias=alias, actor=tenant_services.SYSTEM)
        catalog.version_set_status(version=version, status="published", actor=tenant_services.SYSTEM)

    await sync_to_async(publish)("writer", "writer-large", "public")
    await sync_to_async(publish)("internal", "internal-only", "private")

    public = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "writer-large"}, headers=served["auth"])
    private = await gateway.post(
        "/v1/chat/completions", json={**CHAT, "model": "internal-only"}, headers=served["auth"]
    )
    unknown = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "no-such"}, headers=served["auth"])

    assert (public.status_code, public.json()["error"]["code"]) == (403, "subscription_required")
    assert "acme/writer" in public.json()["error"]["message"]
    assert (private.status_code, private.json()["error"]["code"]) == (404, "model_not_found")
    assert private.json()["error"]["message"] == unknown.json()["error"]["message"].replace("no-such", "internal-only")


async def test_a_model_outside_the_plan_is_refused_naming_the_plan(gateway, served, market):
    def second_alias_outside_the_plan() -> None:
        version = catalog.version_create(
            api=market.api, version="v2", model_alias="gpt-4o", actor=tenant_services.SYSTEM
        )
        catalog.version_set_status(version=version, status="published", actor=tenant_services.SYSTEM)
        market.free.allowed_models = ["gpt-4o-mini"]
        market.free.save()
        from portal import events

        events.access_changed(application_ids=[market.app.pk])

    await sync_to_async(second_alias_outside_the_plan)()

    response = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}, headers=served["auth"])

    assert (response.status_code, response.json()["error"]["code"]) == (403, "model_not_in_plan")
    assert "`free`" in response.json()["error"]["message"]

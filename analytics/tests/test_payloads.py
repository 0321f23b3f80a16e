"""Payload logging (a policy's `payloads`): masked prompts and answers in the call log, with their own retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from analytics import services
from analytics.models import CallPayload
from gateway import services as catalog
from gateway.proxy import limits
from gateway.tests.fixtures import recorded_usage
from tenants import services as tenant_services

pytestmark = pytest.mark.django_db(transaction=True)
SECRET_TEXT = "Mail jane.doe@example.com or call +1 415 555 0100 about card 4111 1111 1111 1111"


@pytest.fixture(autouse=True)
async def _limiter_closed():
    yield
    await limits.LIMITER.close()


def _log_payloads(market, **rules) -> None:
    catalog.policy_set(
        level="publisher", target=market.acme, rules={"payloads": {"log": True, **rules}}, actor=tenant_services.SYSTEM
    )


async def test_a_logged_call_keeps_its_prompt_and_answer_masked(gateway, served, market, mock_llm):
    await sync_to_async(_log_payloads)(market, retention_days=3)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SECRET_TEXT}]}

    plain = await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])
    streamed = await gateway.post("/v1/chat/completions", json={**body, "stream": True}, headers=served["auth"])
    [first, second] = await recorded_usage()
    payloads = await sync_to_async(lambda: {p.event_id: p for p in CallPayload.objects.for_tenant(market.globex)})()

    assert plain.status_code == streamed.status_code == 200
    assert SECRET_TEXT in plain.json()["choices"][0]["message"]["content"]  # the client's answer is untouched
    for event in (first, second):
        logged = payloads[event.event_id]
        for original in ("jane.doe@example.com", "415 555 0100", "4111 1111 1111 1111"):
            assert original not in logged.request_text
            assert original not in logged.answer_text
        assert "[EMAIL]" in logged.request_text
        assert logged.answer_text.startswith("echo: Mail [EMAIL]")  # the mock echoes: the answer is logged too
        assert event.occurred_at + timedelta(days=3) == logged.expires_at


async def test_calls_are_not_logged_without_the_policy_and_a_consumer_can_turn_it_off(
    gateway, served, market, mock_llm
):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])
    await sync_to_async(_log_payloads)(market)
    await sync_to_async(catalog.policy_set)(
        level="consumer", target=market.globex, rules={"payloads": {"log": False}}, actor=tenant_services.SYSTEM
    )
    await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])

    assert len(await recorded_usage()) == 2
    assert await sync_to_async(CallPayload.all_tenants.count)() == 0


async def test_payloads_expire_on_their_own_and_show_on_the_call_page_to_owners(gateway, served, market, mock_llm):
    await sync_to_async(_log_payloads)(market, retention_days=1)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SECRET_TEXT}]}
    await gateway.post("/v1/chat/completions", json=body, headers=served["auth"])
    [event] = await recorded_usage()

    def pages() -> tuple[bytes, bytes]:
        owner, developer = Client(), Client()
        owner.force_login(market.globex.memberships.get(role="owner").user)
        developer.force_login(market.developer)
        url = f"/t/globex/calls/{event.event_id}/"
        return owner.get(url).content, developer.get(url).content

    as_owner, as_developer = await sync_to_async(pages)()
    assert b'id="payload-request"' in as_owner
    assert b"jane.doe" not in as_owner
    assert b'id="payload-request"' not in as_developer  # prompts are for those who may read the audit log

    def trim_later() -> int:
        CallPayload.all_tenants.update(expires_at=timezone.now() - timedelta(seconds=1))
        services.call_log_trim()
        return CallPayload.all_tenants.count()

    assert await sync_to_async(trim_later)() == 0

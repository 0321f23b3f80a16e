"""The key page answers "why was I limited?": every limit and quota of the key's calls, who set it, how much is
used — computed by the same code the gateway enforces with."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from gateway import services as catalog
from gateway.models import Plan
from gateway.proxy import limits
from tenants import services as tenant_services
from tenants.tests.fixtures import login_verified

SYSTEM = tenant_services.SYSTEM
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def _text(page) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page.content.decode()).split())


def _key_url(market, key) -> str:
    return reverse("tenants:key", kwargs={"tenant_slug": "globex", "app_slug": market.app.slug, "key_id": key.pk})


@pytest.mark.django_db(transaction=True)
async def test_the_key_page_lists_every_limit_its_source_and_what_is_used(client, gateway, served, market):
    def policies() -> None:
        Plan.objects.filter(pk=market.free.pk).update(requests_per_minute=30)
        catalog.policy_set(level="consumer", target=market.globex, rules={"quota": {"requests": 4}}, actor=SYSTEM)
        login_verified(client, market.developer)

    def key_policy() -> None:  # set after the call: it would refuse it (the test client calls from 127.0.0.1)
        rules = {"max_tokens": {"default": 256}, "access": {"ip_allow": ["10.1.0.0/16"], "regions": ["eu"]}}
        catalog.policy_set(level="key", target=served["key"], rules=rules, actor=SYSTEM)

    await sync_to_async(policies)()
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=served["auth"])).status_code == 200
    await limits.LIMITER.flush()
    await sync_to_async(key_policy)()

    page = await sync_to_async(client.get)(_key_url(market, served["key"]))

    assert page.status_code == 200
    text = _text(page)
    assert "acme/assistant · plan free" in text
    assert "30 requests/min per subscription subscription sliding minute plan Free" in text
    assert "4 requests per month per tenant tenant 25% used consumer globex" in text
    key = f"key gh_{served['key'].public_id}"
    assert f"max_tokens 256 when a call names none call {key}" in text
    assert f"only from 10.1.0.0/16 call {key}" in text
    assert f"only deployments in eu call {key}" in text


def test_a_revoked_key_can_call_nothing(client, served, market):
    from subscriptions import services

    services.api_key_revoke(key=served["key"], actor=SYSTEM)
    login_verified(client, market.developer)

    page = client.get(_key_url(market, served["key"]))

    assert page.status_code == 200
    assert "This key is revoked: it can call nothing." in _text(page)


def test_the_application_page_links_each_key_to_its_page(client, served, market):
    login_verified(client, market.developer)

    page = client.get(reverse("tenants:application", kwargs={"tenant_slug": "globex", "app_slug": market.app.slug}))

    assert f'href="{_key_url(market, served["key"])}"' in page.content.decode()

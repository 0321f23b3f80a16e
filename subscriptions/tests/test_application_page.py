"""The application page says which limits and quotas its calls count against, and who set them."""

from __future__ import annotations

import re

from django.urls import reverse

from gateway import services as catalog
from gateway.models import Plan
from subscriptions import services
from tenants import services as tenant_services
from tenants.tests.fixtures import login_verified


def test_the_application_page_lists_each_subscriptions_limits_and_their_source(client, market):
    Plan.objects.filter(pk=market.standard.pk).update(requests_per_minute=120, tokens_per_minute=200_000)
    services.subscription_request(
        application=market.app, api=market.api, plan=market.standard, actor=market.actor(market.developer)
    )
    login_verified(client, market.developer)

    page = client.get(reverse("tenants:application", kwargs={"tenant_slug": "globex", "app_slug": market.app.slug}))

    assert page.status_code == 200
    text = " ".join(page.content.decode().split())
    assert "120 requests/min per subscription" in text
    assert "200,000 tokens/min per subscription" in text
    assert "set by plan Standard" in text


def test_policies_of_the_publisher_and_of_the_consumer_show_with_their_source(client, market):
    actor = tenant_services.SYSTEM
    catalog.policy_set(level="publisher", target=market.acme, rules={"quota": {"cost_micros": 5_000_000}}, actor=actor)
    rules = {"rate_limits": {"requests_per_minute": 30}}
    catalog.policy_set(level="application", target=market.app, rules=rules, actor=actor)
    services.subscription_request(
        application=market.app, api=market.api, plan=market.free, actor=market.actor(market.developer)
    )
    login_verified(client, market.developer)

    page = client.get(reverse("tenants:application", kwargs={"tenant_slug": "globex", "app_slug": market.app.slug}))

    text = " ".join(re.sub(r"<[^>]+>", " ", page.content.decode()).split())
    assert "$5.00 per month per subscription · set by publisher acme" in text
    assert "30 requests/min per application · set by application globex-web" in text


def test_a_plan_without_limits_lists_none(client, market):
    services.subscription_request(
        application=market.app, api=market.api, plan=market.free, actor=market.actor(market.developer)
    )
    login_verified(client, market.developer)

    page = client.get(reverse("tenants:application", kwargs={"tenant_slug": "globex", "app_slug": market.app.slug}))

    assert page.status_code == 200
    assert 'aria-label="Limits and quotas"' not in page.content.decode()

"""The application page says which rate limits its calls count against, and who set them."""

from __future__ import annotations

from django.urls import reverse

from gateway.models import Plan
from subscriptions import services
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
    assert "200000 tokens/min per subscription" in text
    assert "set by plan Standard" in text


def test_a_plan_without_limits_lists_none(client, market):
    services.subscription_request(
        application=market.app, api=market.api, plan=market.free, actor=market.actor(market.developer)
    )
    login_verified(client, market.developer)

    page = client.get(reverse("tenants:application", kwargs={"tenant_slug": "globex", "app_slug": market.app.slug}))

    assert page.status_code == 200
    assert 'aria-label="Rate limits"' not in page.content.decode()

"""Publisher pages: create an API, add and publish a version, add a plan with a budget in dollars."""

from __future__ import annotations

import pytest
from django.test import Client

from gateway.models import AiApi, Plan
from tenants.tests.fixtures import login_verified

pytestmark = pytest.mark.django_db


def test_a_publisher_goes_from_nothing_to_a_listed_api(world):
    client = login_verified(Client(), world.users["admin"])
    base = f"/t/{world.tenant.slug}/apis/"

    client.post(
        base,
        {
            "name": "Embed",
            "slug": "embed",
            "kind": "embeddings",
            "visibility": "public",
            "tags": "rag, Search",
            "requires_approval": "on",
        },
    )
    client.post(f"{base}embed/versions/", {"version": "v1", "model_alias": "text-embedding-3-small"})
    client.post(f"{base}embed/versions/v1/status/", {"status": "published"})
    client.post(
        f"{base}embed/plans/", {"name": "Pro", "slug": "pro", "quota_period": "month", "budget_usd": "12.345678"}
    )

    api = AiApi.objects.for_tenant(world.tenant).get(slug="embed")
    assert api.tags == ["rag", "search"]
    assert api.versions.get().status == "published"
    plan = Plan.objects.get(api=api, slug="pro")
    assert plan.cost_quota_micros == 12_345_678  # exact integer micro-USD, no float on the way
    assert plan.needs_approval is True  # as the API says
    assert "Embed" in client.get("/catalog/", {"kind": "embeddings"}).content.decode()


def test_invalid_version_input_is_explained(world):
    client = login_verified(Client(), world.users["admin"])

    response = client.post(f"/t/{world.tenant.slug}/apis/assistant/versions/", {"version": "version one"}, follow=True)

    assert any("version" in str(m) for m in response.context["messages"])
    assert AiApi.objects.for_tenant(world.tenant).get(slug="assistant").versions.count() == 1


def test_an_admin_connects_a_provider_a_deployment_and_routes_a_version_to_it(world):
    from gateway.models import Deployment, Provider

    client = login_verified(Client(), world.users["admin"])
    base = f"/t/{world.tenant.slug}/"

    created = client.post(
        f"{base}providers/", {"name": "claude-eu", "kind": "anthropic", "api_key": "sk-ant-very-secret"}, follow=True
    )
    provider = Provider.objects.for_tenant(world.tenant).get(name="claude-eu")
    client.post(
        f"{base}providers/{provider.pk}/deployments/",
        {"name": "haiku", "model": "claude-3-5-haiku-latest", "region": "eu", "input_price": "0.8",
         "output_price": "4.000001", "timeout_seconds": "30"},
    )  # fmt: skip
    deployment = Deployment.objects.get(provider=provider, name="haiku")
    routed = client.post(
        f"{base}apis/assistant/versions/v1/routes/",
        {"deployment": deployment.pk, "weight": "10", "fallback_order": "0"},
        follow=True,
    )
    page = client.get(f"{base}providers/")

    assert "sk-ant-very-secret" not in provider.credentials  # encrypted at rest
    assert "sk-ant-very-secret" not in created.content.decode()
    assert (deployment.input_price_micros_per_mtok, deployment.output_price_micros_per_mtok) == (800_000, 4_000_001)
    assert deployment.routes.get().weight == 10
    assert "is served by haiku as a primary" in routed.content.decode()
    assert "claude-3-5-haiku-latest" in page.content.decode()
    assert "sk-ant" not in page.content.decode()


def test_prices_left_empty_come_from_litellms_price_map(world):
    client = login_verified(Client(), world.users["admin"])
    provider = world.extra["provider"]

    client.post(
        f"/t/{world.tenant.slug}/providers/{provider.pk}/deployments/",
        {"name": "mini-2", "model": "gpt-4o-mini", "region": "us", "timeout_seconds": "60"},
    )

    deployment = provider.deployments.get(name="mini-2")
    assert (deployment.input_price_micros_per_mtok, deployment.output_price_micros_per_mtok) == (150_000, 600_000)


def test_a_version_cannot_be_routed_to_another_tenants_deployment(world):
    from gateway import services as catalog
    from tenants.services import SYSTEM

    client = login_verified(Client(), world.users["admin"])
    theirs = catalog.provider_create(tenant=world.other, name="theirs", kind="openai", actor=SYSTEM)
    their_deployment = catalog.deployment_create(provider=theirs, name="x", model="gpt-4o", actor=SYSTEM)

    client.post(
        f"/t/{world.tenant.slug}/apis/assistant/versions/v1/routes/",
        {"deployment": their_deployment.pk, "weight": "100", "fallback_order": "0"},
    )

    assert not their_deployment.routes.exists()


def test_a_deployment_can_carry_the_providers_per_minute_limits(world):
    client = login_verified(Client(), world.users["admin"])
    provider = world.extra["provider"]

    client.post(
        f"/t/{world.tenant.slug}/providers/{provider.pk}/deployments/",
        {"name": "capped", "model": "gpt-4o-mini", "region": "eu", "timeout_seconds": "60",
         "requests_per_minute": "500", "tokens_per_minute": "90000"},
    )  # fmt: skip
    client.post(  # zero is not a limit: the form refuses it
        f"/t/{world.tenant.slug}/providers/{provider.pk}/deployments/",
        {"name": "zero", "model": "gpt-4o-mini", "region": "eu", "timeout_seconds": "60", "requests_per_minute": "0"},
    )
    page = client.get(f"/t/{world.tenant.slug}/providers/")

    capped = provider.deployments.get(name="capped")
    assert (capped.requests_per_minute, capped.tokens_per_minute) == (500, 90_000)
    assert "500 req/min, 90000 tokens/min" in page.content.decode()
    assert not provider.deployments.filter(name="zero").exists()

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

"""The catalog pages and API: who sees which API, search and filters, generated docs, sanitized descriptions."""

from __future__ import annotations

import html

import pytest
from django.test import Client

from gateway import services as catalog
from subscriptions.tests.fixtures import Market

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_api(market: Market):
    actor = market.actor(market.acme_owner)
    api = catalog.api_create(
        tenant=market.acme,
        slug="secret-sauce",
        name="Secret Sauce",
        kind="embeddings",
        actor=actor,
        visibility="private",
        tags=["Internal"],
    )
    version = catalog.version_create(api=api, version="v1", model_alias="text-embedding-3-small", actor=actor)
    catalog.version_set_status(version=version, status="published", actor=actor)
    return api


def _client(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_anonymous_visitors_browse_public_apis_only(market, private_api):
    page = _client().get("/catalog/").content.decode()

    assert "Assistant" in page
    assert "Secret Sauce" not in page
    assert _client().get("/catalog/acme/secret-sauce/").status_code == 404


def test_private_apis_are_listed_to_the_publishers_members_only(market, private_api):
    member = _client(market.acme_viewer)
    outsider = _client(market.developer)

    assert "Secret Sauce" in member.get("/catalog/").content.decode()
    assert member.get("/catalog/acme/secret-sauce/").status_code == 200
    assert "Secret Sauce" not in outsider.get("/catalog/").content.decode()
    assert outsider.get("/catalog/acme/secret-sauce/").status_code == 404
    assert outsider.get("/api/v1/catalog/acme/secret-sauce").status_code == 404
    assert [a["slug"] for a in outsider.get("/api/v1/catalog").json()] == ["assistant"]


def test_search_matches_name_tag_and_publisher_and_filters_by_kind(market, private_api):
    member = _client(market.acme_owner)

    assert "Secret Sauce" in member.get("/catalog/", {"q": "internal"}).content.decode()
    assert "Assistant" in member.get("/catalog/", {"q": "acme"}).content.decode()
    by_kind = member.get("/catalog/", {"kind": "embeddings"}).content.decode()
    assert "Secret Sauce" in by_kind
    assert "Assistant</a>" not in by_kind
    assert "No APIs match" in member.get("/catalog/", {"q": "zzz-nothing"}).content.decode()


def test_drafts_are_not_listed_to_other_tenants(market):
    market.api.versions.update(status="draft")

    assert "Assistant" not in _client(market.developer).get("/catalog/").content.decode()


def test_detail_page_generates_docs_with_the_viewers_base_url(market, settings):
    settings.ALLOWED_HOSTS = ["gw.example.test"]
    raw = _client(market.developer).get("/catalog/acme/assistant/", HTTP_HOST="gw.example.test").content.decode()
    page = html.unescape(raw)

    assert "POST http://gw.example.test/v1/chat/completions" in page
    assert 'base_url="http://gw.example.test/v1"' in page
    assert "curl http://gw.example.test/v1/chat/completions" in page
    assert "gpt-4o-mini" in page
    assert "/t/globex/subscribe/acme/assistant/" in page  # the developer may subscribe as Globex
    assert "Standard" in page
    assert "Free" in page


def test_detail_page_renders_the_description_inert(market):
    market.api.description = "Hello **world**\n\n<script>alert('x')</script>\n\n[x](javascript:alert(1))"
    market.api.save()

    page = _client().get("/catalog/acme/assistant/").content.decode()

    assert "<strong>world</strong>" in page
    assert "alert('x')" not in page.split('<div class="markdown')[1].split("</div>")[0]
    assert "javascript:alert" not in page


def test_catalog_api_detail_lists_versions_and_plans(market):
    body = _client(market.developer).get("/api/v1/catalog/acme/assistant").json()

    assert body["publisher"] == "acme"
    assert [v["version"] for v in body["versions"]] == ["v1"]
    assert {p["slug"]: p["needs_approval"] for p in body["plans"]} == {"free": False, "standard": True}

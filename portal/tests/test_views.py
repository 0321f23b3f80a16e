"""The landing page and the probes."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.django_db


def test_landing_page_renders_in_the_base_template(client):
    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'aria-label="Main navigation"' in page
    assert "One safe door to every LLM" in page
    assert "<footer" in page
    assert "/static/vendor/bootstrap-5.3.9/bootstrap.min.css" in page
    assert 'href="/api/docs/"' in page
    assert "http://127.0.0.1:8000/v1" in page  # the sample uses the configured public base URL


def test_landing_page_shows_messages_and_the_signed_in_user(client, django_user_model):
    user = django_user_model.objects.create_user(email="ada@example.test", password="correct-horse-battery")
    client.force_login(user)

    page = client.get("/").content.decode()

    assert "ada@example.test" in page
    assert "Sign out" in page


def test_healthz_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["cache-control"]


def test_readyz_reports_the_database_and_redis_when_configured(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    expected_vendor = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert body["checks"]["database"]["vendor"] == expected_vendor
    if os.environ.get("REDIS_URL"):
        assert body["checks"]["redis"] == {"ok": True}
    else:
        assert "redis" not in body["checks"]


def test_readyz_names_redis_when_it_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"]["ok"] is True
    assert "127.0.0.1:1" not in response.content.decode()  # no connection details leak


def test_every_response_carries_a_request_id(client):
    generated = client.get("/healthz")["x-request-id"]
    echoed = client.get("/healthz", headers={"x-request-id": "trace-42.a_b"})["x-request-id"]
    refused = client.get("/healthz", headers={"x-request-id": "x" * 200})["x-request-id"]
    not_found = client.get("/no/such/page", headers={"x-request-id": "trace-43"})

    assert len(generated) == 32
    assert echoed == "trace-42.a_b"
    assert refused != "x" * 200
    assert len(refused) == 32
    assert not_found.status_code == 404
    assert not_found["x-request-id"] == "trace-43"


def test_probes_only_answer_get(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405

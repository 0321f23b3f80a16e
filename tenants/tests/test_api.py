"""The management API foundation: /api/v1/me, the OpenAPI schema and its docs."""

from __future__ import annotations

import pytest

from tenants import services

pytestmark = pytest.mark.django_db


def test_me_requires_authentication(client):
    response = client.get("/api/v1/me")

    assert response.status_code == 403
    assert "credentials were not provided" in response.json()["detail"]


def test_me_lists_the_users_tenants_and_roles(client, django_user_model):
    user = django_user_model.objects.create_user(email="ada@example.test", password="correct-horse-battery")
    services.tenant_create(slug="acme", name="Acme", owner=user)
    client.force_login(user)

    response = client.get("/api/v1/me")

    assert response.status_code == 200
    assert response.json() == {
        "email": "ada@example.test",
        "first_name": "",
        "last_name": "",
        "memberships": [{"tenant": "acme", "tenant_name": "Acme", "role": "owner"}],
    }


def test_openapi_schema_describes_the_api(client):
    response = client.get("/api/schema/", headers={"accept": "application/json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/me" in schema["paths"]


def test_api_docs_are_served_without_a_cdn(client):
    page = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn.jsdelivr.net" not in page

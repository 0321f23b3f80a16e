"""The management API: the current user, tokens, step-up over sessions, errors, and the OpenAPI schema."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tenants import services
from tenants.mfa import STEP_UP_SESSION_KEY
from tenants.models import Membership, PersonalAccessToken
from tenants.tests.fixtures import login_verified

pytestmark = pytest.mark.django_db


def _token(world, persona: str = "owner", scope: str = "write", tenant=None) -> tuple[PersonalAccessToken, str]:
    return services.pat_create(
        user=world.users[persona],
        tenant=tenant or world.tenant,
        name="ci",
        scope=scope,
        expires_in_days=30,
        actor=services.Actor(user=world.users[persona]),
    )


def test_anonymous_gets_401_with_a_challenge(client):
    response = client.get("/api/v1/me")

    assert response.status_code == 401
    assert response["www-authenticate"] == "Token"
    assert response.json()["code"] == "not_authenticated"


def test_me_lists_the_users_tenants_and_roles(world, as_persona):
    response = as_persona("viewer").get("/api/v1/me")

    assert response.status_code == 200
    assert response.json() == {
        "email": "viewer@a.test",
        "first_name": "",
        "last_name": "",
        "has_mfa": True,
        "memberships": [{"tenant": "tenant-a", "tenant_name": "Tenant A", "role": "viewer"}],
    }


def test_token_authenticates_and_is_bound_to_its_tenant(world):
    _, owner_token = _token(world, "outsider", tenant=world.other)
    client = Client(headers={"authorization": f"Token {owner_token}"})

    own = client.get("/api/v1/tenants/tenant-b/members")
    foreign = client.get("/api/v1/tenants/tenant-a/members")
    listed = client.get("/api/v1/tenants").json()

    assert own.status_code == 200
    assert foreign.status_code == 404
    assert [t["slug"] for t in listed] == ["tenant-b"]


def test_token_of_a_member_cannot_reach_another_tenant_they_also_belong_to(world):
    services.membership_create(tenant=world.other, user=world.users["viewer"], role="admin")
    _, token = _token(world, "viewer")  # bound to tenant A

    response = Client(headers={"authorization": f"Token {token}"}).get("/api/v1/tenants/tenant-b/members")

    assert response.status_code == 404


def test_read_only_token_cannot_write(world):
    _, token = _token(world, "owner", scope="read")
    client = Client(headers={"authorization": f"Token {token}"})
    before = Membership.all_tenants.count()

    response = client.delete(f"/api/v1/tenants/tenant-a/members/{world.memberships['viewer'].pk}")

    assert response.status_code == 403
    assert response.json()["detail"] == "This token is read-only."
    assert Membership.all_tenants.count() == before


@pytest.mark.parametrize("breakage", ["revoked", "expired", "wrong-secret", "malformed", "removed-member"])
def test_broken_tokens_get_one_answer(world, breakage):
    token, secret = _token(world, "admin")
    if breakage == "revoked":
        services.pat_revoke(token=token, actor=services.SYSTEM)
    elif breakage == "expired":
        PersonalAccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif breakage == "wrong-secret":
        secret = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    elif breakage == "malformed":
        secret = "ghtok_short"
    elif breakage == "removed-member":
        services.membership_remove(
            membership=world.memberships["admin"], actor=services.SYSTEM, by=world.memberships["owner"]
        )

    response = Client(headers={"authorization": f"Token {secret}"}).get("/api/v1/me")

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid, expired or revoked token."


def test_token_records_its_last_use(world):
    token, secret = _token(world, "admin")

    Client(headers={"authorization": f"Token {secret}"}).get("/api/v1/me")

    token.refresh_from_db()
    assert token.last_used_at is not None


def test_only_a_digest_of_the_token_is_stored(world):
    token, secret = _token(world, "admin")

    assert secret.startswith(f"ghtok_{token.public_id}_")
    stored = PersonalAccessToken.objects.filter(pk=token.pk).values_list("public_id", "digest")[0]
    assert secret.split("_")[2] not in "".join(stored)


def test_privileged_api_call_over_a_session_needs_a_recent_step_up(world):
    client = login_verified(Client(), world.users["admin"])
    session = client.session
    session[STEP_UP_SESSION_KEY] = 0  # verified at login long ago
    session.save()

    stale = client.patch(
        f"/api/v1/tenants/tenant-a/members/{world.memberships['viewer'].pk}",
        {"role": "developer"},
        content_type="application/json",
    )
    reading = client.get("/api/v1/tenants/tenant-a/members")

    assert stale.status_code == 403
    assert stale.json()["code"] == "mfa_step_up_required"
    assert reading.status_code == 200  # reading is not privileged
    assert Membership.objects.for_tenant(world.tenant).get(pk=world.memberships["viewer"].pk).role == "viewer"


def test_business_rule_violations_are_clear_400s(world, as_persona):
    only_owner_world_owner = world.memberships["owner"]
    services.membership_remove(
        membership=Membership.objects.for_tenant(world.tenant).get(user__email="co-owner@a.test"),
        actor=services.SYSTEM,
        by=only_owner_world_owner,
    )

    response = as_persona("owner").patch(
        f"/api/v1/tenants/tenant-a/members/{only_owner_world_owner.pk}",
        {"role": "admin"},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "A tenant needs at least one owner: transfer ownership first.",
        "code": "last_owner",
    }


def test_invalid_input_names_the_field(world, as_persona):
    response = as_persona("owner").post(
        "/api/v1/tenants/tenant-a/invitations",
        {"email": "not-an-email", "role": "emperor"},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert set(response.json()) == {"email", "role"}


def test_tenant_can_be_created_over_the_api(world, as_persona):
    response = as_persona("viewer").post(
        "/api/v1/tenants", {"slug": "new-co", "name": "New Co"}, content_type="application/json"
    )
    taken = as_persona("viewer").post(
        "/api/v1/tenants", {"slug": "tenant-a", "name": "Dup"}, content_type="application/json"
    )

    assert response.status_code == 201
    assert response.json()["slug"] == "new-co"
    assert Membership.all_tenants.get(tenant__slug="new-co").role == "owner"
    assert taken.status_code == 400
    assert taken.json()["code"] == "slug_taken"


def test_audit_events_api_filters_and_paginates(world, as_persona):
    response = as_persona("admin").get("/api/v1/tenants/tenant-a/audit-events", {"action": "member.", "limit": 2})

    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 6  # two owners and four more members were added
    assert len(body["results"]) == 2
    assert all(e["action"] == "member.added" for e in body["results"])


def test_openapi_schema_generates_without_warnings_and_validates(tmp_path):
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"), stdout=out)

    schema = (tmp_path / "schema.yaml").read_text()
    for path in ("/api/v1/me", "/api/v1/tenants/{tenant_slug}/members", "/api/v1/tenants/{tenant_slug}/audit-events"):
        assert f"{path}:" in schema


def test_api_docs_are_served_without_a_cdn(client):
    page = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn.jsdelivr.net" not in page

"""seed_demo creates the SPEC §5 demo idempotently and prints working logins."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tenants.models import Membership, Tenant, User

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _debug_on(settings):
    settings.DEBUG = True  # as under `make demo`; the test runner itself switches DEBUG off


def _seed_json(*args: str) -> dict:
    out = io.StringIO()
    call_command("seed_demo", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_seed_creates_the_demo_tenants_users_and_roles():
    summary = _seed_json("--mock-url", "http://127.0.0.1:9999/")

    assert summary["base_url"] == "http://127.0.0.1:8000"
    assert summary["mock_url"] == "http://127.0.0.1:9999"
    assert {t["slug"]: t["kind"] for t in summary["tenants"]} == {"acme": "publisher", "globex": "consumer"}
    roles = {(u["email"], u["tenant"], u["role"]) for u in summary["users"]}
    assert roles == {
        ("owner@acme.test", "acme", "owner"),
        ("admin@acme.test", "acme", "admin"),
        ("finance@acme.test", "acme", "finance"),
        ("owner@globex.test", "globex", "owner"),
        ("dev@globex.test", "globex", "developer"),
    }
    stored = set(Membership.all_tenants.values_list("user__email", "tenant__slug", "role"))
    assert stored == roles


def test_seed_is_idempotent_and_restores_the_published_password():
    first = _seed_json()
    owner = User.objects.get(email="owner@acme.test")
    owner.set_password("changed-by-someone")
    owner.save()

    second = _seed_json()

    assert {k: v for k, v in first.items() if k != "api_key"} == {k: v for k, v in second.items() if k != "api_key"}
    assert User.objects.count() == 6  # five tenant users and the platform operator
    assert Tenant.objects.count() == 2
    assert Membership.all_tenants.count() == 5
    owner.refresh_from_db()
    assert owner.check_password(second["users"][0]["password"])


def test_printed_logins_work(client):
    summary = _seed_json()

    for user in summary["users"]:
        assert client.login(email=user["email"], password=user["password"]), user["email"]
    operator = summary["operator"]
    assert client.login(email=operator["email"], password=operator["password"])
    assert client.get("/admin/").status_code == 200


def test_seed_refuses_to_publish_passwords_in_production(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="needs --force"):
        call_command("seed_demo")

    assert not User.objects.exists()


def test_seed_publishes_the_catalog_and_prints_a_working_key():
    first = _seed_json()
    second = _seed_json()

    from subscriptions import keys
    from subscriptions.models import ApiKey, Subscription
    from subscriptions.selectors import key_access_snapshot

    assert first["api_key"] != second["api_key"]  # each seeding replaces the demo key…
    assert keys.parse(first["api_key"]) is not None
    access = key_access_snapshot(keys.parse(second["api_key"]).public_id)
    assert access.digest == keys.digest(keys.parse(second["api_key"]).secret)
    assert {g.api_slug for g in access.grants} == {"assistant", "embed", "summarize", "claude"}
    assert access.grant_for_model("gpt-4o-mini").api_slug == "assistant"
    assert access.grant_for_model("text-embedding-3-small").api_slug == "embed"
    assert ApiKey.objects.filter(revoked_at=None).count() == 1  # …and the old one stops working
    assert key_access_snapshot(keys.parse(first["api_key"]).public_id) is None
    assert set(Subscription.objects.values_list("api__slug", "state")) == {
        ("assistant", "approved"),
        ("embed", "approved"),
        ("summarize", "approved"),
        ("claude", "approved"),
    }
    assistant = access.grant_for_model("gpt-4o-mini")
    assert {(limit.metric, limit.limit) for limit in assistant.policy.limits} == {
        ("requests", 120),
        ("tokens", 200_000),
    }
    assert [(quota.metric, quota.limit) for quota in assistant.policy.quotas] == [("cost", 50_000_000)]

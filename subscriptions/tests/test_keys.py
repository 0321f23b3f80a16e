"""API keys: format, shown once, hashed at rest, checksum, rotation grace, and every way access ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal import events
from portal.errors import DomainError
from subscriptions import keys, selectors, services
from subscriptions.models import ApiKey, Subscription
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services


@pytest.fixture
def approved(market):
    subscription = services.subscription_request(
        application=market.app, api=market.api, plan=market.standard, actor=market.actor(market.developer)
    )
    return services.subscription_approve(subscription=subscription, actor=market.actor(market.acme_admin))


def _new_key(market, **kwargs) -> tuple[ApiKey, str]:
    return services.api_key_create(application=market.app, name="web", actor=market.actor(market.developer), **kwargs)


def _works(full_key: str) -> bool:
    """What the gateway will do: checksum, lookup by public id, digest compare, usability now."""
    parsed = keys.parse(full_key)
    if parsed is None:
        return False
    access = selectors.key_access_snapshot(parsed.public_id)
    return (
        access is not None
        and access.digest == keys.digest(parsed.secret)
        and access.is_usable(timezone.now())
        and access.grant_for_model("gpt-4o-mini") is not None
    )


# --- format and storage --------------------------------------------------------------------------------------


def test_key_has_the_spec_format_and_only_a_digest_is_stored(market, approved):
    key, full = _new_key(market)

    assert full.startswith(f"gh_{key.public_id}_")
    assert len(full) == 3 + 8 + 1 + 32 + 6
    assert full.replace("_", "").isalnum()  # base62 parts: a double-click selects it all
    secret = full[12:44]
    row = ApiKey.objects.filter(pk=key.pk).values()[0]
    assert secret not in str(row)
    assert row["digest"] == keys.digest(secret)
    with connection.cursor() as cursor:  # and not anywhere else in the database either
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names come from introspection
            assert secret not in str(cursor.fetchall()), table


def test_checksum_rejects_every_one_character_typo_without_a_query(market, approved):
    _, full = _new_key(market)
    typos = []
    for position in range(3, len(full)):
        if full[position] == "_":
            continue
        replacement = "a" if full[position] != "a" else "b"
        typos.append(full[:position] + replacement + full[position + 1 :])

    with CaptureQueriesContext(connection) as queries:
        results = [keys.parse(typo) for typo in typos]

    assert results == [None] * len(typos)
    assert len(queries) == 0
    assert keys.parse(full) is not None


def test_a_working_key_reaches_its_subscribed_models(market, approved):
    _, full = _new_key(market)

    access = selectors.key_access_snapshot(keys.parse(full).public_id)
    assert _works(full)
    assert access.grant_for_model("gpt-4o-mini").plan_slug == "standard"
    assert access.grant_for_model("gpt-4o") is None


def test_scopes_and_allowlists_are_checked_when_creating(market, approved):
    with pytest.raises(DomainError, match="only be scoped to APIs"):
        _new_key(market, scopes=[999])
    with pytest.raises(DomainError, match="not an IP address"):
        _new_key(market, ip_allowlist=["10.0.0.0/33"])

    key, _ = _new_key(market, scopes=[market.api.pk], ip_allowlist=["203.0.113.7", "2001:db8::/32"])
    assert key.ip_allowlist == ["203.0.113.7/32", "2001:db8::/32"]


# --- the end of access ---------------------------------------------------------------------------------------


def test_revoking_stops_the_key_at_once_and_tells_the_gateways(market, approved, django_capture_on_commit_callbacks):
    key, full = _new_key(market)
    seen: list[dict] = []
    events.listen(events.ACCESS_CHANNEL, seen.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.api_key_revoke(key=key, actor=market.actor(market.developer))
    finally:
        events.unlisten(events.ACCESS_CHANNEL, seen.append)

    assert not _works(full)
    assert seen == [{"event": "access_changed", "key_ids": [key.public_id], "application_ids": []}]


def test_an_expired_key_stops(market, approved):
    key, full = _new_key(market, expires_at=timezone.now() + timedelta(hours=1))
    assert _works(full)

    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert not _works(full)


def test_rotation_keeps_the_old_key_for_the_grace_period_only(market, approved):
    old, old_full = _new_key(market)

    new, new_full = services.api_key_rotate(key=old, actor=market.actor(market.developer), grace=timedelta(hours=2))

    assert _works(old_full)
    assert _works(new_full)
    old.refresh_from_db()
    assert old.rotated_to == new
    ApiKey.objects.filter(pk=old.pk).update(valid_until=timezone.now() - timedelta(seconds=1))
    assert not _works(old_full)
    assert _works(new_full)
    with pytest.raises(DomainError, match="not rotated yet"):
        services.api_key_rotate(key=old, actor=market.actor(market.developer))


def test_zero_grace_rotation_stops_the_old_key_now(market, approved):
    old, old_full = _new_key(market)

    services.api_key_rotate(key=old, actor=market.actor(market.developer), grace=timedelta(0))

    assert not _works(old_full)


@pytest.mark.parametrize("action", ["suspend", "revoke"])
def test_suspending_or_revoking_the_subscription_stops_its_keys(market, approved, action):
    _, full = _new_key(market)

    getattr(services, f"subscription_{action}")(subscription=approved, actor=market.actor(market.acme_admin))

    assert not _works(full)


def test_an_expired_subscription_stops_its_keys(market, approved):
    _, full = _new_key(market)
    Subscription.objects.filter(pk=approved.pk).update(ends_at=timezone.now() - timedelta(seconds=1))

    services.subscriptions_expire_due()

    assert not _works(full)


def test_deleting_the_application_stops_its_keys(market, approved, django_capture_on_commit_callbacks):
    key, full = _new_key(market)
    seen: list[dict] = []
    events.listen(events.ACCESS_CHANNEL, seen.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.application_delete(application=market.app, actor=market.actor(market.developer))
    finally:
        events.unlisten(events.ACCESS_CHANNEL, seen.append)

    assert not _works(full)
    assert seen[0]["key_ids"] == [key.public_id]


def test_deleting_the_consumer_tenant_stops_its_keys(market, approved):
    _, full = _new_key(market)

    market.globex.delete()

    assert not _works(full)


def test_removing_the_creator_from_the_tenant_does_not_break_the_applications_keys(market, approved):
    """Keys belong to the application, not to the person who made them (people leave; services keep running)."""
    _, full = _new_key(market)
    membership = tenant_selectors.membership_of(tenant=market.globex, user=market.developer)

    tenant_services.membership_remove(membership=membership, actor=tenant_services.SYSTEM, by=None)

    assert _works(full)


def test_last_used_is_recorded_in_batches_and_never_goes_back(market, approved):
    key, _ = _new_key(market)
    later, earlier = timezone.now(), timezone.now() - timedelta(minutes=5)

    services.api_keys_record_use(last_used={key.public_id: later})
    services.api_keys_record_use(last_used={key.public_id: earlier})

    key.refresh_from_db()
    assert key.last_used_at == later

"""Personas for tenant tests: tenant A with one member per role, an outsider who owns tenant B, anonymous."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import services
from tenants.mfa import STEP_UP_SESSION_KEY
from tenants.models import Invitation, Membership, Tenant, User
from tenants.permissions import Role

PASSWORD = "correct-horse-battery-staple"
ROLES = [Role.OWNER, Role.ADMIN, Role.DEVELOPER, Role.FINANCE, Role.VIEWER]


@dataclass
class World:
    tenant: Tenant
    other: Tenant
    users: dict[str, User] = field(default_factory=dict)  # role name, "outsider"
    memberships: dict[str, Membership] = field(default_factory=dict)
    invitation: Invitation | None = None
    invitation_token: str = ""
    # Tenant A also publishes an API and consumes it (catalog and subscription routes need objects to act on).
    extra: dict[str, Any] = field(default_factory=dict)


def make_user(email: str) -> User:
    return services.user_create(email=email, password=PASSWORD, email_verified=True)


def enroll_totp(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def totp_code(device: TOTPDevice, *, offset_steps: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


def login_verified(client: Client, user: User) -> Client:
    """Log in as if through password + OTP just now (the MFA flow itself is tested in test_mfa.py)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or enroll_totp(user)
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session[STEP_UP_SESSION_KEY] = time.time()
    session.save()
    return client


@pytest.fixture
def world(db) -> World:
    owner = make_user("owner@a.test")
    tenant = services.tenant_create(slug="tenant-a", name="Tenant A", owner=owner)
    outsider = make_user("outsider@b.test")
    other = services.tenant_create(slug="tenant-b", name="Tenant B", owner=outsider)
    w = World(tenant=tenant, other=other)
    w.users = {"owner": owner, "outsider": outsider}
    w.memberships["owner"] = Membership.objects.for_tenant(tenant).get(user=owner)
    for role in ROLES[1:]:
        user = make_user(f"{role.value}@a.test")
        w.users[role.value] = user
        w.memberships[role.value] = services.membership_create(tenant=tenant, user=user, role=role)
    # A second owner, so that the persona "owner" may leave or hand over ownership like any owner could.
    services.membership_create(tenant=tenant, user=make_user("co-owner@a.test"), role=Role.OWNER)
    actor = services.Actor(user=owner)
    w.invitation, w.invitation_token = services.invitation_create(
        tenant=tenant,
        email="newcomer@a.test",
        role=Role.DEVELOPER,
        actor=actor,
        by=w.memberships["owner"],
        accept_url_base="http://testserver/",
    )
    _add_market(w)
    return w


def _add_market(w: World) -> None:
    from gateway import services as catalog
    from subscriptions import services as subs

    actor = services.Actor(user=w.users["owner"])
    api = catalog.api_create(tenant=w.tenant, slug="assistant", name="Assistant", kind="chat", actor=actor)
    version = catalog.version_create(api=api, version="v1", model_alias="gpt-4o-mini", actor=actor)
    catalog.version_set_status(version=version, status="published", actor=actor)
    plan = catalog.plan_create(api=api, slug="standard", name="Standard", actor=actor)
    catalog.plan_create(api=api, slug="large", name="Large", actor=actor)
    web = subs.application_create(tenant=w.tenant, slug="web", name="Web", actor=actor)
    other = subs.application_create(tenant=w.tenant, slug="other", name="Other", actor=actor)
    subs.application_create(tenant=w.tenant, slug="fresh", name="Fresh", actor=actor)
    approved = subs.subscription_request(application=web, api=api, plan=plan, actor=actor)
    subs.subscription_approve(subscription=approved, actor=actor)
    pending = subs.subscription_request(application=other, api=api, plan=plan, actor=actor)
    change = subs.change_request_create(subscription=approved, actor=actor, extra_tokens=1000)
    key, _ = subs.api_key_create(application=web, name="ci", actor=actor)
    provider = catalog.provider_create(
        tenant=w.tenant, name="openai", kind="openai", credentials={"api_key": "sk-world"}, actor=actor
    )
    deployment = catalog.deployment_create(provider=provider, name="mini", model="gpt-4o-mini", actor=actor)
    rules = {"rate_limits": {"requests_per_minute": 100}}
    document = {"gatehouse": "policies/v1", "tenant": w.tenant.slug, "consumer": {"policy": rules}}
    catalog.policy_document_apply(tenant=w.tenant, document=document, actor=actor)  # versions 1 (before) and 2
    call, alert_rule = _add_usage(w, api=api, app=web, key=key)
    w.extra.update(
        call=call, alert_rule=alert_rule, api=api, web=web, approved=approved, pending=pending, change=change, key=key,
        provider=provider, deployment=deployment,
    )  # fmt: skip


def _add_usage(w: World, *, api: Any, app: Any, key: Any) -> tuple[Any, Any]:
    """One call in tenant A's call log (rolled up) and one alert rule, for the analytics pages."""
    import uuid
    from datetime import UTC, datetime

    from analytics import services as analytics

    event_id = uuid.uuid4().hex
    analytics.usage_events_record(
        events=[{
            "event_id": event_id, "request_id": "req-world",
            "occurred_at": datetime(2026, 11, 20, 10, tzinfo=UTC).isoformat(),
            "tenant_id": w.tenant.pk, "publisher_id": w.tenant.pk, "application_id": app.pk,
            "application_slug": app.slug, "key_public_id": key.public_id, "api_id": api.pk,
            "api_label": f"{w.tenant.slug}/{api.slug}", "endpoint": "chat", "model": "gpt-4o-mini", "status": 200,
            "prompt_tokens": 10, "completion_tokens": 5, "cost_micros": 40, "latency_ms": 120,
        }]
    )  # fmt: skip
    analytics.usage_rollups_refresh()
    rule, _ = analytics.alert_rule_create(
        tenant=w.tenant, actor=services.Actor(user=w.users["owner"]), name="Budget", kind="quota_threshold",
        threshold=80, email_to="finance@a.test",
    )  # fmt: skip
    from analytics.models import UsageEvent

    return UsageEvent.objects.for_tenant(w.tenant).get(event_id=event_id), rule


@pytest.fixture
def as_persona(world: World):
    """A client logged in (with a fresh MFA verification) as the named persona; "anonymous" for none."""

    def _client(name: str) -> Client:
        client = Client()
        if name != "anonymous":
            login_verified(client, world.users[name])
        return client

    return _client

"""A small market: publisher Acme with a chat API (v1 published) and two plans; consumer Globex with an app."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway import services as catalog
from gateway.models import AiApi, Plan
from subscriptions import services
from subscriptions.models import Application
from tenants import services as tenant_services
from tenants.models import Tenant, User
from tenants.permissions import Role

PASSWORD = "correct-horse-battery-staple"


@dataclass
class Market:
    acme: Tenant
    globex: Tenant
    acme_owner: User
    acme_admin: User
    acme_viewer: User
    developer: User
    api: AiApi
    standard: Plan  # needs approval (as the API says)
    free: Plan  # needs none
    app: Application

    def actor(self, user: User) -> tenant_services.Actor:
        return tenant_services.Actor(user=user)


@pytest.fixture
def market(db) -> Market:
    def user(email: str) -> User:
        return tenant_services.user_create(email=email, password=PASSWORD, email_verified=True)

    acme_owner, acme_admin, acme_viewer, developer = (
        user("owner@acme.test"),
        user("admin@acme.test"),
        user("viewer@acme.test"),
        user("dev@globex.test"),
    )
    acme = tenant_services.tenant_create(slug="acme", name="Acme", owner=acme_owner)
    tenant_services.membership_create(tenant=acme, user=acme_admin, role=Role.ADMIN)
    tenant_services.membership_create(tenant=acme, user=acme_viewer, role=Role.VIEWER)
    globex = tenant_services.tenant_create(slug="globex", name="Globex", owner=user("owner@globex.test"))
    tenant_services.membership_create(tenant=globex, user=developer, role=Role.DEVELOPER)
    publisher = tenant_services.Actor(user=acme_owner)
    api = catalog.api_create(tenant=acme, slug="assistant", name="Assistant", kind="chat", actor=publisher)
    version = catalog.version_create(api=api, version="v1", model_alias="gpt-4o-mini", actor=publisher)
    catalog.version_set_status(version=version, status="published", actor=publisher)
    standard = catalog.plan_create(api=api, slug="standard", name="Standard", actor=publisher, requests_per_minute=60)
    free = catalog.plan_create(api=api, slug="free", name="Free", actor=publisher, requires_approval=False)
    app = services.application_create(
        tenant=globex, slug="globex-web", name="Globex Web", actor=tenant_services.Actor(user=developer)
    )
    return Market(acme, globex, acme_owner, acme_admin, acme_viewer, developer, api, standard, free, app)

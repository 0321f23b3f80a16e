"""Rules that must hold when two requests race. PostgreSQL only (CI runs them): the in-memory SQLite test
database shares one cache between threads and answers a race with "table is locked" instead of waiting."""

from __future__ import annotations

import os
import threading

import pytest
from django.db import connection

from portal.errors import DomainError
from tenants import services
from tenants.models import Membership
from tenants.permissions import Role
from tenants.tests.fixtures import make_user

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="row-lock races need PostgreSQL"
)


def _race(*calls):
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            outcomes[index] = call()
        except DomainError as error:
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner():
    first, second = make_user("one@a.test"), make_user("two@a.test")
    tenant = services.tenant_create(slug="race", name="Race", owner=first)
    m2 = services.membership_create(tenant=tenant, user=second, role=Role.OWNER)
    m1 = Membership.objects.for_tenant(tenant).get(user=first)

    outcomes = _race(
        lambda: services.membership_change_role(membership=m2, role=Role.ADMIN, actor=services.SYSTEM, by=m1),
        lambda: services.membership_change_role(membership=m1, role=Role.ADMIN, actor=services.SYSTEM, by=m2),
    )

    assert Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).count() == 1
    assert sum(isinstance(o, DomainError) for o in outcomes) == 1


@pytest.mark.django_db(transaction=True)
def test_an_invitation_accepted_twice_at_once_makes_one_membership():
    owner = make_user("owner@a.test")
    tenant = services.tenant_create(slug="race", name="Race", owner=owner)
    _, token = services.invitation_create(
        tenant=tenant,
        email="new@a.test",
        role=Role.VIEWER,
        actor=services.SYSTEM,
        by=Membership.objects.for_tenant(tenant).get(user=owner),
        accept_url_base="http://testserver/",
    )
    newcomer = make_user("new@a.test")

    outcomes = _race(
        lambda: services.invitation_accept(token=token, user=newcomer, actor=services.SYSTEM),
        lambda: services.invitation_accept(token=token, user=newcomer, actor=services.SYSTEM),
    )

    assert Membership.objects.for_tenant(tenant).filter(user=newcomer).count() == 1
    assert sum(isinstance(o, DomainError) for o in outcomes) == 1

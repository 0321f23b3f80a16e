"""Business rules of the tenants services: owners, ranks, invitations, the audit log and scoping."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.errors import DomainError
from tenants import services
from tenants.models import AppendOnlyError, AuditEvent, Invitation, Membership
from tenants.permissions import Role
from tenants.scoping import TenantScopeError
from tenants.tests.fixtures import login_verified, make_user

pytestmark = pytest.mark.django_db
ACTOR = services.SYSTEM


def _only_owner(world) -> Membership:
    co_owner = Membership.objects.for_tenant(world.tenant).get(user__email="co-owner@a.test")
    services.membership_remove(membership=co_owner, actor=ACTOR, by=world.memberships["owner"])
    return world.memberships["owner"]


# --- owners and ranks ----------------------------------------------------------------------------------------


def test_the_last_owner_can_neither_be_demoted_nor_removed_nor_leave(world):
    owner = _only_owner(world)

    with pytest.raises(DomainError, match="at least one owner"):
        services.membership_change_role(membership=owner, role=Role.ADMIN, actor=ACTOR, by=owner)
    with pytest.raises(DomainError, match="at least one owner"):
        services.membership_remove(membership=owner, actor=ACTOR, by=None)

    assert Membership.objects.for_tenant(world.tenant).get(pk=owner.pk).role == "owner"


def test_an_admin_cannot_grant_owner_or_touch_an_owner(world):
    admin, owner = world.memberships["admin"], world.memberships["owner"]

    with pytest.raises(DomainError, match="up to your own"):
        services.membership_change_role(membership=world.memberships["viewer"], role=Role.OWNER, actor=ACTOR, by=admin)
    with pytest.raises(DomainError, match="up to your own"):
        services.membership_change_role(membership=owner, role=Role.VIEWER, actor=ACTOR, by=admin)
    with pytest.raises(DomainError, match="outranks you"):
        services.membership_remove(membership=owner, actor=ACTOR, by=admin)


def test_role_change_is_audited_with_before_and_after(world):
    actor = services.Actor(user=world.users["admin"], ip="203.0.113.9", user_agent="pytest")

    services.membership_change_role(
        membership=world.memberships["viewer"], role=Role.DEVELOPER, actor=actor, by=world.memberships["admin"]
    )

    event = AuditEvent.objects.for_tenant(world.tenant).get(action="member.role_changed")
    assert event.actor_email == "admin@a.test"
    assert event.ip == "203.0.113.9"
    assert event.user_agent == "pytest"
    assert event.target_type == "membership"
    assert event.target_id == str(world.memberships["viewer"].pk)
    assert event.details == {"user": "viewer@a.test", "from": "viewer", "to": "developer"}


def test_transfer_makes_the_other_member_owner_and_steps_down(world):
    owner = _only_owner(world)

    services.tenant_transfer_ownership(tenant=world.tenant, to=world.memberships["viewer"], actor=ACTOR, by=owner)

    roles = dict(Membership.objects.for_tenant(world.tenant).values_list("user__email", "role"))
    assert roles["viewer@a.test"] == "owner"
    assert roles["owner@a.test"] == "admin"


def test_removing_a_member_revokes_their_tokens_for_that_tenant(world):
    token, _ = services.pat_create(
        user=world.users["developer"], tenant=world.tenant, name="ci", scope="read", expires_in_days=7, actor=ACTOR
    )

    services.membership_remove(membership=world.memberships["developer"], actor=ACTOR, by=world.memberships["owner"])

    token.refresh_from_db()
    assert token.revoked_at is not None


# --- invitations ---------------------------------------------------------------------------------------------


def test_invitation_is_mailed_with_a_link_that_works_once(world, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail leaves only once the invitation is saved
        invitation, token = services.invitation_create(
            tenant=world.tenant,
            email="Grace@Example.test",
            role=Role.FINANCE,
            actor=services.Actor(user=world.users["admin"]),
            by=world.memberships["admin"],
            accept_url_base="http://testserver/",
        )
    mail = mailoutbox[-1]
    link = re.search(r"http://testserver(/invitations/\S+/)", mail.body)[1]
    grace = make_user("grace@example.test")
    client = login_verified(Client(), grace)

    accepted = client.post(link)
    again = client.post(link)

    assert mail.to == ["grace@example.test"]
    assert "Tenant A" in mail.subject
    assert token not in Invitation.objects.for_tenant(world.tenant).get(pk=invitation.pk).token_digest
    assert accepted.status_code == 302
    assert Membership.objects.for_tenant(world.tenant).get(user=grace).role == "finance"
    assert "no longer valid" in client.get(link).content.decode()
    assert again.status_code == 200  # shown the page again with the error, nothing changed
    assert Membership.objects.for_tenant(world.tenant).filter(user=grace).count() == 1


def test_an_invitation_is_only_for_its_address(world):
    intruder = make_user("intruder@example.test")

    with pytest.raises(DomainError, match="sign in with that address"):
        services.invitation_accept(token=world.invitation_token, user=intruder, actor=ACTOR)

    assert not Membership.objects.for_tenant(world.tenant).filter(user=intruder).exists()


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_expired_and_revoked_invitations_do_not_work(world, state):
    newcomer = make_user("newcomer@a.test")
    if state == "expired":
        Invitation.all_tenants.filter(pk=world.invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    else:
        services.invitation_revoke(invitation=world.invitation, actor=ACTOR)

    with pytest.raises(DomainError, match="no longer valid"):
        services.invitation_accept(token=world.invitation_token, user=newcomer, actor=ACTOR)


def test_inviters_cannot_grant_roles_above_their_own(world):
    with pytest.raises(DomainError, match="up to your own"):
        services.invitation_create(
            tenant=world.tenant,
            email="x@example.test",
            role=Role.OWNER,
            actor=ACTOR,
            by=world.memberships["admin"],
            accept_url_base="http://testserver/",
        )


def test_a_new_invitation_replaces_the_pending_one(world):
    services.invitation_create(
        tenant=world.tenant,
        email="newcomer@a.test",
        role=Role.VIEWER,
        actor=ACTOR,
        by=world.memberships["owner"],
        accept_url_base="http://testserver/",
    )

    world.invitation.refresh_from_db()
    assert world.invitation.state == Invitation.State.REVOKED


# --- audit log -----------------------------------------------------------------------------------------------


def test_audit_details_never_keep_secrets(world):
    event = services.audit_record(
        actor=ACTOR,
        action="test.event",
        tenant=world.tenant,
        details={"name": "ci", "api_key": "sk-live", "nested": {"password": "p", "ok": 1}, "backup_codes": ["a"]},
    )

    assert event.details == {
        "name": "ci",
        "api_key": "[redacted]",
        "nested": {"password": "[redacted]", "ok": 1},
        "backup_codes": "[redacted]",
    }


def test_audit_events_are_append_only(world):
    event = AuditEvent.objects.for_tenant(world.tenant).first()
    event.action = "rewritten"

    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()


def test_audit_csv_export_neutralizes_spreadsheet_formulas(world, as_persona):
    services.audit_record(actor=ACTOR, action="test.event", tenant=world.tenant, details={"note": "x"})
    AuditEvent.all_tenants.filter(action="test.event").update(user_agent="=HYPERLINK(1)")

    response = as_persona("admin").get(f"/t/{world.tenant.slug}/audit.csv", {"action": "test."})
    body = b"".join(response.streaming_content).decode()

    assert response["content-type"].startswith("text/csv")
    assert body.splitlines()[0].startswith("created_at,actor_email,action")
    assert "'=HYPERLINK(1)" in body
    assert len(body.splitlines()) == 2


def test_audit_page_filters_by_action_and_actor(world, as_persona):
    page = as_persona("owner").get(f"/t/{world.tenant.slug}/audit/", {"action": "invitation."}).content.decode()

    assert "invitation.created" in page
    assert "member.added</code>" not in page


# --- scoping -------------------------------------------------------------------------------------------------


def test_tenant_owned_models_refuse_unscoped_queries(world):
    with pytest.raises(TenantScopeError):
        list(Membership.objects.all())
    with pytest.raises(TenantScopeError):
        Invitation.objects.filter(email="x")

    assert Membership.objects.for_tenant(world.other).count() == 1


def test_another_tenants_object_is_a_404_like_a_missing_one(world, as_persona):
    foreign = Membership.objects.for_tenant(world.other).get()
    client = as_persona("owner")

    foreign_response = client.post(f"/t/{world.tenant.slug}/members/{foreign.pk}/remove/")
    missing_response = client.post(f"/t/{world.tenant.slug}/members/999999/remove/")

    assert foreign_response.status_code == missing_response.status_code == 404
    assert Membership.objects.for_tenant(world.other).filter(pk=foreign.pk).exists()

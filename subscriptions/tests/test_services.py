"""Subscription state machine, approvals, notifications, change requests and their automatic revert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from portal import events
from portal.errors import DomainError
from subscriptions import selectors, services
from subscriptions.models import ChangeRequest, Subscription
from subscriptions.services import TRANSITIONS
from tenants.models import AuditEvent

State = Subscription.State
ACTIONS: dict[str, Callable[..., Subscription]] = {
    "approve": services.subscription_approve,
    "reject": lambda **kw: services.subscription_reject(reason="Not for this use.", **kw),
    "suspend": services.subscription_suspend,
    "resume": services.subscription_resume,
    "revoke": services.subscription_revoke,
}


@pytest.fixture
def published():
    """Collects access-changed events (sent after commit: capture on-commit callbacks to see them)."""
    seen: list[dict] = []
    events.listen(events.ACCESS_CHANNEL, seen.append)
    yield seen
    events.unlisten(events.ACCESS_CHANNEL, seen.append)


def _request(market, plan=None, **kwargs):
    return services.subscription_request(
        application=market.app,
        api=market.api,
        plan=plan or market.standard,
        actor=market.actor(market.developer),
        justification="Support bot",
        **kwargs,
    )


def _in_state(market, state: str) -> Subscription:
    subscription = _request(market)
    admin = market.actor(market.acme_admin)
    path = {
        State.PENDING: [],
        State.APPROVED: ["approve"],
        State.REJECTED: ["reject"],
        State.SUSPENDED: ["approve", "suspend"],
        State.REVOKED: ["approve", "revoke"],
        State.EXPIRED: ["approve"],
    }[state]
    for action in path:
        ACTIONS[action](subscription=subscription, actor=admin)
    if state == State.EXPIRED:
        Subscription.objects.filter(pk=subscription.pk).update(ends_at=timezone.now() - timedelta(seconds=1))
        services.subscriptions_expire_due()
        subscription.refresh_from_db()
    assert subscription.state == state
    return subscription


# --- requesting ----------------------------------------------------------------------------------------------


def test_request_waits_for_approval_and_mails_the_publishers_approvers(
    market, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        subscription = _request(market)

    assert subscription.state == State.PENDING
    assert subscription.consumer == market.globex
    assert subscription.publisher == market.acme
    assert selectors.approvals_count(tenant=market.acme) == 1
    assert selectors.approvals_count(tenant=market.globex) == 0
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == ["admin@acme.test", "owner@acme.test"]  # not the viewer
    assert "Support bot" in mailoutbox[0].body
    assert AuditEvent.objects.for_tenant(market.acme).filter(action="subscription.requested").exists()
    assert AuditEvent.objects.for_tenant(market.globex).filter(action="subscription.requested").exists()


def test_request_is_approved_at_once_when_no_approval_is_needed(market, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription = _request(market, plan=market.free)

    assert subscription.state == State.APPROVED
    assert mailoutbox == []
    assert selectors.approvals_count(tenant=market.acme) == 0


def test_one_live_subscription_per_application_and_api(market):
    _request(market)

    with pytest.raises(DomainError, match="ask for a change instead"):
        _request(market, plan=market.free)


def test_private_apis_cannot_be_requested_by_other_tenants(market):
    market.api.visibility = "private"
    market.api.save()

    with pytest.raises(DomainError, match="No such API") as caught:
        _request(market)
    assert caught.value.status == 404


def test_an_api_without_a_published_version_cannot_be_subscribed(market):
    market.api.versions.update(status="draft")

    with pytest.raises(DomainError, match="no published version"):
        _request(market)


# --- the state machine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [s.value for s in State])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_transition_is_either_allowed_or_refused(
    market, start, action, mailoutbox, django_capture_on_commit_callbacks
):
    subscription = _in_state(market, start)
    expected = TRANSITIONS.get((start, action))
    audit_before = AuditEvent.all_tenants.count()
    mailoutbox.clear()

    if expected is None:
        with pytest.raises(DomainError, match="cannot be"):
            ACTIONS[action](subscription=subscription, actor=market.actor(market.acme_admin))
        subscription.refresh_from_db()
        assert subscription.state == start
        assert AuditEvent.all_tenants.count() == audit_before
    else:
        with django_capture_on_commit_callbacks(execute=True):
            ACTIONS[action](subscription=subscription, actor=market.actor(market.acme_admin))
        subscription.refresh_from_db()
        assert subscription.state == expected
        assert AuditEvent.objects.for_tenant(market.acme).filter(action=f"subscription.{expected}").exists()
        assert [m.to for m in mailoutbox] == [["dev@globex.test"]]  # the requester hears of it
        assert expected in mailoutbox[0].subject


def test_rejecting_needs_a_reason(market):
    subscription = _request(market)

    with pytest.raises(DomainError, match="Say why"):
        services.subscription_reject(subscription=subscription, actor=market.actor(market.acme_admin), reason=" ")


def test_a_subscription_ends_on_its_end_date(market):
    subscription = _request(market, plan=market.free, ends_at=timezone.now() + timedelta(days=1))

    assert services.subscriptions_expire_due() == 0
    assert services.subscriptions_expire_due(now=timezone.now() + timedelta(days=2)) == 1
    subscription.refresh_from_db()
    assert subscription.state == State.EXPIRED


def test_state_changes_tell_the_gateways(market, published, django_capture_on_commit_callbacks):
    subscription = _request(market)

    with django_capture_on_commit_callbacks(execute=True):
        services.subscription_approve(subscription=subscription, actor=market.actor(market.acme_admin))
        services.subscription_suspend(subscription=subscription, actor=market.actor(market.acme_admin))

    assert [e["application_ids"] for e in published] == [[market.app.pk], [market.app.pk]]


# --- change requests -----------------------------------------------------------------------------------------


def test_a_time_boxed_extra_quota_is_approved_then_reverted(market, mailoutbox, django_capture_on_commit_callbacks):
    subscription = _in_state(market, State.APPROVED)
    ends = timezone.now() + timedelta(days=3)
    with django_capture_on_commit_callbacks(execute=True):
        change = services.change_request_create(
            subscription=subscription,
            actor=market.actor(market.developer),
            extra_tokens=1_000_000,
            extra_models=["gpt-4o"],
            ends_at=ends,
            justification="Launch week",
        )
    assert change.state == ChangeRequest.State.PENDING
    assert selectors.approvals_count(tenant=market.acme) == 1
    assert "1000000 more tokens" in mailoutbox[-1].body

    services.change_request_approve(change_request=change, actor=market.actor(market.acme_admin))
    subscription.refresh_from_db()
    assert subscription.extra_token_quota == 1_000_000
    assert subscription.extra_models == ["gpt-4o"]

    assert services.change_requests_revert_due() == 0
    assert services.change_requests_revert_due(now=ends + timedelta(seconds=1)) == 1
    subscription.refresh_from_db()
    change.refresh_from_db()
    assert subscription.extra_token_quota == 0
    assert subscription.extra_models == []
    assert change.state == ChangeRequest.State.REVERTED


def test_a_plan_change_reverts_to_the_previous_plan(market):
    subscription = _in_state(market, State.APPROVED)
    ends = timezone.now() + timedelta(hours=1)
    change = services.change_request_create(
        subscription=subscription, actor=market.actor(market.developer), new_plan=market.free, ends_at=ends
    )
    services.change_request_approve(change_request=change, actor=market.actor(market.acme_admin))
    subscription.refresh_from_db()
    assert subscription.plan == market.free

    services.change_requests_revert_due(now=ends + timedelta(seconds=1))

    subscription.refresh_from_db()
    assert subscription.plan == market.standard


def test_change_requests_need_an_approved_subscription_and_a_pending_state(market):
    pending = _request(market)
    with pytest.raises(DomainError, match="Only an approved subscription"):
        services.change_request_create(subscription=pending, actor=market.actor(market.developer), extra_tokens=10)

    approved = pending
    services.subscription_approve(subscription=approved, actor=market.actor(market.acme_admin))
    change = services.change_request_create(
        subscription=approved, actor=market.actor(market.developer), extra_tokens=10
    )
    services.change_request_reject(change_request=change, actor=market.actor(market.acme_admin), reason="Not now")
    with pytest.raises(DomainError, match="cannot be approved"):
        services.change_request_approve(change_request=change, actor=market.actor(market.acme_admin))


def test_inbox_lists_pending_subscriptions_and_changes_of_the_publisher_only(market):
    _request(market)

    assert [s.application.slug for s in selectors.subscriptions_pending_for_publisher(tenant=market.acme)] == [
        "globex-web"
    ]
    assert not selectors.subscriptions_pending_for_publisher(tenant=market.globex).exists()

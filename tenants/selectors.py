"""Reads of the tenants app."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.utils import timezone

from tenants.models import AuditEvent, Invitation, Membership, PersonalAccessToken, Tenant, User
from tenants.permissions import ROLE_RANK


def user_by_email(*, email: str) -> User | None:
    return User.objects.filter(email__iexact=email).first()


def tenant_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    return Membership.all_tenants.filter(user=user).select_related("tenant").order_by("tenant__name")


def membership_of(*, tenant: Tenant, user: User) -> Membership | None:
    return Membership.objects.for_tenant(tenant).filter(user=user).first()


def members_of_tenant(*, tenant: Tenant) -> QuerySet[Membership]:
    """Members, most powerful first, then by e-mail."""
    rank = Case(*(When(role=role.value, then=Value(-r)) for role, r in ROLE_RANK.items()), output_field=IntegerField())
    return Membership.objects.for_tenant(tenant).select_related("user").order_by(rank, "user__email")


def pending_invitations(*, tenant: Tenant) -> QuerySet[Invitation]:
    return (
        Invitation.objects.for_tenant(tenant)
        .filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())
        .select_related("invited_by")
    )


def pending_invitations_for_email(*, email: str) -> QuerySet[Invitation]:
    return Invitation.all_tenants.filter(
        email__iexact=email, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
    ).select_related("tenant")


def audit_events(
    *,
    tenant: Tenant,
    action: str = "",
    actor: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.for_tenant(tenant)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_email__icontains=actor)
    if since:
        events = events.filter(created_at__gte=since)
    if until:
        events = events.filter(created_at__lt=until)
    return events


def audit_actions(*, tenant: Tenant) -> list[str]:
    return list(AuditEvent.objects.for_tenant(tenant).order_by("action").values_list("action", flat=True).distinct())


def tokens_of_user(*, user: User) -> QuerySet[PersonalAccessToken]:
    return PersonalAccessToken.objects.filter(user=user).select_related("tenant")

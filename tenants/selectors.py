"""Reads of the tenants app."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.models import Membership, Tenant, User


def user_by_email(*, email: str) -> User | None:
    return User.objects.filter(email__iexact=email).first()


def tenant_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name")


def membership_of(*, tenant: Tenant, user: User) -> Membership | None:
    return Membership.objects.filter(tenant=tenant, user=user).first()

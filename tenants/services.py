"""Writes of the tenants app. Views, commands and tasks call these; nothing else writes these models."""

from __future__ import annotations

from django.db import transaction

from tenants.models import Membership, Tenant, User


@transaction.atomic
def user_create(*, email: str, password: str, is_staff: bool = False, is_superuser: bool = False) -> User:
    return User.objects.create_user(email=email, password=password, is_staff=is_staff, is_superuser=is_superuser)


@transaction.atomic
def user_set_password(*, user: User, password: str) -> User:
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner: User) -> Tenant:
    """A new tenant always starts with its creator as owner (a tenant never has zero owners)."""
    tenant = Tenant.objects.create(slug=slug, name=name)
    Membership.objects.create(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    return tenant


@transaction.atomic
def membership_create(*, tenant: Tenant, user: User, role: Membership.Role) -> Membership:
    return Membership.objects.create(tenant=tenant, user=user, role=role)

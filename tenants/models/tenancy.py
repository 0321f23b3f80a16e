"""Organizations, who belongs to them, and invitations to join."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from tenants.permissions import Role
from tenants.scoping import TenantOwned

REGIONS = [("eu", "European Union"), ("us", "United States"), ("apac", "Asia-Pacific")]


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (e.g. Europe/Berlin, America/New_York).")


class Tenant(models.Model):
    """An organization: publishes AI APIs, consumes them, or both. Everything else is scoped by it."""

    slug = models.SlugField(max_length=50, unique=True, help_text="Used in URLs: /t/<slug>/…")
    name = models.CharField(max_length=200)
    require_mfa = models.BooleanField(
        "require MFA for all members",
        default=False,
        help_text="Members without two-factor authentication must enroll before they see this tenant.",
    )
    default_region = models.CharField(max_length=10, choices=REGIONS, default="eu")
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="Calendar periods (daily and monthly quotas, reports) follow this time zone.",
    )
    markup_basis_points = models.PositiveIntegerField(
        default=0,
        help_text="Chargeback markup this tenant adds, as a publisher, to the cost of calls to its APIs "
        "(1/100 of a percent: 1250 = 12.5 %).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(TenantOwned):
    """A user's role in one tenant. Roles map to permissions in tenants/permissions.py, not in the database."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=[(r.value, r.label) for r in Role])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


class Invitation(TenantOwned):
    """An e-mailed, expiring, single-use invitation to join a tenant with a given role.

    The token travels only in the e-mail; the database keeps its SHA-256 digest.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=[(r.value, r.label) for r in Role])
    token_digest = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.tenant}"

    @property
    def state(self) -> State:
        if self.accepted_at:
            return self.State.ACCEPTED
        if self.revoked_at:
            return self.State.REVOKED
        if self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.State.PENDING

"""Applications of consumer tenants, their subscriptions to catalog APIs, change requests and API keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from gateway.models import AiApi, Plan
from tenants.models import Tenant
from tenants.scoping import TenantOwned


class Application(TenantOwned):
    """Something a consumer tenant builds that calls AI APIs; keys and subscriptions belong to it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="applications")
    slug = models.SlugField(max_length=50)
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=300, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwned.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="application_slug_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"


class Subscription(models.Model):
    """An application's right to call one API on one plan.

    States: pending → approved | rejected; approved ↔ suspended; approved/suspended → revoked; approved → expired
    (when ``ends_at`` passes). Only ``subscriptions.services`` moves between them, and refuses illegal moves.
    ``consumer`` and ``publisher`` repeat the two tenants so each side's queries stay simple and indexed.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SUSPENDED = "suspended", "Suspended"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    LIVE_STATES = (State.PENDING, State.APPROVED, State.SUSPENDED)

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="subscriptions")
    api = models.ForeignKey(AiApi, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    consumer = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="subscriptions_made")
    publisher = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="subscriptions_received")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    justification = models.TextField(blank=True)
    decision_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Optional end of the subscription.")
    # Time-boxed grants from approved change requests (reverted when they end).
    extra_token_quota = models.PositiveBigIntegerField(default=0)
    extra_models = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "api"],
                condition=Q(state__in=["pending", "approved", "suspended"]),
                name="one_live_subscription_per_application_and_api",
            )
        ]
        indexes = [
            models.Index(fields=["publisher", "state"], name="subscription_inbox"),
            models.Index(fields=["consumer", "state"], name="subscription_consumer"),
        ]

    def __str__(self) -> str:
        return f"{self.application} → {self.api} ({self.state})"


class ChangeRequest(models.Model):
    """A request to change a live subscription — another plan, more tokens, extra models — approved like a
    subscription, optionally only until ``ends_at`` (then reverted by a scheduled task)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        REVERTED = "reverted", "Ended and reverted"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="change_requests")
    new_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    previous_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    extra_tokens = models.PositiveBigIntegerField(default=0)
    extra_models = models.JSONField(default=list, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    justification = models.TextField(blank=True)
    decision_reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"change of {self.subscription} ({self.state})"


class ApiKey(models.Model):
    """A credential of an application: ``gh_<public id>_<secret><checksum>`` (SPEC §3).

    Only an HMAC-SHA256 digest of the secret is stored, found by ``public_id``. A key works while it is not
    revoked, not expired, and — after a rotation — until ``valid_until``. ``scopes`` (API ids) narrows it to
    some of the application's subscriptions; empty means all of them.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100)
    public_id = models.CharField(max_length=8, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list, blank=True)
    ip_allowlist = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(
        null=True, blank=True, help_text="Set when rotated: the end of the grace period."
    )
    rotated_to = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rotated_from"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (gh_{self.public_id}_…)"

    def is_usable(self, now: object = None) -> bool:
        now = now or timezone.now()
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)  # type: ignore[operator]
            and (self.valid_until is None or self.valid_until > now)  # type: ignore[operator]
        )

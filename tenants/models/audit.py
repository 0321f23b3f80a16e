"""The audit log: who did what, to what, from where. Append-only."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from tenants.models.tenancy import Tenant
from tenants.scoping import TenantOwned


class AppendOnlyError(RuntimeError):
    pass


class AuditEvent(TenantOwned):
    """One privileged action. Written only by ``tenants.services.audit_record``; never updated or deleted.

    ``tenant`` is empty for account-level events (MFA, tokens). ``actor_email`` survives the actor's deletion.
    ``details`` never holds secrets: the service redacts keys that look like credentials.
    """

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_email = models.EmailField(blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta(TenantOwned.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_email or 'system'}"

    # An integrity guard, not business logic: the log must not be rewritten through the ORM.
    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only.")

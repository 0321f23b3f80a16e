"""Fail-closed tenant scoping for tenant-owned models.

A tenant-owned model subclasses ``TenantOwned``. Its ``objects`` manager raises on plain querysets: the way in
is ``Model.objects.for_tenant(tenant)``. Code that really must cross tenants (the admin, Celery tasks that
re-scope by id, reverse relations that are already scoped by their foreign key) uses ``Model.all_tenants``,
which is also the default manager Django's internals use. A forgotten filter is a crash in tests, not a leak
in production.

``get_for_tenant_or_404`` is the access helper views use: another tenant's object and a missing object give the
same 404, so ids cannot be probed across tenants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.db import models
from django.http import Http404

if TYPE_CHECKING:
    from tenants.models import Tenant

M = TypeVar("M", bound=models.Model)


class TenantScopeError(RuntimeError):
    """A tenant-owned model was queried without saying which tenant."""


class TenantScopedManager(models.Manager[M], Generic[M]):
    tenant_field = "tenant"

    def get_queryset(self) -> models.QuerySet[M]:
        raise TenantScopeError(
            f"{self.model.__name__} is tenant-owned: use .objects.for_tenant(tenant), or .all_tenants where crossing"
            " tenants is the point."
        )

    def for_tenant(self, tenant: Tenant) -> models.QuerySet[M]:
        if tenant is None or tenant.pk is None:
            raise TenantScopeError(f"{self.model.__name__}.objects.for_tenant() needs a saved tenant.")
        return super().get_queryset().filter(**{self.tenant_field: tenant})


class TenantOwned(models.Model):
    """Base of every model that belongs to one tenant (field ``tenant``)."""

    objects: TenantScopedManager[Any] = TenantScopedManager()
    all_tenants: models.Manager[Any] = models.Manager()

    class Meta:
        abstract = True
        default_manager_name = "all_tenants"


def get_for_tenant_or_404(model: type[M], *, tenant: Tenant, **lookup: Any) -> M:
    manager: TenantScopedManager[M] = model.objects  # type: ignore[attr-defined]
    obj = manager.for_tenant(tenant).filter(**lookup).first()
    if obj is None:
        raise Http404(f"No {model._meta.verbose_name} here.")
    return obj

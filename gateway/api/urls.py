"""Management API routes of the catalog, mounted under /api/v1/ by portal/api/urls.py."""

from __future__ import annotations

from django.urls import path

from gateway.api import views

_api = "tenants/<slug:tenant_slug>/apis/<slug:api_slug>"

urlpatterns = [
    path("catalog", views.CatalogListApi.as_view(), name="catalog-list"),
    path("catalog/<slug:publisher_slug>/<slug:api_slug>", views.CatalogDetailApi.as_view(), name="catalog-detail"),
    path("tenants/<slug:tenant_slug>/apis", views.PublishedApiListApi.as_view(), name="api-list"),
    path(_api, views.PublishedApiDetailApi.as_view(), name="api-detail"),
    path(f"{_api}/versions", views.VersionListApi.as_view(), name="version-list"),
    path(f"{_api}/versions/<str:version>/status", views.VersionStatusApi.as_view(), name="version-status"),
    path(f"{_api}/plans", views.PlanListApi.as_view(), name="plan-list"),
    path("tenants/<slug:tenant_slug>/policies", views.PolicyDocumentApi.as_view(), name="policies"),
    path("tenants/<slug:tenant_slug>/policies/versions", views.PolicyVersionListApi.as_view(), name="policy-versions"),
    path(
        "tenants/<slug:tenant_slug>/policies/versions/<int:number>/rollback",
        views.PolicyRollbackApi.as_view(),
        name="policy-rollback",
    ),
]

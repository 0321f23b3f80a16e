"""Management API routes of analytics, mounted under /api/v1/ by portal/api/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from analytics.api import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("tenants/<slug:tenant_slug>/usage", views.UsageApi.as_view(), name="usage"),
    path("tenants/<slug:tenant_slug>/reports/costs", views.CostReportApi.as_view(), name="cost-report"),
    path(
        "tenants/<slug:tenant_slug>/reports/statements/<int:year>/<int:month>",
        views.StatementApi.as_view(),
        name="statement",
    ),
    path("tenants/<slug:tenant_slug>/alert-rules", views.AlertRuleListApi.as_view(), name="alert-rule-list"),
    path(
        "tenants/<slug:tenant_slug>/alert-rules/<int:rule_id>",
        views.AlertRuleDetailApi.as_view(),
        name="alert-rule-detail",
    ),
    path("tenants/<slug:tenant_slug>/alerts", views.AlertListApi.as_view(), name="alert-list"),
]

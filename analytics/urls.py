"""Page routes of analytics, mounted under /t/<tenant_slug>/ by portal/urls.py (namespace "tenants")."""

from __future__ import annotations

from django.urls import path

from analytics import views

tenant_urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("calls/", views.calls, name="calls"),
    path("calls/<str:event_id>/", views.call_detail, name="call"),
    path("reports/costs/", views.cost_report, name="cost-report"),
    path("reports/costs.csv", views.cost_report_csv, name="cost-report-csv"),
    path("reports/statements/<int:year>/<int:month>/", views.statement, name="statement"),
    path("revenue/", views.revenue, name="revenue"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/rules/<int:rule_id>/delete/", views.alert_rule_delete, name="alert-rule-delete"),
    path("live/", views.live_dashboard, name="live"),
    path("live.json", views.live_json, name="live-json"),
]

"""The management API under /api/v1/: each app contributes its own routes."""

from __future__ import annotations

from django.urls import include, path

app_name = "api"

urlpatterns = [
    path("", include("tenants.api.urls")),
    path("", include("subscriptions.api.urls")),
    path("", include("gateway.api.urls")),
    path("", include("analytics.api.urls")),
]

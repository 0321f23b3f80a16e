"""Management API routes of tenants, mounted under /api/v1/ by portal/api/urls.py."""

from __future__ import annotations

from django.urls import path

from tenants.api.views import MeApi

urlpatterns = [
    path("me", MeApi.as_view(), name="me"),
]

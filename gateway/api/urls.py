"""Management API routes of gateway, mounted under /api/v1/ by portal/api/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []

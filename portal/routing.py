"""Websocket routes (channels). Each app adds its consumers here."""

from __future__ import annotations

from django.urls import path

from analytics.consumers import LiveDashboardConsumer
from portal.consumers import HealthConsumer

websocket_urlpatterns = [
    path("ws/healthz/", HealthConsumer.as_asgi()),
    path("ws/t/<slug:tenant_slug>/live/", LiveDashboardConsumer.as_asgi()),
]

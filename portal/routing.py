"""Websocket routes (channels). Each app adds its consumers here."""

from __future__ import annotations

from django.urls import path

from portal.consumers import HealthConsumer

websocket_urlpatterns = [
    path("ws/healthz/", HealthConsumer.as_asgi()),
]

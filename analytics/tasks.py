"""Celery tasks of analytics. Tasks take ids (including tenant_id) and re-scope explicitly."""

from __future__ import annotations

import os
import socket

from celery import shared_task
from django.conf import settings

from analytics import services


@shared_task(name="analytics.ingest_usage")
def ingest_usage() -> int:
    """Move the gateways' usage events from Redis into the call log (every 5 s, see CELERY_BEAT_SCHEDULE)."""
    if not settings.REDIS_URL:
        return 0  # embedded mode: the gateway writes its events straight to the database
    return services.usage_stream_drain(consumer=f"{socket.gethostname()}-{os.getpid()}")


@shared_task(name="analytics.roll_up_usage")
def roll_up_usage() -> int:
    """Recompute the hourly and daily rollups of the hours that got new events (every minute)."""
    total = 0
    while hours := services.usage_rollups_refresh():
        total += hours
    return total


@shared_task(name="analytics.trim_call_log")
def trim_call_log() -> int:
    """Drop raw call-log rows past their retention (daily); rollups stay."""
    return services.call_log_trim()


@shared_task(name="analytics.evaluate_alerts")
def evaluate_alerts() -> int:
    """Check the evaluated alert rules (every minute); fresh rollups first, so anomaly rules see the last hour."""
    roll_up_usage()
    return services.alerts_evaluate()


@shared_task(name="analytics.deliver_alerts")
def deliver_alerts() -> int:
    """Send due alert deliveries (right after an alert is raised, and every 15 s for retries)."""
    return services.alert_deliveries_send()

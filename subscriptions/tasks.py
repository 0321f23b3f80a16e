"""Scheduled work of subscriptions (beat runs each every minute; see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from subscriptions import services


@shared_task(name="subscriptions.expire_due")
def expire_due_subscriptions() -> int:
    return services.subscriptions_expire_due()


@shared_task(name="subscriptions.revert_due_changes")
def revert_due_change_requests() -> int:
    return services.change_requests_revert_due()

"""Embedded mode has no beat: the web process runs the schedule itself, so the demo's usage pages fill up."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async

from analytics import services
from analytics.models import UsageRollup
from analytics.tests.fixtures import usage_event
from portal import embedded_beat

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_cap_shortens_every_interval_and_nothing_else(settings):
    settings.CELERY_BEAT_SCHEDULE = {
        "a": {"task": "t.fast", "schedule": 5.0},
        "b": {"task": "t.slow", "schedule": 60.0},
    }
    settings.EMBEDDED_BEAT_SECONDS = 0
    assert embedded_beat.intervals() == {"t.fast": 5.0, "t.slow": 60.0}
    settings.EMBEDDED_BEAT_SECONDS = 10
    assert embedded_beat.intervals() == {"t.fast": 5.0, "t.slow": 10.0}


async def test_the_beat_loop_rolls_up_the_call_log(market, settings):
    settings.CELERY_BEAT_SCHEDULE = {"rollups": {"task": "analytics.roll_up_usage", "schedule": 0.1}}
    await sync_to_async(services.usage_events_record)(events=[usage_event(market, datetime.now(UTC))])

    beat = asyncio.create_task(embedded_beat.run())
    for _ in range(50):
        await asyncio.sleep(0.1)
        if await sync_to_async(UsageRollup.all_tenants.filter(granularity="hour").exists)():
            break
    beat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await beat

    assert await sync_to_async(UsageRollup.all_tenants.filter(granularity="hour").count)() == 1

"""Celery beat for embedded mode (no broker: `make demo`, bare tests): the same schedule, run in the web process.

Without Redis there is no worker and no beat, and tasks only run eagerly when something enqueues them — so the
periodic ones (rollups, alert evaluation and delivery, retention, subscription expiry) would never run and the
demo's usage pages would stay empty. The ASGI lifespan starts this loop instead; each task runs in a thread of
its own (never the gateway's sync thread, never on the event loop), one at a time, at the intervals of
``CELERY_BEAT_SCHEDULE`` (capped by ``GATEHOUSE_EMBEDDED_BEAT_SECONDS`` when set, e.g. for browser tests).
Production never runs this: compose has a real beat and workers.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

logger = logging.getLogger("gatehouse.embedded_beat")


def _run(task_name: str) -> None:
    from portal.celery import app

    try:
        app.tasks[task_name]()
    except Exception as error:  # a failed run is logged and tried at its next interval, like beat would
        logger.warning("embedded beat: %s failed (%s)", task_name, type(error).__name__)
    finally:
        connections.close_all()  # this thread's connections: the next run may get another thread


def intervals() -> dict[str, float]:
    """Seconds between runs of each scheduled task (the schedule's, capped by EMBEDDED_BEAT_SECONDS if set)."""
    cap = settings.EMBEDDED_BEAT_SECONDS
    every: dict[str, float] = {}
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        seconds = float(entry["schedule"])  # type: ignore[arg-type]  # the schedule holds plain seconds
        every[str(entry["task"])] = min(seconds, cap) if cap else seconds
    return every


async def run() -> None:
    from portal.celery import app

    app.loader.import_default_modules()  # every app's tasks.py, as a worker would at start-up (autodiscovery)
    loop = asyncio.get_running_loop()
    every = intervals()
    due = {task: loop.time() + seconds for task, seconds in every.items()}
    while True:
        task = min(due, key=due.__getitem__)
        await asyncio.sleep(max(0.0, due[task] - loop.time()))
        await sync_to_async(_run, thread_sensitive=False)(task)
        due[task] = loop.time() + every[task]

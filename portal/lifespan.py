"""ASGI lifespan: start-up and shut-down of process-wide resources.

At start-up, with Redis configured, a task subscribes to the access channel so this process's gateway cache
drops what other processes changed (keys revoked, subscriptions suspended, routes changed), and the heap built by
imports is frozen out of the garbage collector's reach (see `calm_the_collector`); without a broker (embedded
mode) the beat schedule runs in this process (portal/embedded_beat.py). At shut-down the buffered usage events
are flushed and the pooled upstream client closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)
Scope = dict[str, Any]


async def _listen_for_access_changes() -> None:
    import redis.asyncio as aioredis

    from gateway.proxy.app import CACHE
    from portal.events import ACCESS_CHANNEL

    while True:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(ACCESS_CHANNEL)
                CACHE.clear()  # anything published while we were not listening is covered
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        CACHE.invalidate(json.loads(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception:  # Redis went away: forget everything cached, then reconnect
            logger.warning("access-change listener lost Redis; retrying in 1 s")
            CACHE.clear()
            await asyncio.sleep(1)
        finally:
            await client.aclose()


# Measured with `make bench`-style load (128 connections, one worker): without this, full collections walked the
# ~430,000 objects that importing Django and litellm leaves behind, 100-250 ms each, several a second — the
# gateway's whole tail latency. A larger first threshold also means fewer young collections per request.
YOUNG_GENERATION_THRESHOLD = 10_000


def calm_the_collector() -> None:
    """Move everything alive now (modules, settings, caches built at import) to the permanent generation.

    Call once, after start-up imports; objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    listener: asyncio.Task[None] | None = None
    beat: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if settings.REDIS_URL:
                listener = asyncio.create_task(_listen_for_access_changes())
            if settings.CELERY_TASK_ALWAYS_EAGER:  # no broker, so no beat: run its schedule here
                from portal import embedded_beat

                beat = asyncio.create_task(embedded_beat.run(), name="gatehouse-embedded-beat")
            calm_the_collector()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for task in (listener, beat):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            from gateway.proxy.app import close

            await close()
            await send({"type": "lifespan.shutdown.complete"})
            return

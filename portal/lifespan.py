"""ASGI lifespan: start-up and shut-down of process-wide resources.

At start-up, with Redis configured, a task subscribes to the access channel so this process's gateway cache
drops what other processes changed (keys revoked, subscriptions suspended, routes changed). At shut-down the
buffered usage events are flushed and the pooled upstream client closes.
"""

from __future__ import annotations

import asyncio
import contextlib
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


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    listener: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if settings.REDIS_URL:
                listener = asyncio.create_task(_listen_for_access_changes())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            from gateway.proxy.app import close

            await close()
            await send({"type": "lifespan.shutdown.complete"})
            return

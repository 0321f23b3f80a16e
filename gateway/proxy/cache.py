"""The response cache: exact-match answers for deterministic requests, when a policy turns it on.

What is cached: non-streamed answers (status 200) to embeddings, and to chat calls with ``temperature: 0`` and at
most one choice — the requests whose answer does not change from one call to the next. The key is a SHA-256 of
the consumer tenant, the API, the model alias (which names the version) and the request body with its keys
sorted (minus ``user``, which does not change the answer): never shared across tenants. A client sends
``cache-control: no-cache`` to skip the lookup (the fresh answer is stored again).

A hit costs no tokens and no money (its usage event says ``cache_hit`` with zero tokens) but still counts as a
request against request limits and request quotas. Answers carry ``x-gatehouse-cache: hit|miss``.

Stored in Redis when configured (shared by every worker), else in this process (at most ``LOCAL_ENTRIES``). A
cache that fails is a miss, never an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

logger = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1_000_000
LOCAL_ENTRIES = 10_000
TIMEOUT_SECONDS = 0.1
UNCACHED_FIELDS = frozenset({"user", "stream_options"})


def is_deterministic(path: str, body: dict[str, Any]) -> bool:
    if body.get("stream") is True:
        return False
    if path == "/embeddings":
        return True
    return body.get("temperature") == 0 and body.get("n") in (None, 1)


def key_for(tenant_id: int, api_id: int, alias: str, path: str, body: dict[str, Any]) -> str:
    request = {k: v for k, v in body.items() if k not in UNCACHED_FIELDS}
    material = json.dumps([tenant_id, api_id, alias, path, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


class ResponseCache:
    def __init__(self) -> None:
        self._local: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aioredis.Redis | None = None

    def _redis(self) -> aioredis.Redis | None:
        if not settings.REDIS_URL:
            return None
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._client = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
            )
        return self._client

    def _key(self, key: str) -> str:
        return f"{settings.RESPONSE_CACHE_PREFIX}:{key}"

    async def get(self, key: str) -> bytes | None:
        client = self._redis()
        if client is None:
            entry = self._local.get(key)
            if entry is None or entry[0] <= time.monotonic():
                return None
            self._local.move_to_end(key)
            return entry[1]
        try:
            found: bytes | None = await client.get(self._key(key))
        except (aioredis.RedisError, OSError) as error:
            logger.warning("response cache unavailable (%s): a miss", type(error).__name__)
            return None
        return found

    async def put(self, key: str, answer: bytes, ttl_seconds: int) -> None:
        if len(answer) > MAX_ANSWER_BYTES:
            return
        client = self._redis()
        if client is None:
            self._local[key] = (time.monotonic() + ttl_seconds, answer)
            self._local.move_to_end(key)
            while len(self._local) > LOCAL_ENTRIES:
                self._local.popitem(last=False)
            return
        try:
            await client.set(self._key(key), answer, ex=ttl_seconds)
        except (aioredis.RedisError, OSError) as error:
            logger.warning("response cache unavailable (%s): not stored", type(error).__name__)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._loop, self._client = None, None

    def clear_local(self) -> None:
        self._local.clear()


CACHE = ResponseCache()

"""The last link of the hot path: one usage event per call, shipped off the request path in batches.

``RECORDER.record(event)`` only appends to a list. A background task on the event loop flushes the list every
``FLUSH_SECONDS`` (or at ``BATCH_SIZE`` events) with one pipelined XADD per batch onto the Redis stream
``settings.USAGE_STREAM``; analytics drains the stream into the call log. Without Redis (embedded mode), or
while Redis cannot be reached, a batch is written straight to the database instead (in a worker thread, never
on a request's path); if that fails too, the batch stays queued and is tried again. Events carry a unique
``event_id``, so a batch that is written twice is still stored once.

What can be lost: the events of the last ``FLUSH_SECONDS`` of a process killed without warning (SIGKILL, power
loss). A normal shutdown (SIGTERM → ASGI lifespan) flushes everything first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings

logger = logging.getLogger("gatehouse.gateway.usage")

FLUSH_SECONDS = 0.05
PAYLOAD_CHARS = 20_000  # per text of a logged payload
BATCH_SIZE = 500
RETRY_SECONDS = 1.0


@dataclass
class CallRecord:
    """What one call did, filled in as the request moves along; becomes the usage event at the end."""

    request_id: str
    endpoint: str
    started_at: datetime
    started: float  # loop.time() at arrival
    tenant_id: int | None = None
    application_id: int = 0
    application_slug: str = ""
    key_public_id: str = ""
    publisher_id: int | None = None
    subscription_id: int | None = None
    api_id: int | None = None
    api_label: str = ""
    model: str = ""
    deployment_id: int | None = None
    deployment_name: str = ""
    provider_kind: str = ""
    input_price: int = 0  # micro-USD per 1M tokens, of the deployment that answered
    output_price: int = 0
    status: int = 0
    error_code: str = ""
    is_stream: bool = False
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: int | None = None
    usage_is_estimated: bool = False
    client_ip: str = ""
    region: str = ""  # of the deployment that answered
    cached_tokens: int = 0  # prompt tokens the provider served from its cache
    upstream_ms: int | None = None  # time spent waiting on providers
    cache_hit: bool = False  # answered from the response cache: no tokens, no cost
    decisions: list[str] = field(default_factory=list)  # what policies did to it, e.g. "prompt_injection:…"
    # Payload logging (a policy's `payloads`): the request as the provider saw it and the answer's texts as the
    # provider sent them (before placeholders are restored); masked for the log when the event is made.
    payload_days: int = 0
    payload_request: Any = None
    payload_answer: list[str] = field(default_factory=list)

    def take_usage(self, usage: Any) -> bool:
        """Read an OpenAI ``usage`` object; False when there is none to read."""
        if not isinstance(usage, dict):
            return False
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int):
            return False
        self.prompt_tokens = prompt
        self.completion_tokens = completion if isinstance(completion, int) else 0
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        self.cached_tokens = cached if isinstance(cached, int) and cached >= 0 else 0
        return True

    def cost_micros(self) -> int:
        """Integer micro-USD, rounded half up (prices are per 1M tokens)."""
        spend = self.prompt_tokens * self.input_price + self.completion_tokens * self.output_price
        return (spend + 500_000) // 1_000_000

    def payload(self) -> dict[str, Any]:
        """The masked prompt and answer, cut to PAYLOAD_CHARS each."""
        from gateway.proxy.pii import masked_for_log

        body = self.payload_request if isinstance(self.payload_request, dict) else {}
        asked = {k: body[k] for k in ("messages", "input", "variables") if k in body}
        return {
            "request": json.dumps(masked_for_log(asked), ensure_ascii=False)[:PAYLOAD_CHARS],
            "answer": masked_for_log("".join(self.payload_answer))[:PAYLOAD_CHARS],
            "retention_days": self.payload_days,
        }

    def event(self, now: float) -> dict[str, Any]:
        event = self._event(now)
        if self.payload_days:
            event["payload"] = self.payload()
        return event

    def _event(self, now: float) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4().hex,
            "request_id": self.request_id,
            "occurred_at": self.started_at.isoformat(),
            "tenant_id": self.tenant_id,
            "publisher_id": self.publisher_id,
            "application_id": self.application_id,
            "application_slug": self.application_slug,
            "key_public_id": self.key_public_id,
            "subscription_id": self.subscription_id,
            "api_id": self.api_id,
            "api_label": self.api_label,
            "endpoint": self.endpoint,
            "model": self.model,
            "deployment_id": self.deployment_id,
            "deployment_name": self.deployment_name,
            "provider_kind": self.provider_kind,
            "status": self.status,
            "error_code": self.error_code,
            "is_stream": self.is_stream,
            "attempts": self.attempts,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_micros": self.cost_micros(),
            "latency_ms": max(0, round((now - self.started) * 1000)),
            "ttft_ms": self.ttft_ms,
            "usage_is_estimated": self.usage_is_estimated,
            "client_ip": self.client_ip,
            "region": self.region,
            "cached_tokens": self.cached_tokens,
            "upstream_ms": self.upstream_ms,
            "cache_hit": self.cache_hit,
            "policy_decisions": self.decisions,
        }


def new_record(request_id: str, endpoint: str, client_ip: str = "") -> CallRecord:
    return CallRecord(
        request_id=request_id,
        endpoint=endpoint,
        started_at=datetime.now(UTC),
        started=asyncio.get_running_loop().time(),
        client_ip=client_ip,
    )


class Sink(Protocol):
    async def write(self, events: list[dict[str, Any]]) -> None: ...

    async def close(self) -> None: ...


class DatabaseSink:
    """Straight into the call log (embedded mode; and the fallback while Redis is unreachable)."""

    async def write(self, events: list[dict[str, Any]]) -> None:
        from analytics import live
        from analytics.services import usage_events_record

        await sync_to_async(usage_events_record)(events=events)
        if not settings.REDIS_URL:  # embedded: this one process is the whole deployment
            live.memory_add(events)

    async def close(self) -> None:
        from django.db import connections

        await sync_to_async(connections.close_all)()


class RedisStreamSink:
    def __init__(self, url: str, stream: str) -> None:
        self.stream = stream
        self.client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)

    async def write(self, events: list[dict[str, Any]]) -> None:
        from analytics import live

        async with self.client.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self.stream, {"event": json.dumps(event)})
            live.redis_commands(pipe, events)  # the live figures and /metrics, in the same round trip
            await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()


class Recorder:
    """Per process: buffers usage events and flushes them from a background task of the running loop."""

    def __init__(self) -> None:
        self._buffer: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._sinks: list[Sink] = []
        self._stopping = False

    def record(self, event: dict[str, Any]) -> None:
        self._buffer.append(event)
        self._start()
        if len(self._buffer) >= BATCH_SIZE and self._wake is not None:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new loop (tests): sinks and locks belong to one loop
            self._loop, self._task = loop, None
            self._wake, self._lock = asyncio.Event(), asyncio.Lock()
            self._sinks = [DatabaseSink()]
            if settings.REDIS_URL:
                self._sinks.insert(0, RedisStreamSink(settings.REDIS_URL, settings.USAGE_STREAM))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="gatehouse-usage-recorder")

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(RETRY_SECONDS)

    async def flush(self) -> bool:
        """Write out what is buffered; False when every sink failed (the events stay buffered)."""
        if self._lock is None:
            return True
        async with self._lock:
            batch, self._buffer = self._buffer, []
            if not batch:
                return True
            try:
                for sink in self._sinks:
                    try:
                        await sink.write(batch)
                        return True
                    except Exception as error:  # any failure: try the next sink, keep the events
                        logger.warning(
                            "usage sink %s failed (%s); %d events kept", type(sink).__name__, error, len(batch)
                        )
            except BaseException:  # cancelled mid-write: keep the batch (a repeat is harmless, a loss is not)
                self._buffer[:0] = batch
                raise
            self._buffer[:0] = batch
            return False

    async def close(self) -> None:
        """Flush and stop (ASGI lifespan shutdown, and tests)."""
        if self._task is not None and self._wake is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task, self._stopping = None, False
        await self.flush()
        for sink in self._sinks:
            await sink.close()
        self._loop, self._sinks = None, []


RECORDER = Recorder()

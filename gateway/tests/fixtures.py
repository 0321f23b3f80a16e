"""Gateway fixtures: the ASGI app in-process, a served market (deployment on the mock, subscription, key), and
the usage events the calls left behind."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from analytics.models import UsageEvent
from analytics.services import usage_stream_drain
from gateway import services as catalog
from gateway.proxy import app as proxy
from gateway.proxy import usage
from subscriptions import services as subscription_services
from tenants import services as tenant_services

_heap_frozen = False


def _freeze_the_heap_once() -> None:
    """What a server's start-up does (portal/lifespan.py:calm_the_collector), which the in-process app skips:
    freeze what the earlier tests of the run left alive, so that a full collection of that heap cannot pause a
    burst of concurrent calls past the limiter's 250 ms Redis timeout (seen late in full runs as 503s)."""
    global _heap_frozen
    if not _heap_frozen:
        gc.collect()
        gc.freeze()
        _heap_frozen = True


@pytest.fixture
async def gateway():
    """An HTTP client speaking to the ASGI app in-process, with a fresh cache and upstream client."""
    from portal.asgi import application

    _freeze_the_heap_once()
    proxy.CACHE.clear()
    proxy.BREAKERS.reset()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://gatehouse") as client:
        yield client
    await proxy.close()
    # Cache misses ran the ORM in asgiref's worker thread: close that thread's connections too.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def served(market, mock_llm):
    """The market's assistant, served by a deployment on the mock; an approved subscription and a key."""
    actor = tenant_services.SYSTEM

    def route_to(
        api_base: str, name: str, timeout: int = 10, fallback_order: int = 0, replace: bool = True, **deployment: Any
    ) -> None:
        provider = catalog.provider_create(
            tenant=market.acme,
            name=name,
            kind=deployment.pop("kind", "openai_compatible"),
            api_base=api_base,
            credentials={"api_key": "sk-up"},
            actor=actor,
        )
        created = catalog.deployment_create(
            provider=provider,
            name=name,
            model=deployment.pop("model", "gpt-4o-mini"),
            actor=actor,
            timeout_seconds=timeout,
            **deployment,
        )
        version = market.api.versions.get()
        if replace:
            version.routes.all().delete()
        catalog.route_add(version=version, deployment=created, actor=actor, fallback_order=fallback_order)

    route_to(f"{mock_llm.url}/v1", "mock", input_price_micros_per_mtok=150_000, output_price_micros_per_mtok=600_000)
    subscription = subscription_services.subscription_request(
        application=market.app, api=market.api, plan=market.free, actor=market.actor(market.developer)
    )
    key, full = subscription_services.api_key_create(application=market.app, name="k", actor=actor)
    return {"key": key, "auth": {"authorization": f"Bearer {full}"}, "subscription": subscription, "route_to": route_to}


async def recorded_usage() -> list[UsageEvent]:
    """Every usage event the gateway recorded so far, as stored in the call log (oldest first).

    Flushes this process's buffer; with Redis (CI) the events went to the stream, so drain it like the beat
    task would.
    """
    await usage.RECORDER.flush()
    if settings.REDIS_URL:
        await sync_to_async(usage_stream_drain)(consumer="tests")

    def stored() -> list[UsageEvent]:
        return list(UsageEvent.all_tenants.order_by("occurred_at", "pk"))

    return await sync_to_async(stored)()


async def stream_and_hang_up(auth: dict[str, str], body: dict[str, Any]) -> list[dict[str, Any]]:
    """Ask for a stream through the ASGI app and leave once its first content chunk arrived, as a client that
    closes the connection would; returns the ASGI messages the gateway sent."""
    from portal.asgi import application

    headers = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in auth.items()]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "headers": headers,
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "server": ("gatehouse", 80),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "asgi": {"version": "3.0"},
    }
    sent: list[dict[str, Any]] = []
    first_event = asyncio.Event()
    hang_up = asyncio.Event()
    messages = iter([{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}])

    async def receive() -> dict[str, Any]:
        try:
            return next(messages)
        except StopIteration:
            await hang_up.wait()
            return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and b"echo" in message.get("body", b""):
            first_event.set()

    call = asyncio.create_task(application(scope, receive, send))
    await asyncio.wait_for(first_event.wait(), 5)
    hang_up.set()
    await asyncio.wait_for(call, 5)
    return sent


@pytest.fixture
def served_embeddings(served, market):
    """An embeddings API of Acme (model text-embedding-3-small) on the served deployment's provider, to which the
    market's application is subscribed."""
    actor = tenant_services.SYSTEM
    api = catalog.api_create(tenant=market.acme, slug="embed", name="Embed", kind="embeddings", actor=actor)
    version = catalog.version_create(api=api, version="v1", model_alias="text-embedding-3-small", actor=actor)
    catalog.version_set_status(version=version, status="published", actor=actor)
    provider = market.api.versions.get().routes.get().deployment.provider
    deployment = catalog.deployment_create(
        provider=provider, name="embedder", model="text-embedding-3-small", actor=actor
    )
    catalog.route_add(version=version, deployment=deployment, actor=actor)
    plan = catalog.plan_create(api=api, slug="free", name="Free", actor=actor, requires_approval=False)
    subscription_services.subscription_request(application=market.app, api=api, plan=plan, actor=actor)
    return api

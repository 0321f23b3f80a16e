"""The ASGI application: HTTP through Django, websockets through channels, lifespan; served by uvicorn."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator

import httpx
import pytest
from channels.testing import WebsocketCommunicator

from portal.asgi import application
from portal.lifespan import YOUNG_GENERATION_THRESHOLD, lifespan
from tests.servers import uvicorn_server


@pytest.mark.django_db  # consumers close stale connections (and may read sessions) between messages
async def test_websocket_round_trips_through_the_channel_layer():
    communicator = WebsocketCommunicator(application, "/ws/healthz/", headers=[(b"origin", b"http://127.0.0.1")])
    connected, _ = await communicator.connect()

    assert connected
    message = await communicator.receive_json_from(timeout=5)
    assert message["status"] == "ok"
    expected = "RedisChannelLayer" if os.environ.get("REDIS_URL") else "InMemoryChannelLayer"
    assert message["channel_layer"] == expected
    await communicator.disconnect()


@pytest.mark.django_db
async def test_websocket_from_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/healthz/", headers=[(b"origin", b"https://evil.test")])
    connected, _ = await communicator.connect()

    assert not connected


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """Start-up freezes the heap and raises the collector's threshold; undo both for the tests that follow."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def run_lifespan() -> list[dict[str, str]]:
    inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    sent: list[dict[str, str]] = []
    for event in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": event})

    async def send(message: dict[str, str]) -> None:
        sent.append(message)

    await asyncio.wait_for(lifespan({"type": "lifespan"}, inbox.get, send), timeout=2)
    return sent


async def test_lifespan_acknowledges_startup_and_shutdown(collector_restored):
    sent = await run_lifespan()

    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_startup_freezes_the_import_heap_out_of_the_collectors_reach(collector_restored):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0

    await run_lifespan()

    assert gc.get_freeze_count() > 10_000  # Django, litellm and the rest of what importing left behind
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD


@pytest.mark.slow
def test_uvicorn_serves_pages_probes_and_static_files():
    with uvicorn_server() as base_url:
        landing = httpx.get(f"{base_url}/")
        health = httpx.get(f"{base_url}/healthz")
        css = httpx.get(f"{base_url}/static/vendor/bootstrap-5.3.9/bootstrap.min.css")
        ready = httpx.get(f"{base_url}/readyz")

    assert landing.status_code == 200
    assert "Gatehouse" in landing.text
    assert health.json() == {"status": "ok"}
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert ready.status_code == 200, ready.text


@pytest.mark.slow
def test_readyz_answers_503_naming_the_database_when_it_is_unreachable():
    bad_database = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/gatehouse"}

    with uvicorn_server(env=bad_database) as base_url:
        response = httpx.get(f"{base_url}/readyz", timeout=10)
        health = httpx.get(f"{base_url}/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"]["database"] == {"ok": False, "vendor": "postgresql", "error": "unreachable"}
    assert "127.0.0.1:1" not in response.text
    assert health.status_code == 200  # liveness does not depend on the database

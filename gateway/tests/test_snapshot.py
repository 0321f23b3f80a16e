"""The gateway's in-process cache: one load per key however many callers, stale-while-revalidate, drops win."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from gateway.proxy import snapshot


class SlowSource:
    """A loader that counts its calls and, while ``gate`` is closed, blocks (as a slow database would)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.version = 1

    def __call__(self, key: str) -> str:
        self.calls.append(key)
        assert self.gate.wait(5)
        return f"{key}-v{self.version}"


async def settle() -> None:
    for _ in range(20):  # let sync_to_async hops and done-callbacks run
        await asyncio.sleep(0.01)


@pytest.fixture
def source() -> SlowSource:
    return SlowSource()


async def test_concurrent_misses_share_one_load(source):
    entries = snapshot._Entries(source, ttl=60)
    source.gate.clear()

    waiting = [asyncio.create_task(entries.get("k")) for _ in range(100)]
    await settle()
    source.gate.set()
    answers = await asyncio.gather(*waiting)

    assert answers == ["k-v1"] * 100
    assert source.calls == ["k"]


async def test_an_expired_entry_is_answered_while_one_refresh_runs(source, monkeypatch):
    entries = snapshot._Entries(source, ttl=60)
    assert await entries.get("k") == "k-v1"
    source.version, source.gate = 2, threading.Event()  # the refresh will block until we open the gate
    later = time.monotonic() + 61
    monkeypatch.setattr(snapshot, "time", SimpleNamespace(monotonic=lambda: later))  # not asyncio's clock

    stale = [await entries.get("k") for _ in range(50)]  # none of these waits for the database
    assert stale == ["k-v1"] * 50
    await settle()
    assert await entries.get("k") == "k-v1"  # still refreshing: still the old answer, still one refresh
    assert source.calls == ["k", "k"]  # one refresh, not fifty

    source.gate.set()
    await settle()
    assert await entries.get("k") == "k-v2"


async def test_a_key_dropped_during_its_load_is_not_kept(source):
    entries = snapshot._Entries(source, ttl=60)
    source.gate.clear()
    first = asyncio.create_task(entries.get("k"))
    await settle()

    entries.drop(["k"])  # e.g. revoked while the load read the row as it was before the commit
    source.gate.set()
    await first
    source.version = 2

    assert await entries.get("k") == "k-v2"
    assert source.calls == ["k", "k"]


async def test_a_dropped_entry_is_never_answered_stale(source):
    entries = snapshot._Entries(source, ttl=60)
    assert await entries.get("k") == "k-v1"
    source.version = 2

    entries.drop(["k"])

    assert await entries.get("k") == "k-v2"


async def test_a_failed_refresh_keeps_the_entry_and_is_tried_again(source, monkeypatch):
    entries = snapshot._Entries(source, ttl=60)
    assert await entries.get("k") == "k-v1"
    later = time.monotonic() + 61
    monkeypatch.setattr(snapshot, "time", SimpleNamespace(monotonic=lambda: later))  # not asyncio's clock

    def broken(key: str) -> str:
        source.calls.append(key)
        raise RuntimeError("database unavailable")

    entries._load = broken
    assert await entries.get("k") == "k-v1"
    await settle()
    entries._load, source.version = source, 2
    assert await entries.get("k") == "k-v1"  # the next caller starts another refresh
    await settle()

    assert await entries.get("k") == "k-v2"
    assert len(source.calls) == 3


async def test_a_miss_that_fails_raises_to_every_waiter(source):
    def broken(key: str) -> str:
        raise RuntimeError("database unavailable")

    entries = snapshot._Entries(broken, ttl=60)

    results = await asyncio.gather(entries.get("k"), entries.get("k"), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(entries) == 0

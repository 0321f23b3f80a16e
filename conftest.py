"""Test-wide guard rails and fixtures.

- No real network: sockets may connect only to loopback (and Unix sockets). A test that reaches further fails.
- The mock LLM upstream runs once per session on a free loopback port; its journal is cleared per test.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.mock_llm import MockLLMServer

# Shared fixtures: personas of two tenants (tenants), a small publisher/consumer market (subscriptions), the
# gateway in-process with a served market (gateway).
pytest_plugins = [
    "tenants.tests.fixtures",
    "subscriptions.tests.fixtures",
    "gateway.tests.fixtures",
    "analytics.tests.fixtures",
]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class RealNetworkAccessError(RuntimeError):
    pass


def _check_address(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = host == "localhost"
    if not is_loopback:
        raise RealNetworkAccessError(f"tests may only connect to loopback, not {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(self, address)
    return _real_connect_ex(self, address)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """PBKDF2's deliberate slowness (~0.2 s a password) would dominate tests that create many users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _close_connections_of_asgirefs_worker_thread(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Async tests reach the ORM through asgiref's single worker thread, whose connections outlive the tests;
    close them before pytest-django drops the test database (PostgreSQL refuses while they are open)."""
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    with django_db_blocker.unblock():
        asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture(scope="session")
def mock_llm_server() -> Iterator[MockLLMServer]:
    with MockLLMServer() as server:
        yield server


@pytest.fixture
def mock_llm(mock_llm_server: MockLLMServer) -> MockLLMServer:
    """The mock LLM upstream with an empty journal."""
    mock_llm_server.journal.clear()
    return mock_llm_server


@pytest.fixture(autouse=True)
def _redis_state_of_this_test(settings: Any) -> Iterator[None]:
    """Each test appends usage events to its own Redis stream, counts rate limits and caches answers under its own
    prefixes (when there is Redis; else in fresh local memory), so none sees another's."""
    import uuid

    from gateway.proxy.cache import CACHE
    from gateway.proxy.limits import LIMITER

    redis_url = settings.REDIS_URL  # as configured; a test may point REDIS_URL somewhere dead meanwhile
    settings.USAGE_STREAM = stream = f"test:usage:{uuid.uuid4().hex}"
    settings.RATE_LIMIT_PREFIX = limits = f"test:ratelimit:{uuid.uuid4().hex}"
    settings.RESPONSE_CACHE_PREFIX = cached = f"test:responses:{uuid.uuid4().hex}"
    LIMITER.reset_local()
    CACHE.clear_local()
    yield
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            client.delete(stream)
            for prefix in (limits, cached):
                for key in client.scan_iter(f"{prefix}:*"):
                    client.delete(key)
        finally:
            client.close()

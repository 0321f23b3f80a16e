"""The one door for outbound HTTP: provider calls, webhooks, anything that leaves Gatehouse.

- **Pooled**: one aiohttp session per process (keep-alive, a bounded connection pool).
- **Timeouts are mandatory**: every call has a connect and a total timeout (defaults, or the caller's).
- **SSRF guard**: targets must be public addresses. Private, loopback, link-local (cloud metadata at
  169.254.169.254), CGNAT, multicast and reserved ranges are refused — for IP literals before connecting, and
  for host names at DNS resolution (the connection then goes to the very address that was checked, so a DNS
  answer cannot change between check and use). Redirects are never followed, so a public endpoint cannot
  bounce a request inward. ``GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS`` lifts the guard (the demo's loopback mock).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=5, sock_connect=5)


class OutboundBlocked(Exception):
    """The target is not allowed (a private address, a bad scheme). The message is safe to show."""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse what can be refused from the URL alone: schemes, and private IP literals."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OutboundBlocked(f"Only http and https upstreams are allowed, not {parts.scheme or 'none'!r}.")
    if not parts.hostname:
        raise OutboundBlocked("The upstream URL has no host.")
    if allow_private:
        return
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # a name: checked when it resolves (GuardedResolver)
    if not is_public_address(parts.hostname):
        raise OutboundBlocked("Upstreams on private or loopback addresses are not allowed.")


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses the name if any of its addresses is not public."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if any(not is_public_address(r["host"]) for r in results):
            raise OutboundBlocked(f"{host} resolves to a private or loopback address; upstreams must be public.")
        return results

    async def close(self) -> None:
        await self._resolver.close()


class HttpClient:
    """A pooled client; create one per process (e.g. at ASGI start-up) and close it at shut-down."""

    def __init__(
        self, *, allow_private: bool, timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT, pool_size: int = 256
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _session_or_start(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.pool_size,
                ttl_dns_cache=60,
                resolver=None if self.allow_private else GuardedResolver(),
                enable_cleanup_closed=True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, auto_decompress=True, trust_env=False
            )
        return self._session

    @asynccontextmanager
    async def request(
        self, method: str, url: str, *, client_timeout: aiohttp.ClientTimeout | None = None, **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one request; use as ``async with client.request("POST", url, json=…) as response``.

        Raises OutboundBlocked for refused targets, aiohttp's errors for network trouble, TimeoutError on
        timeouts. Redirects are returned as they are (3xx), never followed.
        """
        check_url(url, allow_private=self.allow_private)
        session = self._session_or_start()
        async with session.request(
            method, url, allow_redirects=False, timeout=client_timeout or self.timeout, **kwargs
        ) as response:
            yield response

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# --- the same door for libraries that speak httpx (litellm) --------------------------------------------------

_HOP_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection"})


class _DoorStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, exit_stack: AsyncExitStack) -> None:
        self._response, self._exit_stack = response, exit_stack

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError:
            raise httpx.ReadTimeout("The upstream stopped sending.") from None
        except aiohttp.ClientError as error:
            raise httpx.ReadError(f"The upstream connection broke: {type(error).__name__}.") from None

    async def aclose(self) -> None:
        await self._exit_stack.aclose()


class DoorTransport(httpx.AsyncBaseTransport):
    """An httpx transport over ``HttpClient``: what litellm sends goes through the same pool, timeouts and SSRF
    guard as everything else (``litellm.acompletion(client=AsyncHTTPHandler(transport=DoorTransport(door)))``).

    Bodies arrive already decompressed by aiohttp, so content-encoding / length headers are not passed on.
    """

    def __init__(self, door: HttpClient) -> None:
        self.door = door

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        client_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("connect") or DEFAULT_TIMEOUT.connect,
            sock_read=timeouts.get("read") or DEFAULT_TIMEOUT.total,
        )
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in ("host", "content-length")]
        stack = AsyncExitStack()
        try:
            response = await stack.enter_async_context(
                self.door.request(
                    request.method, str(request.url), data=await request.aread(), headers=headers,
                    client_timeout=client_timeout,
                )
            )  # fmt: skip
        except OutboundBlocked as error:
            await stack.aclose()
            raise httpx.ConnectError(str(error), request=request) from None
        except TimeoutError:
            await stack.aclose()
            raise httpx.ConnectTimeout("The upstream did not answer in time.", request=request) from None
        except aiohttp.ClientError as error:
            await stack.aclose()
            raise httpx.ConnectError(
                f"Could not reach the upstream: {type(error).__name__}.", request=request
            ) from None
        return httpx.Response(
            response.status,
            headers=[(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS],
            stream=_DoorStream(response, stack),
            request=request,
        )

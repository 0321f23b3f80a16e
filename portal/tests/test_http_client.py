"""The outbound door: timeouts always apply, private targets are refused (by literal, by DNS, by redirect)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from portal.http_client import GuardedResolver, HttpClient, OutboundBlocked, check_url, is_public_address


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fc00::1", "::ffff:127.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_recognised(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses_pass(address):
    assert is_public_address(address)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9100/v1", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://10.0.0.5/",
     "http://[::ffff:127.0.0.1]/", "file:///etc/passwd", "gopher://example.test/"],
)  # fmt: skip
def test_private_literals_and_odd_schemes_are_refused_before_connecting(url):
    with pytest.raises(OutboundBlocked):
        check_url(url, allow_private=False)


async def test_a_name_resolving_to_loopback_is_refused_at_resolution():
    with pytest.raises(OutboundBlocked, match="localhost resolves to a private"):
        await GuardedResolver().resolve("localhost", 80)


async def test_the_client_refuses_private_targets_when_not_allowed(mock_llm):
    client = HttpClient(allow_private=False)
    try:
        for url in (f"{mock_llm.url}/v1/models", f"http://localhost:{mock_llm.port}/v1/models"):
            with pytest.raises(OutboundBlocked):
                async with client.request("GET", url):
                    pass
    finally:
        await client.close()
    assert list(mock_llm.journal) == []  # nothing reached the server


async def test_the_client_reaches_private_targets_when_allowed(mock_llm):
    client = HttpClient(allow_private=True)
    try:
        async with client.request("GET", f"http://localhost:{mock_llm.port}/v1/models") as response:
            body = await response.json()
    finally:
        await client.close()
    assert response.status == 200
    assert body["object"] == "list"


async def test_redirects_are_not_followed(mock_llm, aiohttp_redirect_server):
    client = HttpClient(allow_private=True)
    try:
        async with client.request("GET", aiohttp_redirect_server) as response:
            status, location = response.status, response.headers["location"]
    finally:
        await client.close()
    assert status == 302
    assert location == "http://169.254.169.254/latest/meta-data/"


async def test_timeouts_always_apply(mock_llm):
    client = HttpClient(allow_private=True, timeout=aiohttp.ClientTimeout(total=0.3, connect=0.3))
    started = time.monotonic()
    try:
        with pytest.raises(asyncio.TimeoutError):
            async with client.request(
                "POST",
                f"{mock_llm.url}/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                headers={"x-mock-fail": "timeout"},
            ):
                pass
    finally:
        await client.close()
    assert time.monotonic() - started < 2


@pytest.fixture
async def aiohttp_redirect_server():
    from aiohttp import web

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_get("/", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()

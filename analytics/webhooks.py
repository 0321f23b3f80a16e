"""Alert webhooks: a signed JSON body, sent through the one outbound door (pooled, timeouts, SSRF guard).

Signature (what receivers verify, the same scheme as Stripe's): the header
``Gatehouse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the rule's secret>``.
A receiver recomputes the HMAC over the raw bytes it received, compares in constant time, and refuses
timestamps older than a few minutes (replays). ``verify`` does exactly that and is what our tests use.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from django.conf import settings

from portal.http_client import HttpClient, OutboundBlocked

SIGNATURE_HEADER = "Gatehouse-Signature"
TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5, sock_connect=5)
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is no older than TOLERANCE_SECONDS."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool  # worth trying again (5xx, 429, network trouble) — a refused target or a 4xx is not
    error: str = ""  # safe to show: a status or a kind of failure, never a body or a secret


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


async def _post(url: str, secret: str, payload: dict[str, Any]) -> Outcome:
    body = body_of(payload)
    headers = {
        "content-type": "application/json",
        "user-agent": "Gatehouse-Webhooks/1",
        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        "Gatehouse-Event-Id": str(payload.get("id", "")),
    }
    door = HttpClient(allow_private=settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS, timeout=TIMEOUT, pool_size=4)
    try:
        async with door.request("POST", url, data=body, headers=headers) as response:
            status = response.status
    except OutboundBlocked as refused:
        return Outcome(delivered=False, retry=False, error=f"refused: {refused}")
    except TimeoutError:
        return Outcome(delivered=False, retry=True, error="timed out")
    except aiohttp.ClientError as trouble:
        return Outcome(delivered=False, retry=True, error=f"network error ({type(trouble).__name__})")
    finally:
        await door.close()
    if 200 <= status < 300:
        return Outcome(delivered=True, retry=False)
    return Outcome(delivered=False, retry=status >= 500 or status in (408, 429), error=f"HTTP {status}")


def post(url: str, secret: str, payload: dict[str, Any]) -> Outcome:
    """Send one webhook from sync code (a Celery task): its own loop, its own short-lived door."""
    return asyncio.run(_post(url, secret, payload))

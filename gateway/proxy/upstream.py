"""Calls to OpenAI-compatible upstreams through the one HTTP door (portal/http_client.py).

The client's JSON goes out as it came, with ``model`` set to the deployment's model and the provider's own
credentials; nothing of the client's headers is forwarded. Upstream failures become GatewayErrors with the
status OpenAI's SDK expects, and never carry upstream bodies or secrets back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from gateway.proxy.errors import GatewayError
from gateway.proxy.snapshot import Target
from portal.http_client import HttpClient, OutboundBlocked

OPENAI_BASE = "https://api.openai.com/v1"
PASS_THROUGH_KINDS = {"openai", "openai_compatible"}


def upstream_url(target: Target, path: str) -> str:
    return f"{(target.api_base or OPENAI_BASE).rstrip('/')}{path}"


def failure_for_status(status: int, retry_after: str | None) -> GatewayError:
    if status == 429:
        return GatewayError(
            429,
            "The model is busy (the provider is rate limiting). Retry after a short wait.",
            type_="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": retry_after or "1"},
        )
    if status in (401, 403):
        return GatewayError(
            502, "The provider refused Gatehouse's credentials.", type_="api_error", code="upstream_auth"
        )
    if status == 400:
        return GatewayError(400, "The provider rejected the request as invalid.", code="upstream_invalid_request")
    return GatewayError(502, f"The provider failed (HTTP {status}).", type_="api_error", code="upstream_error")


@asynccontextmanager
async def post(
    client: HttpClient, target: Target, path: str, body: dict[str, Any]
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST to the upstream; yields a successful response, raises GatewayError for everything else."""
    payload = json.dumps({**body, "model": target.model}).encode()
    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    timeout = aiohttp.ClientTimeout(total=target.timeout_seconds, connect=min(5, target.timeout_seconds))
    try:
        async with client.request(
            "POST", upstream_url(target, path), data=payload, headers=headers, client_timeout=timeout
        ) as response:
            if response.status >= 300:
                raise failure_for_status(response.status, response.headers.get("retry-after"))
            yield response
    except GatewayError:
        raise
    except OutboundBlocked:
        raise GatewayError(
            502, "The deployment's upstream address is not allowed.", type_="api_error", code="upstream_blocked"
        ) from None
    except TimeoutError:
        raise GatewayError(
            504, "The provider did not answer in time.", type_="api_error", code="upstream_timeout"
        ) from None
    except aiohttp.ClientError:
        raise GatewayError(
            502, "Could not reach the provider.", type_="api_error", code="upstream_unreachable"
        ) from None

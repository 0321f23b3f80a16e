"""The gateway's ASGI app for /v1/… — auth → model grant → route → upstream → respond.

No Django request machinery, no ORM once warm (snapshot.py), no thread hop: a proxied call costs one HMAC, a
few dict lookups and the upstream round trip through one pooled HTTP client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from django.conf import settings

from gateway.proxy import routing, upstream
from gateway.proxy.errors import GatewayError, bad_request, invalid_key
from gateway.proxy.snapshot import AccessCache, Target
from portal import events
from portal.http_client import HttpClient
from portal.middleware import request_id_for
from subscriptions import keys
from subscriptions.selectors import ApiGrant, KeyAccess

logger = logging.getLogger("gatehouse.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 10 * 1024 * 1024
# Fields that would steer litellm or the upstream (where to send, with which credentials, what to fake).
STEERING_FIELDS = frozenset(
    {
        "api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "extra_headers", "headers",
        "mock_response", "litellm_params", "litellm_metadata", "litellm_logging_obj", "input_cost_per_token",
        "output_cost_per_token", "fallbacks", "caching", "timeout", "num_retries", "organization", "deployment_id",
    }
)  # fmt: skip

CACHE = AccessCache()
BREAKERS = routing.Breakers()
events.listen(events.ACCESS_CHANNEL, CACHE.invalidate)  # in-process events (embedded mode, and this process)
_client: HttpClient | None = None


def client() -> HttpClient:
    global _client
    if _client is None:
        _client = HttpClient(allow_private=settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS)
    return _client


async def close() -> None:
    global _client
    if _client is not None:
        await _client.close()
        _client = None


# --- request parts -------------------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _api_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return headers.get("api-key") or headers.get("x-api-key")


async def _read_json(receive: Receive) -> dict[str, Any]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "The client went away.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise GatewayError(413, "The request body is larger than 10 MB.", code="request_too_large")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except ValueError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    steering = sorted(STEERING_FIELDS & body.keys())
    if steering:
        raise bad_request(f"These fields cannot be set by clients: {', '.join(steering)}.", param=steering[0])
    return body


async def _authenticate(headers: dict[str, str], scope: Scope) -> KeyAccess:
    raw = _api_key(headers)
    parsed = keys.parse(raw) if raw else None
    if parsed is None:  # missing, malformed or mistyped: answered without any lookup
        raise invalid_key()
    access = await CACHE.key(parsed.public_id)
    if access is None or not keys.digest_matches(parsed.secret, access.digest):
        raise invalid_key()
    if not access.is_usable(datetime.now(UTC)):
        raise GatewayError(401, "This API key has expired or was rotated out.", code="invalid_api_key")
    if access.ip_allowlist:
        client_ip = (scope.get("client") or ("",))[0]
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            address = None
        if address is None or not any(address in ipaddress.ip_network(n) for n in access.ip_allowlist):
            raise GatewayError(
                403, "This API key may not be used from this address.", type_="permission_denied", code="ip_not_allowed"
            )
    return access


def _grant(access: KeyAccess, body: dict[str, Any], kind: str) -> ApiGrant:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("You must provide a model parameter.", param="model")
    grant = access.grant_for_model(model)
    if grant is None:
        successor = next((g.successor_of(model) for g in access.grants if g.successor_of(model)), None)
        if successor:
            raise GatewayError(
                410,
                f"The model `{model}` was retired. Use `{successor}` instead.",
                code="model_retired",
                param="model",
            )
    if grant is None or grant.kind != kind:
        raise GatewayError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    return grant


# --- responses -----------------------------------------------------------------------------------------------


def _response_headers(
    request_id: str, content_type: bytes, extra: dict[str, str] | None = None
) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", content_type),
        (b"x-request-id", request_id.encode()),
        (b"cache-control", b"no-store"),
    ]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    return headers


async def _send_json(
    send: Send, status: int, body: bytes, request_id: str, extra: dict[str, str] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _response_headers(request_id, b"application/json", extra),
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- endpoints -----------------------------------------------------------------------------------------------


async def _models(access: KeyAccess, send: Send, request_id: str) -> None:
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": grant.publisher_slug}
        for grant in access.grants
        if grant.kind in ("chat", "embeddings")
        for model in grant.models
    ]
    await _send_json(send, 200, json.dumps({"object": "list", "data": data}).encode(), request_id)


async def _proxy(path: str, kind: str, access: KeyAccess, body: dict[str, Any], send: Send, request_id: str) -> None:
    grant = _grant(access, body, kind)
    planned = routing.plan(await CACHE.targets(grant.api_id, body["model"]), sticky=access.public_id)
    planned = [t for t in planned if t.kind in upstream.PASS_THROUGH_KINDS]
    if not planned:
        raise GatewayError(503, "No deployment serves this model right now.", type_="api_error", code="no_deployment")
    now = time.monotonic()
    targets = [t for t in planned if BREAKERS.allows(t.deployment_id, now)]
    if not targets:
        wait = BREAKERS.retry_after([t.deployment_id for t in planned], now)
        raise GatewayError(
            503,
            "Every deployment of this model is failing; Gatehouse is giving them a moment.",
            type_="api_error",
            code="upstream_unavailable",
            headers={"retry-after": str(wait)},
        )
    deprecated, sunset = grant.sunset_of(body["model"])
    notice = _deprecation_headers(sunset) if deprecated else {}
    attempt, index = 0, 0
    while True:
        attempt += 1
        target = targets[index]
        try:
            await _call(path, target, body, send, request_id, notice)
        except GatewayError as error:
            # _call raises only before the first byte reaches the client, so trying again is still safe.
            if not routing.is_retriable(error):
                raise
            BREAKERS.failed(target.deployment_id, time.monotonic())
            if attempt >= routing.MAX_ATTEMPTS:
                raise
            if index + 1 < len(targets):
                index += 1
            else:
                await asyncio.sleep(routing.backoff_seconds(error, attempt))
            logger.info("deployment %s failed with %s; trying again (request %s)", target.name, error.code, request_id)
        else:
            BREAKERS.succeeded(target.deployment_id)
            return


def _deprecation_headers(sunset: datetime | None) -> dict[str, str]:
    """RFC 9745 ``deprecation`` (since now, as a structured date) and RFC 8594 ``sunset`` (an HTTP date)."""
    headers = {"deprecation": f"@{int(datetime.now(UTC).timestamp())}"}
    if sunset is not None:
        headers["sunset"] = format_datetime(sunset.astimezone(UTC), usegmt=True)
    return headers


async def _call(
    path: str, target: Target, body: dict[str, Any], send: Send, request_id: str, extra: dict[str, str]
) -> None:
    if body.get("stream") is not True:
        async with upstream.post(client(), target, path, body) as response:
            raw = await response.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise GatewayError(
                502, "The provider sent an unreadable answer.", type_="api_error", code="upstream_bad_response"
            ) from None
        if isinstance(answer, dict):
            answer["model"] = body["model"]  # the alias the client asked for, not the deployment's model
        await _send_json(send, 200, json.dumps(answer).encode(), request_id, extra)
        return

    async with upstream.post(client(), target, path, body) as response:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": _response_headers(request_id, b"text/event-stream", extra),
            }
        )
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except Exception:  # after the first byte, no status can change: end the stream, never retry
            logger.warning("stream from deployment %s broke off (request %s)", target.name, request_id)
        await send({"type": "http.response.body", "body": b""})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    headers = _headers(scope)
    request_id = request_id_for(headers.get("x-request-id"))
    method, path = scope["method"], scope["path"]
    started = False

    async def tracking_send(message: MutableMapping[str, Any]) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        if (method, path) == ("GET", "/v1/models"):
            await _models(await _authenticate(headers, scope), tracking_send, request_id)
        elif (method, path) == ("POST", "/v1/chat/completions"):
            access = await _authenticate(headers, scope)
            body = await _read_json(receive)
            if not isinstance(body.get("messages"), list) or not body["messages"]:
                raise bad_request("'messages' must be a non-empty list.", param="messages")
            await _proxy("/chat/completions", "chat", access, body, tracking_send, request_id)
        elif (method, path) == ("POST", "/v1/embeddings"):
            access = await _authenticate(headers, scope)
            body = await _read_json(receive)
            if "input" not in body:
                raise bad_request("You must provide an input parameter.", param="input")
            await _proxy("/embeddings", "embeddings", access, body, tracking_send, request_id)
        elif path in ("/v1/models", "/v1/chat/completions", "/v1/embeddings"):
            raise GatewayError(405, f"{method} is not allowed here.", code="method_not_allowed")
        else:
            raise GatewayError(404, f"Unknown path {path}.", code="unknown_url")
    except GatewayError as error:
        if not started:
            await _send_json(send, error.status, error.body(), request_id, error.headers)
    except Exception:
        logger.exception("gateway failure (request %s)", request_id)
        if not started:
            failure = GatewayError(
                500, "Gatehouse failed on its side; the request id helps us find out why.", type_="api_error"
            )
            await _send_json(send, 500, failure.body(), request_id)

"""Chat calls to providers that do not speak OpenAI's format (Anthropic, Bedrock, Gemini…), through litellm.

litellm turns the OpenAI-shaped request into the provider's and the answer back; its HTTP goes out through the
one door (``DoorTransport``: same pool, timeouts and SSRF guard as the pass-through path). This costs ~2.4 ms of
CPU per call, which is why OpenAI-compatible upstreams skip it (upstream.py) — see ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import litellm
from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

from gateway.proxy.errors import GatewayError
from gateway.proxy.snapshot import Target
from gateway.proxy.upstream import failure_for_status
from portal.http_client import DoorTransport, HttpClient, OutboundBlocked, check_url

litellm.suppress_debug_info = True
litellm.drop_params = True  # an OpenAI parameter the provider lacks is dropped, not an error

# What an OpenAI chat request may carry on to another provider (steering fields are refused before this).
CHAT_PARAMS = frozenset(
    {
        "messages", "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
        "frequency_penalty", "logit_bias", "user", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "seed", "logprobs", "top_logprobs", "reasoning_effort",
    }
)  # fmt: skip
_handlers: dict[int, AsyncHTTPHandler] = {}


def _handler(door: HttpClient) -> AsyncHTTPHandler:
    handler = _handlers.get(id(door))
    if handler is None:
        _handlers.clear()  # one door per process; a new one (tests) replaces the old
        handler = _handlers[id(door)] = AsyncHTTPHandler(transport=DoorTransport(door), follow_redirects=False)
    return handler


def as_gateway_error(error: Exception) -> GatewayError:
    """Any failure of a provider call (litellm's exceptions, or the network's) as the client should see it."""
    if isinstance(error, GatewayError):
        return error
    if isinstance(error, litellm.Timeout | TimeoutError):
        return GatewayError(504, "The provider did not answer in time.", type_="api_error", code="upstream_timeout")
    if isinstance(error, litellm.APIConnectionError | aiohttp.ClientError):
        return GatewayError(502, "Could not reach the provider.", type_="api_error", code="upstream_unreachable")
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and status >= 400:
        headers = getattr(getattr(error, "response", None), "headers", None) or {}
        return failure_for_status(status, headers.get("retry-after"))
    return GatewayError(502, "The provider failed.", type_="api_error", code="upstream_error")


async def chat(
    door: HttpClient, target: Target, body: dict[str, Any]
) -> dict[str, Any] | AsyncIterator[dict[str, Any]]:
    """One chat completion: the OpenAI-shaped answer, or (``stream``) its OpenAI-shaped chunks.

    Raises GatewayError before anything was produced; a stream that breaks later just ends.
    """
    if target.api_base:
        try:
            check_url(target.api_base, allow_private=door.allow_private)
        except OutboundBlocked:
            raise GatewayError(
                502, "The deployment's upstream address is not allowed.", type_="api_error", code="upstream_blocked"
            ) from None
    stream = body.get("stream") is True
    params = {k: v for k, v in body.items() if k in CHAT_PARAMS}
    try:
        response = await litellm.acompletion(
            model=f"{target.kind}/{target.model}",
            api_base=target.api_base or None,
            api_key=target.api_key or None,
            timeout=target.timeout_seconds,
            num_retries=0,  # Gatehouse retries and falls back itself (routing.py)
            client=_handler(door),
            stream=stream,
            stream_options={"include_usage": True} if stream else None,
            **params,
        )
    except Exception as error:  # every provider failure becomes an OpenAI-shaped error
        raise as_gateway_error(error) from None
    if not stream:
        return response.model_dump(exclude_none=True)
    return _chunks(response)


async def _chunks(stream: Any) -> AsyncIterator[dict[str, Any]]:
    async for chunk in stream:
        yield chunk.model_dump(exclude_none=True)

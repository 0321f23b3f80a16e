"""The gateway's ASGI app for /v1/… — auth → grant → route → upstream → respond → record.

No Django request machinery, no ORM once warm (snapshot.py), no thread hop: a proxied call costs one HMAC, a
few dict lookups, the upstream round trip through one pooled HTTP client, and an append to the usage buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from django.conf import settings

from gateway import prompts
from gateway.policies import EffectivePolicy, InjectionRules, OutputFilter
from gateway.proxy import budgets, cache, injection, limits, pii, routing, translate, upstream, usage
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
# A prompt API call names its variables; these OpenAI parameters may ride along.
PROMPT_FIELDS = frozenset(
    {"variables", "stream", "stream_options", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed",
     "user"}
)  # fmt: skip
PROMPT_PATH = re.compile(r"^/v1/apis/([a-z0-9-]{1,50})/([a-z0-9_-]{1,50})(?:/(v[0-9]{1,3}(?:\.[0-9]{1,3})?))?/?$")

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
    """ASGI lifespan shutdown: ship the buffered usage events, close the upstream pool."""
    global _client
    await usage.RECORDER.close()
    await limits.LIMITER.close()
    await cache.CACHE.close()
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


async def _authenticate(headers: dict[str, str], scope: Scope, record: usage.CallRecord | None) -> KeyAccess:
    raw = _api_key(headers)
    parsed = keys.parse(raw) if raw else None
    if parsed is None:  # missing, malformed or mistyped: answered without any lookup
        raise invalid_key()
    access = await CACHE.key(parsed.public_id)
    if access is None or not keys.digest_matches(parsed.secret, access.digest):
        raise invalid_key()
    if record is not None:  # from here on the call is the consumer's, failed or not: it goes in their log
        record.tenant_id = access.consumer_tenant_id
        record.application_id, record.application_slug = access.application_id, access.application_slug
        record.key_public_id = access.public_id
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


def _subscription_required(label: str, what: str) -> GatewayError:
    return GatewayError(
        403,
        f"{what} is served by {label}, and this key's application has no approved subscription to it (or the key is"
        " limited to other APIs). Subscribe to it in the developer portal.",
        type_="permission_denied",
        code="subscription_required",
    )


async def _grant(access: KeyAccess, model: Any, kind: str) -> ApiGrant:
    if not isinstance(model, str) or not model:
        raise bad_request("You must provide a model parameter.", param="model")
    grant = access.grant_for_model(model)
    if grant is not None and grant.kind == kind:
        return grant
    # The unhappy path: say why, as precisely as the key may know.
    if grant is not None:
        other = "/v1/embeddings" if grant.kind == "embeddings" else "/v1/chat/completions"
        article = "an embeddings" if grant.kind == "embeddings" else "a chat"
        raise bad_request(f"`{model}` is {article} model; call {other}.", param="model")
    successor = next((g.successor_of(model) for g in access.grants if g.successor_of(model)), None)
    if successor:
        raise GatewayError(
            410, f"The model `{model}` was retired. Use `{successor}` instead.", code="model_retired", param="model"
        )
    catalog = await CACHE.catalog()
    for entry in catalog.visible(catalog.models.get(model, ()), access.consumer_tenant_id):
        subscribed = access.grant_for_api(entry.api_id)
        if subscribed is not None:
            raise GatewayError(
                403,
                f"Your plan `{subscribed.plan_slug}` for {entry.label} does not include the model `{model}`.",
                type_="permission_denied",
                code="model_not_in_plan",
                param="model",
            )
        raise _subscription_required(entry.label, f"The model `{model}`")
    raise GatewayError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


async def _prompt_grant(access: KeyAccess, publisher: str, api_slug: str) -> ApiGrant:
    grant = next(
        (g for g in access.grants if g.kind == "prompt" and (g.publisher_slug, g.api_slug) == (publisher, api_slug)),
        None,
    )
    if grant is not None:
        return grant
    catalog = await CACHE.catalog()
    entry = catalog.prompt_apis.get((publisher, api_slug))
    if entry is not None and catalog.visible((entry,), access.consumer_tenant_id):
        raise _subscription_required(entry.label, "This prompt API")
    raise GatewayError(404, f"There is no prompt API {publisher}/{api_slug}.", code="api_not_found")


def _bind_grant(record: usage.CallRecord, grant: ApiGrant) -> None:
    record.publisher_id, record.subscription_id = grant.publisher_id, grant.subscription_id
    record.api_id, record.api_label = grant.api_id, f"{grant.publisher_slug}/{grant.api_slug}"


async def _admit(exchange: Exchange, candidates: list[Target], start: int, takes: list[limits.Take]) -> int:
    """Take the call's limits together with those of the first deployment (from ``start``) that has room, in one
    round trip per deployment tried (one, unless deployments are full). Returns that deployment's index.

    The call's own limits refuse with 429 naming them; a full deployment is passed over for the next (nothing
    was consumed: the script is all-or-nothing); when every deployment is full, 429 as the provider would.
    """
    waits: list[int] = []
    for index in range(start, len(candidates)):
        target = candidates[index]
        asked = takes + limits.takes_for(target.limits, exchange.body)
        if not asked:
            return index
        decision = await limits.LIMITER.take(asked)
        if decision.allowed:
            if exchange.admitted is None:  # the way in: the second tokens are counted in, the consumer's headers
                exchange.admitted = decision
                exchange.notice |= decision.headers()
            return index
        blocked = decision.blocked_by
        if decision.unavailable or not isinstance(blocked, limits.Limit) or blocked.scope != "deployment":
            raise _refusal(decision)
        waits.append(decision.retry_after)
    raise GatewayError(
        429,
        f"Every deployment serving `{exchange.alias}` is at its capacity right now. Try again shortly.",
        type_="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": str(max(1, min(waits, default=1)))},
    )


def _refusal(decision: limits.Decision) -> GatewayError:
    """The error for a call its own limits or quotas refused (a full deployment is passed over instead)."""
    if decision.unavailable:
        return GatewayError(
            503,
            "Gatehouse cannot check this call's quota right now, and does not spend without checking. Try again"
            " shortly.",
            type_="api_error",
            code="quota_unavailable",
            headers={"retry-after": "1"},
        )
    if isinstance(decision.blocked_by, limits.PeriodQuota):
        return _quota_exhausted(decision)
    metric = decision.blocked_by.metric if decision.blocked_by else "requests"
    return GatewayError(
        429, limits.retry_after_message(decision), type_=metric, code="rate_limit_exceeded", headers=decision.headers()
    )


def _quota_exhausted(decision: limits.Decision) -> GatewayError:
    quota = decision.blocked_by
    assert isinstance(quota, limits.PeriodQuota)
    q = quota.quota
    amount = q.amount
    where = f" (set by {q.source})" if q.source else ""
    if decision.retry_after == 0:
        message = (
            f"This request's worst case (its prompt and max_tokens) is larger than the whole {q.scope} quota of"
            f" {amount} per {q.period}{where}. Ask for fewer tokens."
        )
    else:
        message = (
            f"You exceeded the {q.scope} quota of {amount} per {q.period}{where}. It renews in"
            f" {_duration(decision.retry_after)}; ask for more in the developer portal."
        )
    headers = {"retry-after": str(decision.retry_after)} if decision.retry_after else {}
    return GatewayError(429, message, type_="insufficient_quota", code="insufficient_quota", headers=headers)


def _duration(seconds: int) -> str:
    if seconds >= 86_400:
        return f"{seconds // 86_400} d {seconds % 86_400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{max(1, seconds // 60)} min"


def _count_tokens(exchange: Exchange, policy: EffectivePolicy) -> None:
    """After the call: its real tokens count against the tokens-per-minute limits it was admitted under."""
    record = exchange.record
    used = record.prompt_tokens + record.completion_tokens
    if not used or exchange.admitted is None:
        return
    counted = [limit for limit in policy.limits if limit.metric == "tokens"]
    if exchange.target is not None:
        counted += [limit for limit in exchange.target.limits if limit.metric == "tokens"]
    if counted:
        limits.LIMITER.add([(limit, used) for limit in counted], exchange.admitted.second)


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


def _deprecation_headers(sunset: datetime | None) -> dict[str, str]:
    """RFC 9745 ``deprecation`` (since now, as a structured date) and RFC 8594 ``sunset`` (an HTTP date)."""
    headers = {"deprecation": f"@{int(datetime.now(UTC).timestamp())}"}
    if sunset is not None:
        headers["sunset"] = format_datetime(sunset.astimezone(UTC), usegmt=True)
    return headers


# --- endpoints -----------------------------------------------------------------------------------------------


async def _models(access: KeyAccess, send: Send, request_id: str) -> None:
    data = [
        {"id": model, "object": "model", "created": 0, "owned_by": grant.publisher_slug}
        for grant in access.grants
        if grant.kind in ("chat", "embeddings")
        for model in grant.models
    ]
    await _send_json(send, 200, json.dumps({"object": "list", "data": data}).encode(), request_id)


class Exchange:
    """One proxied call on its way: where it goes, what was sent back, what it cost."""

    def __init__(
        self,
        path: str,
        body: dict[str, Any],
        alias: str,
        send: Send,
        receive: Receive,
        request_id: str,
        record: usage.CallRecord,
        notice: dict[str, str],
    ) -> None:
        self.path, self.body, self.alias, self.send, self.receive = path, body, alias, send, receive
        self.request_id, self.record, self.notice = request_id, record, notice
        self.stream = body.get("stream") is True
        self.client_wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.deltas = 0  # content chunks streamed: the completion estimate when no usage arrives
        self.admitted: limits.Decision | None = None  # the rate-limit decision that let the call through
        self.target: Target | None = None  # the deployment being (or last) tried
        self.reservation: budgets.Reservation | None = None  # what the call holds from its quotas
        self.metered = False  # a stream whose tokens are counted as they pass (a tokens or cost quota applies)
        self.no_cache = False  # the client sent cache-control: no-cache
        self.cache_key: str | None = None  # where its answer is cached (when a policy caches it)
        self.cache_ttl = 0
        self.output: OutputFilter | None = None  # what its answer may not contain
        self.scrubber: pii.Scrubber | None = None  # PII rules applied to this call (and its placeholders)
        self.restorer: pii.StreamRestorer | None = None  # puts originals back into a stream


async def _route(exchange: Exchange, targets: tuple[Target, ...], sticky: str, grant: ApiGrant) -> None:
    """The call's policies in order — access rules, injection guard, PII, cache, reservation — then its
    deployments (admission takes the rate limits and the reservation in one round trip); whatever happens, its
    tokens are counted and its reservation settled."""
    policy = grant.policy_for(exchange.alias)
    targets = _admissible(exchange, policy, targets)
    exchange.output = policy.output
    if policy.injection is not None:
        await _guard(exchange, policy.injection)
    if policy.pii:
        _scrub(exchange, policy)
    if policy.payload_days:  # the request as the provider will see it; masked for the log at the end
        exchange.record.payload_days, exchange.record.payload_request = policy.payload_days, exchange.body
    if await _served_from_cache(exchange, policy, grant.api_id):
        return
    takes = _reserve(exchange, policy, targets)
    try:
        await _try_deployments(exchange, targets, sticky, takes)
    finally:
        _count_tokens(exchange, policy)
        _settle(exchange)


async def _served_from_cache(exchange: Exchange, policy: EffectivePolicy, api_id: int) -> bool:
    """When a policy caches this (deterministic) request: answer it from the cache if it is there."""
    if policy.cache_ttl is None or not cache.is_deterministic(exchange.path, exchange.body):
        return False
    tenant = exchange.record.tenant_id or 0
    exchange.cache_key = cache.key_for(tenant, api_id, exchange.alias, exchange.path, exchange.body)
    exchange.cache_ttl = policy.cache_ttl
    cached = None if exchange.no_cache else await cache.CACHE.get(exchange.cache_key)
    if cached is None:
        exchange.notice["x-gatehouse-cache"] = "miss"
        return False
    await _answer_from_cache(exchange, policy, cached)
    return True


def _reserve(exchange: Exchange, policy: EffectivePolicy, targets: tuple[Target, ...]) -> list[limits.Take]:
    """What admission must take: the rate limits, and the worst case of the call from its quotas."""
    completes = exchange.path == "/chat/completions"
    if completes:
        budgets.requested_max_tokens(exchange.body)  # a nonsensical max_tokens is a 400 for everyone
    reservation = exchange.reservation = budgets.reservation_for(policy, exchange.body, targets, completes=completes)
    takes = limits.takes_for(policy.limits, exchange.body)
    if reservation is not None:
        takes += reservation.takes()
        exchange.metered = exchange.stream and policy.spends
        if completes and policy.spends and not exchange.stream and budgets.requested_max_tokens(exchange.body) is None:
            exchange.body = {**exchange.body, "max_tokens": reservation.completion_tokens}  # capped where paid up to
    return takes


LARGE_BODY_CHARS = 256_000  # inspected in a worker thread, so a 2 MB body does not hold up other calls


async def _guard(exchange: Exchange, rules: InjectionRules) -> None:
    """The prompt-injection guard on every message of the request, whatever its size."""
    texts = injection.request_texts(exchange.body)
    if sum(len(text) for _, text in texts) < LARGE_BODY_CHARS:
        finding = injection.inspect(texts, rules.threshold)
    else:
        finding = await asyncio.to_thread(injection.inspect, texts, rules.threshold)
    if finding is None:
        return
    exchange.record.decisions.append(f"prompt_injection:{finding.detector}:{rules.action}")
    if rules.action == "block":
        raise GatewayError(
            400,
            f"This request looks like a prompt injection ({finding.detector.replace('_', ' ')} in {finding.where})"
            f" and was refused (set by {rules.source}).",
            code="prompt_injection_detected",
            param=finding.where.split("[")[0],
        )
    exchange.notice["x-gatehouse-flagged"] = "prompt-injection"
    logger.warning(
        "prompt injection flagged: %s in %s (request %s)", finding.detector, finding.where, exchange.request_id
    )


@functools.lru_cache(maxsize=4096)
def _pseudonym_key(tenant_id: int) -> bytes:
    """A tenant's key for PII placeholders: the same value gets the same placeholder within one tenant only."""
    return hmac.new(settings.SECRET_KEY.encode(), f"gatehouse-pii:{tenant_id}".encode(), hashlib.sha256).digest()


def _scrub(exchange: Exchange, policy: EffectivePolicy) -> None:
    """PII rules on the request: what the provider will see (the client's body is not changed)."""
    scrubber = exchange.scrubber = pii.Scrubber(policy.pii, _pseudonym_key(exchange.record.tenant_id or 0))
    try:
        exchange.body = scrubber.request(exchange.body)
    except pii.PiiBlocked as blocked:  # names the kind of data and where, never the data
        raise GatewayError(
            400,
            f"The request contains {blocked.label} in {blocked.where}, which is not allowed here"
            f" (set by {policy.pii.source}).",
            code="pii_detected",
            param=blocked.where.split("[")[0].split(".")[0],
        ) from None
    if exchange.stream:
        exchange.restorer = pii.StreamRestorer(scrubber)


def _restore_chunk(restorer: pii.StreamRestorer, data: dict[str, Any]) -> None:
    """Originals back into a streamed chunk's text (what could be the start of a placeholder waits a chunk)."""
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        index = choice.get("index", 0)
        text = delta.get("content")
        restored = restorer.feed(index, text) if isinstance(text, str) else ""
        if choice.get("finish_reason"):
            restored += restorer.flush(index)
        if isinstance(text, str) or restored:
            delta["content"] = restored


def _screen_chunk(exchange: Exchange, output: OutputFilter, data: dict[str, Any]) -> bool:
    """The output filter on one streamed chunk (in place): masks what it finds, or returns True when the rest
    of the stream must be withheld. Chunk by chunk: a term split across two chunks is not seen."""
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict) or not isinstance(delta.get("content"), str):
            continue
        hit, masked = injection.screen_text(delta["content"], output.deny_terms, output.secrets)
        if not hit:
            continue
        if f"output_filter:{output.action}" not in exchange.record.decisions:
            exchange.record.decisions.append(f"output_filter:{output.action}")
        if output.action == "block":
            return True
        delta["content"] = masked
    return False


def _withheld(exchange: Exchange, data: dict[str, Any]) -> bytes:
    """The end of a stream the output filter stopped: a final chunk as OpenAI's content filter sends it."""
    final = {**data, "model": exchange.alias, "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]}
    final.pop("usage", None)
    _estimate_usage(exchange)
    return b"data: " + json.dumps(final, separators=(",", ":")).encode() + b"\n\ndata: [DONE]\n\n"


async def _answer_from_cache(exchange: Exchange, policy: EffectivePolicy, answer: bytes) -> None:
    """A cached answer: it counts as a request (limits and request quotas), never as tokens or money."""
    takes = [take for take in limits.takes_for(policy.limits, exchange.body) if take.limit.metric == "requests"]
    now = time.time()
    takes += [limits.Take(q.at(now), 1, 1) for q in policy.quotas if q.metric == "requests"]
    decision = await limits.LIMITER.take(takes)
    if not decision.allowed:
        raise _refusal(decision)
    limits.LIMITER.settle([limits.Settlement(t.limit, 1, 1) for t in takes if isinstance(t.limit, limits.PeriodQuota)])
    exchange.record.status, exchange.record.cache_hit = 200, True
    if exchange.record.payload_days:
        _log_answer(exchange.record, json.loads(answer))
    if exchange.scrubber is not None or exchange.output is not None:  # cached as the provider answered
        answer = _delivered(exchange, json.loads(answer)) or answer
    headers = {**exchange.notice, **decision.headers(), "x-gatehouse-cache": "hit"}
    await _send_json(exchange.send, 200, answer, exchange.request_id, headers)


def _admissible(exchange: Exchange, policy: EffectivePolicy, targets: tuple[Target, ...]) -> tuple[Target, ...]:
    """Access rules: where the call may come from, when, and which deployments it may go to (data residency).
    Returns the deployments it may use."""
    if policy.access:
        try:
            address = ipaddress.ip_address(exchange.record.client_ip)
        except ValueError:
            address = None
        now = time.time()
        for rule in policy.access:
            if rule.refuses_address(address):
                raise GatewayError(
                    403,
                    f"Calls from this address are not allowed (set by {rule.source}).",
                    type_="permission_denied",
                    code="ip_not_allowed",
                )
            if rule.refuses_time(now):
                raise GatewayError(
                    403,
                    f"Calls are allowed {rule.describe_hours()} only (set by {rule.source}).",
                    type_="permission_denied",
                    code="outside_allowed_hours",
                )
    if policy.regions is None:
        return targets
    allowed = tuple(t for t in targets if t.region in policy.regions)
    if targets and not allowed:
        raise GatewayError(
            403,
            f"`{exchange.alias}` is not served in the regions this call may use ({', '.join(sorted(policy.regions))};"
            f" set by {policy.regions_source}).",
            type_="permission_denied",
            code="region_not_allowed",
        )
    return allowed


def _settle(exchange: Exchange) -> None:
    reservation, record = exchange.reservation, exchange.record
    if reservation is None or exchange.admitted is None:
        return  # refused on the way in: nothing was reserved
    limits.LIMITER.settle(
        reservation.settlements(
            answered=record.status in (200, 499),
            prompt=record.prompt_tokens,
            completion=record.completion_tokens,
            cost=record.cost_micros(),
        )
    )


async def _metered(exchange: Exchange, tokens: int) -> bool:
    """A stream passes ``tokens`` more: grow its reservation when they do not fit (a step ahead if the quota
    allows, else just these); False when the quota cannot cover them."""
    reservation = exchange.reservation
    assert reservation is not None
    shortfall = reservation.streamed + tokens - reservation.completion_tokens
    if shortfall > 0:
        for size in dict.fromkeys((max(shortfall, reservation.step), shortfall)):
            takes = reservation.growth(size)
            if (await limits.LIMITER.take(takes)).allowed:
                reservation.grew(takes, size)
                break
        else:
            return False
    reservation.streamed += tokens
    return True


def _cut(exchange: Exchange) -> bytes:
    """The end of a stream whose quota ran out: an error chunk in OpenAI's format, then [DONE]. The call is
    settled at what was streamed."""
    reservation, record = exchange.reservation, exchange.record
    assert reservation is not None
    record.error_code = "insufficient_quota"
    record.usage_is_estimated = True
    record.prompt_tokens, record.completion_tokens = reservation.prompt_tokens, reservation.streamed
    error = GatewayError(
        429,
        "The stream was stopped: the quota ran out before the answer ended. Ask for more in the developer portal.",
        type_="insufficient_quota",
        code="insufficient_quota",
    )
    return b"data: " + error.body() + b"\n\ndata: [DONE]\n\n"


def _delta_tokens(data: Any) -> int:
    """The tokens of a streamed chunk's delta (its text and any tool-call arguments), counted offline."""
    if not isinstance(data, dict):
        return 0
    total = 0
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            total += sum(budgets.count_tokens(text) for text in budgets.texts(delta.get("content")))
            total += sum(budgets.count_tokens(text) for text in budgets.texts(delta.get("tool_calls")))
    return total


async def _try_deployments(
    exchange: Exchange, targets: tuple[Target, ...], sticky: str, takes: list[limits.Take]
) -> None:
    planned = routing.plan(targets, sticky=sticky)
    if exchange.path != "/chat/completions":  # only chat is translated; other endpoints need OpenAI's format
        planned = [t for t in planned if t.kind in upstream.PASS_THROUGH_KINDS]
    if not planned:
        raise GatewayError(503, "No deployment serves this model right now.", type_="api_error", code="no_deployment")
    now = time.monotonic()
    candidates = [t for t in planned if BREAKERS.allows(t.deployment_id, now)]
    if not candidates:
        wait = BREAKERS.retry_after([t.deployment_id for t in planned], now)
        raise GatewayError(
            503,
            "Every deployment of this model is failing; Gatehouse is giving them a moment.",
            type_="api_error",
            code="upstream_unavailable",
            headers={"retry-after": str(wait)},
        )
    attempt, index = 0, await _admit(exchange, candidates, 0, takes)
    while True:
        attempt += 1
        target = exchange.target = candidates[index]
        record = exchange.record
        record.attempts, record.deployment_id, record.deployment_name = attempt, target.deployment_id, target.name
        record.provider_kind, record.region = target.kind, target.region
        record.input_price, record.output_price = (
            target.input_price_micros_per_mtok,
            target.output_price_micros_per_mtok,
        )
        called = time.monotonic()
        try:
            await _call(exchange, target)
        except GatewayError as error:
            # _call raises only before the first byte reaches the client, so trying again is still safe.
            if not routing.is_retriable(error):
                raise
            BREAKERS.failed(target.deployment_id, time.monotonic())
            if attempt >= routing.MAX_ATTEMPTS:
                raise
            if index + 1 < len(candidates):
                try:  # the next deployment's own limits (the call's were taken once, on the way in)
                    index = await _admit(exchange, candidates, index + 1, [])
                except GatewayError:
                    raise error from None  # no other deployment has room: the client hears the real failure
            else:
                await asyncio.sleep(routing.backoff_seconds(error, attempt))
            logger.info(
                "deployment %s failed with %s; trying again (request %s)", target.name, error.code, exchange.request_id
            )
        else:
            BREAKERS.succeeded(target.deployment_id)
            return
        finally:
            waited = round((time.monotonic() - called) * 1000)
            record.upstream_ms = (record.upstream_ms or 0) + waited


async def _call(exchange: Exchange, target: Target) -> None:
    if target.kind not in upstream.PASS_THROUGH_KINDS:
        answer = await translate.chat(client(), target, exchange.body)
        if isinstance(answer, dict):
            await _answer(exchange, answer)
        else:
            await _stream(exchange, _translated_events(exchange, answer))
        return
    if not exchange.stream:
        async with upstream.post(client(), target, exchange.path, exchange.body) as response:
            raw = await response.read()
        try:
            answer = json.loads(raw)
        except ValueError:
            raise GatewayError(
                502, "The provider sent an unreadable answer.", type_="api_error", code="upstream_bad_response"
            ) from None
        if not isinstance(answer, dict):
            raise GatewayError(
                502, "The provider sent an unexpected answer.", type_="api_error", code="upstream_bad_response"
            )
        await _answer(exchange, answer)
        return
    # Ask for usage in the stream even when the client did not: it is what the call is billed by.
    body = {**exchange.body, "stream_options": {**(exchange.body.get("stream_options") or {}), "include_usage": True}}
    async with upstream.post(client(), target, exchange.path, body) as response:
        await _stream(exchange, _passed_events(exchange, target, response.content.iter_any()))


async def _answer(exchange: Exchange, answer: dict[str, Any]) -> None:
    answer["model"] = exchange.alias  # the alias the client asked for, not the deployment's model
    exchange.record.take_usage(answer.get("usage"))
    exchange.record.status = 200
    provided = json.dumps(answer).encode()  # what is cached: never the originals placeholders stand for
    if exchange.record.payload_days:
        _log_answer(exchange.record, answer)
    body = _delivered(exchange, answer) or provided
    await _send_json(exchange.send, 200, body, exchange.request_id, exchange.notice)
    if exchange.cache_key is not None:  # the client has its answer: storing it delays nobody
        await cache.CACHE.put(exchange.cache_key, provided, exchange.cache_ttl)


def _log_answer(record: usage.CallRecord, answer: Any, *, delta: bool = False) -> None:
    """Keep an answer's (or a streamed chunk's) texts for the payload log, as the provider sent them."""
    for choice in (answer.get("choices") if isinstance(answer, dict) else None) or ():
        part = choice.get("delta" if delta else "message") if isinstance(choice, dict) else None
        if isinstance(part, dict) and isinstance(part.get("content"), str):
            record.payload_answer.append(part["content"])


def _delivered(exchange: Exchange, answer: dict[str, Any]) -> bytes | None:
    """What the client gets of an answer (fresh or cached): placeholders restored and PII scrubbed, the output
    filter applied. None when nothing changed (the provider's bytes can go as they are)."""
    changed = False
    if exchange.scrubber is not None:
        answer, changed = exchange.scrubber.answer(answer), True
    output = exchange.output
    block = output is not None and output.action == "block"
    if output is not None and injection.screen_answer(answer, output.deny_terms, output.secrets, block):
        exchange.record.decisions.append(f"output_filter:{output.action}")
        changed = True
    return json.dumps(answer).encode() if changed else None


async def _passed_events(exchange: Exchange, target: Target, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An OpenAI-compatible upstream's SSE bytes, nearly as they came: whole events, the model renamed to the
    alias, the usage read (and its chunk dropped when the client did not ask for it)."""
    upstream_model = json.dumps(target.model).encode()
    alias = json.dumps(exchange.alias).encode()
    pending = b""
    async for chunk in chunks:
        pending += chunk.replace(b"\r\n", b"\n")
        *complete, pending = pending.split(b"\n\n")
        out: list[bytes] = []
        for event in complete:
            if b'"usage"' in event and b'"usage":null' not in event and b'"usage": null' not in event:
                try:
                    data = json.loads(event[event.index(b"data:") + 5 :])
                except ValueError:
                    data = None
                billed = isinstance(data, dict) and exchange.record.take_usage(data.get("usage"))
                if billed and not exchange.client_wants_usage and not data.get("choices"):
                    continue
            elif b'"delta"' in event:
                exchange.deltas += 1
                logged = exchange.record.payload_days
                if exchange.metered or exchange.restorer is not None or exchange.output is not None or logged:
                    try:
                        data = json.loads(event[event.index(b"data:") + 5 :])
                    except ValueError:
                        data = None
                    if logged:
                        _log_answer(exchange.record, data, delta=True)
                    if exchange.metered and not await _metered(exchange, _delta_tokens(data)):
                        yield b"".join(out) + _cut(exchange)
                        return
                    if isinstance(data, dict) and (exchange.restorer is not None or exchange.output is not None):
                        if exchange.restorer is not None:
                            _restore_chunk(exchange.restorer, data)
                        if exchange.output is not None and _screen_chunk(exchange, exchange.output, data):
                            yield b"".join(out) + _withheld(exchange, data)
                            return
                        data["model"] = exchange.alias
                        event = b"data: " + json.dumps(data, separators=(",", ":")).encode()
            out.append(event.replace(b'"model":' + upstream_model, b'"model":' + alias) + b"\n\n")
        if out:
            yield b"".join(out)
    if pending.strip():
        yield pending


async def _translated_events(exchange: Exchange, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if exchange.record.take_usage(chunk.get("usage")) and not exchange.client_wants_usage:
            if not chunk.get("choices"):
                continue
            chunk.pop("usage")
        exchange.deltas += 1
        if exchange.record.payload_days:
            _log_answer(exchange.record, chunk, delta=True)
        if exchange.metered and not await _metered(exchange, _delta_tokens(chunk)):
            yield _cut(exchange)
            return
        if exchange.restorer is not None:
            _restore_chunk(exchange.restorer, chunk)
        if exchange.output is not None and _screen_chunk(exchange, exchange.output, chunk):
            yield _withheld(exchange, chunk)
            return
        chunk["model"] = exchange.alias
        yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def _stream(exchange: Exchange, events: AsyncIterator[bytes]) -> None:
    """Relay a stream; if the client leaves, stop reading the upstream at once (which cancels its call there)."""
    record = exchange.record
    record.is_stream = True
    try:  # a failure before the first event can still be retried elsewhere
        first = await anext(events, None)
    except Exception as error:  # mapped to what the client may see
        raise translate.as_gateway_error(error) from None

    async def pump() -> None:
        await exchange.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": _response_headers(exchange.request_id, b"text/event-stream", exchange.notice),
            }
        )
        record.status = 200
        record.ttft_ms = round((asyncio.get_running_loop().time() - record.started) * 1000)
        if first is not None:
            await exchange.send({"type": "http.response.body", "body": first, "more_body": True})
        try:
            async for event in events:
                await exchange.send({"type": "http.response.body", "body": event, "more_body": True})
        except Exception:  # after the first byte no status can change: end the stream, never retry
            logger.warning(
                "stream from deployment %s broke off (request %s)", record.deployment_name, exchange.request_id
            )
            record.error_code = "stream_interrupted"
        await exchange.send({"type": "http.response.body", "body": b""})

    async def client_left() -> None:
        while (await exchange.receive())["type"] != "http.disconnect":
            pass

    pumping, watching = asyncio.ensure_future(pump()), asyncio.ensure_future(client_left())
    done, _ = await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
    if pumping in done:
        watching.cancel()
        pumping.result()
        return
    pumping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pumping
    record.status, record.error_code = 499, "client_disconnected"  # nginx's code for "the client closed first"
    _estimate_usage(exchange)


def _estimate_usage(exchange: Exchange) -> None:
    """A stream that ended before the provider's usage came: bill what was counted on the way."""
    record = exchange.record
    if record.prompt_tokens:
        return
    record.usage_is_estimated = True
    if exchange.metered and exchange.reservation is not None:
        record.prompt_tokens = exchange.reservation.prompt_tokens
        record.completion_tokens = exchange.reservation.streamed
    else:
        record.prompt_tokens = max(1, len(json.dumps(exchange.body.get("messages", ""))) // 4)
        record.completion_tokens = exchange.deltas


async def _proxy(
    path: str,
    kind: str,
    access: KeyAccess,
    body: dict[str, Any],
    send: Send,
    receive: Receive,
    request_id: str,
    record: usage.CallRecord,
    no_cache: bool = False,
) -> None:
    model = body.get("model")
    record.model = model if isinstance(model, str) else ""
    grant = await _grant(access, body.get("model"), kind)
    _bind_grant(record, grant)
    deprecated, sunset = grant.sunset_of(body["model"])
    table = await CACHE.table(grant.api_id)
    notice = _deprecation_headers(sunset) if deprecated else {}
    exchange = Exchange(path, body, body["model"], send, receive, request_id, record, notice)
    exchange.no_cache = no_cache
    await _route(exchange, table.for_alias(body["model"]), sticky=access.public_id, grant=grant)


async def _prompt(
    match: re.Match[str],
    access: KeyAccess,
    body: dict[str, Any],
    send: Send,
    receive: Receive,
    request_id: str,
    record: usage.CallRecord,
    no_cache: bool = False,
) -> None:
    publisher, api_slug, version = match[1], match[2], match[3]
    grant = await _prompt_grant(access, publisher, api_slug)
    _bind_grant(record, grant)
    table = await CACHE.table(grant.api_id)
    prompt = table.prompts.get(version or table.current_prompt or "")
    if prompt is None:
        which = f"version {version}" if version else "serving version"
        raise GatewayError(404, f"{publisher}/{api_slug} has no {which}.", code="version_not_found")
    unknown = sorted(body.keys() - PROMPT_FIELDS)
    if unknown:
        options = ", ".join(sorted(PROMPT_FIELDS - {"variables"}))
        raise bad_request(
            f"A prompt API takes 'variables' and these options only: {options}. Not: {', '.join(unknown)}.",
            param=unknown[0],
        )
    try:
        prompts.check_variables(prompt.schema, body.get("variables", {}))
        text = prompts.render(prompt.template, body.get("variables", {}))
    except prompts.PromptError as error:
        raise bad_request(str(error), param="variables") from None
    chat = {k: v for k, v in body.items() if k != "variables"}
    chat.update(model=prompt.model_alias, messages=[{"role": "user", "content": text}])
    record.model = prompt.model_alias
    notice = _deprecation_headers(prompt.sunset_at) if prompt.deprecated else {}
    exchange = Exchange("/chat/completions", chat, prompt.model_alias, send, receive, request_id, record, notice)
    exchange.no_cache = no_cache
    await _route(exchange, table.for_alias(prompt.model_alias), sticky=access.public_id, grant=grant)


# --- the app -------------------------------------------------------------------------------------------------

ENDPOINTS = {"/v1/chat/completions": ("chat", "/chat/completions"), "/v1/embeddings": ("embeddings", "/embeddings")}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    headers = _headers(scope)
    request_id = request_id_for(headers.get("x-request-id"))
    method, path = scope["method"], scope["path"]
    client_ip = (scope.get("client") or ("",))[0]
    no_cache = "no-cache" in headers.get("cache-control", "").lower()
    started = False
    record: usage.CallRecord | None = None

    async def tracking_send(message: MutableMapping[str, Any]) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        prompt = PROMPT_PATH.match(path) if path.startswith("/v1/apis/") else None
        if (method, path) == ("GET", "/v1/models"):
            await _models(await _authenticate(headers, scope, None), tracking_send, request_id)
        elif method == "POST" and path in ENDPOINTS:
            kind, upstream_path = ENDPOINTS[path]
            record = usage.new_record(request_id, kind, client_ip)
            access = await _authenticate(headers, scope, record)
            body = await _read_json(receive)
            if kind == "chat" and (not isinstance(body.get("messages"), list) or not body["messages"]):
                raise bad_request("'messages' must be a non-empty list.", param="messages")
            if kind == "embeddings" and "input" not in body:
                raise bad_request("You must provide an input parameter.", param="input")
            await _proxy(upstream_path, kind, access, body, tracking_send, receive, request_id, record, no_cache)
        elif method == "POST" and prompt is not None:
            record = usage.new_record(request_id, "prompt", client_ip)
            access = await _authenticate(headers, scope, record)
            body = await _read_json(receive)
            await _prompt(prompt, access, body, tracking_send, receive, request_id, record, no_cache)
        elif path in ENDPOINTS or path == "/v1/models" or prompt is not None:
            raise GatewayError(405, f"{method} is not allowed here.", code="method_not_allowed")
        else:
            raise GatewayError(404, f"Unknown path {path}.", code="unknown_url")
    except GatewayError as error:
        if record is not None and not started:
            record.status, record.error_code = error.status, error.code or ""
        if not started:
            await _send_json(send, error.status, error.body(), request_id, error.headers)
    except Exception:
        logger.exception("gateway failure (request %s)", request_id)
        if record is not None and not started:
            record.status, record.error_code = 500, "gateway_error"
        if not started:
            failure = GatewayError(
                500, "Gatehouse failed on its side; the request id helps us find out why.", type_="api_error"
            )
            await _send_json(send, 500, failure.body(), request_id)
    finally:
        if record is not None and record.tenant_id is not None:
            usage.RECORDER.record(record.event(asyncio.get_running_loop().time()))

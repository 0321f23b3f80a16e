"""Rate limits: every counter a call is subject to, checked and consumed in one atomic Redis round trip.

**Algorithm: a sliding window of one-second buckets.** Each counter (say "subscription 12, requests per
minute") is a Redis hash of ``second → amount`` holding only the seconds of the current window. A call is
admitted when, for *every* counter, the amounts in the window plus what the call needs fit the limit; then all
counters are consumed at once, else none is (the Lua script runs atomically, so two workers can never both take
the last slot). Why this and not the usual alternatives:

- it is exact — "60 per minute" admits 60 in any window of 60 whole seconds, never more (a token bucket or
  GCRA with a burst of 60 admits 60 at once *and* keeps refilling, ~119 in the first minute; a fixed window
  admits 120 across a boundary);
- it weighs calls (tokens per minute is the same code with a weight) and knows when room comes back (the
  oldest bucket's age gives an honest ``retry-after``);
- its cost is bounded: at most 60 small fields per counter, whatever the traffic.

Tokens are checked before the call with the prompt's estimated size and consumed after it with the real usage
(``add``, batched: one pipelined write every 50 ms for all calls that ended meanwhile), as OpenAI's own
tokens-per-minute limits behave. A call therefore costs one Redis round trip on its way in.

Without Redis (the embedded mode) the same windows live in process memory. If Redis becomes unreachable, each
worker falls back to local windows with the limits divided by ``GATEHOUSE_EXPECTED_WORKERS`` and logs an alert
once per outage; Redis is tried again after ``REDIS_RETRY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

logger = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 1.0
REDIS_TIMEOUT_SECONDS = 0.25
TOKENS_FLUSH_SECONDS = 0.05  # a limiter that waits on a sick Redis is worse than one that counts locally


@dataclass(frozen=True)
class Limit:
    """One counter a call is subject to: ``limit`` units of ``metric`` per ``window_seconds`` for one subject."""

    scope: str  # what is counted: "key", "application", "subscription", "tenant", "deployment"
    subject: str  # which one (an id)
    metric: str  # "requests" or "tokens"
    limit: int
    window_seconds: int = 60
    source: str = ""  # where the number was set, for "why was I limited?"

    @property
    def counter(self) -> str:
        return f"{self.scope}:{self.subject}:{self.metric}:{self.window_seconds}"


def per_minute(scope: str, subject: object, requests: int | None, tokens: int | None, source: str) -> tuple[Limit, ...]:
    """The requests/tokens-per-minute limits of one subject (empty or zero: no limit)."""
    return tuple(
        Limit(scope, str(subject), metric, value, 60, source)
        for metric, value in (("requests", requests), ("tokens", tokens))
        if value
    )


@dataclass(frozen=True)
class Take:
    """What a call asks of one limit: ``need`` must fit now, ``consume`` is taken at once if admitted."""

    limit: Limit
    need: int
    consume: int


@dataclass(frozen=True)
class State:
    limit: Limit
    used: int  # in the window, after this call if admitted
    reset_seconds: int  # until the oldest amount leaves the window


@dataclass
class Decision:
    allowed: bool
    retry_after: int = 0
    blocked_by: Limit | None = None
    states: list[State] = field(default_factory=list)
    second: int = 0  # the bucket this call was counted in (``add`` settles tokens there)

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers, for the consumer's tightest requests and tokens limits.

        A deployment's capacity is the publisher's business: it never shows in these headers.
        """
        headers: dict[str, str] = {}
        for metric in ("requests", "tokens"):
            states = [s for s in self.states if s.limit.metric == metric and s.limit.scope != "deployment"]
            if not states:
                continue
            tightest = min(states, key=lambda s: s.limit.limit - s.used)
            headers[f"x-ratelimit-limit-{metric}"] = str(tightest.limit.limit)
            headers[f"x-ratelimit-remaining-{metric}"] = str(max(0, tightest.limit.limit - tightest.used))
            headers[f"x-ratelimit-reset-{metric}"] = f"{tightest.reset_seconds}s"
        if not self.allowed and self.retry_after:
            headers["retry-after"] = str(self.retry_after)
        return headers


# KEYS: one hash per counter. ARGV: for each counter, its limit, need, consume and window (seconds).
# Returns {admitted (1/0), retry_after, now, used_1, oldest_1, used_2, oldest_2, …}.
TAKE_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
local admitted, retry_after = 1, 0
local used, oldest = {}, {}
for i = 1, #KEYS do
  local base = (i - 1) * 4
  local limit, need, window = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 4])
  local first = now - window + 1
  local flat = redis.call('HGETALL', KEYS[i])
  local total, seconds, amounts, stale = 0, {}, {}, {}
  for j = 1, #flat, 2 do
    local second = tonumber(flat[j])
    if second < first then
      stale[#stale + 1] = flat[j]
    else
      local amount = tonumber(flat[j + 1])
      total = total + amount
      seconds[#seconds + 1] = second
      amounts[second] = (amounts[second] or 0) + amount
    end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[i], unpack(stale)) end
  table.sort(seconds)
  used[i], oldest[i] = total, seconds[1] or now
  if total + need > limit then
    admitted = 0
    local left, wait = total, window
    for _, second in ipairs(seconds) do
      left = left - amounts[second]
      if left + need <= limit then wait = second + window - now; break end
    end
    if wait > retry_after then retry_after = wait end
  end
end
if admitted == 1 then
  for i = 1, #KEYS do
    local base = (i - 1) * 4
    local consume, window = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
    if consume > 0 then
      redis.call('HINCRBY', KEYS[i], now, consume)
      used[i] = used[i] + consume
    end
    redis.call('EXPIRE', KEYS[i], window + 1)
  end
end
local result = {admitted, retry_after, now}
for i = 1, #KEYS do
  result[#result + 1] = used[i]
  result[#result + 1] = oldest[i]
end
return result
"""


class LocalWindows:
    """The same windows in this process's memory (embedded mode, and the fallback while Redis is away)."""

    def __init__(self, divisor: int = 1) -> None:
        self.divisor = max(1, divisor)
        self._buckets: dict[str, dict[int, int]] = {}

    def _limit(self, limit: Limit) -> int:
        return max(1, limit.limit // self.divisor)

    def take(self, takes: Sequence[Take], now: int | None = None) -> Decision:
        now = int(time.time()) if now is None else now
        admitted, retry_after = True, 0
        windows: list[dict[int, int]] = []
        for take in takes:
            window = self._buckets.setdefault(take.limit.counter, {})
            first = now - take.limit.window_seconds + 1
            for second in [s for s in window if s < first]:
                del window[second]
            windows.append(window)
            total, limit = sum(window.values()), self._limit(take.limit)
            if total + take.need > limit:
                admitted = False
                left, wait = total, take.limit.window_seconds
                for second in sorted(window):
                    left -= window[second]
                    if left + take.need <= limit:
                        wait = second + take.limit.window_seconds - now
                        break
                retry_after = max(retry_after, wait)
        if admitted:
            for take, window in zip(takes, windows, strict=True):
                if take.consume > 0:
                    window[now] = window.get(now, 0) + take.consume
        return _decision(
            takes,
            admitted,
            retry_after,
            now,
            [
                (_scaled(take.limit, self._limit(take.limit)), sum(w.values()), min(w, default=now))
                for take, w in zip(takes, windows, strict=True)
            ],
        )

    def add(self, limit: Limit, second: int, amount: int) -> None:
        window = self._buckets.setdefault(limit.counter, {})
        window[second] = window.get(second, 0) + amount  # a second already out of the window is purged by take


def _scaled(limit: Limit, value: int) -> Limit:
    if value == limit.limit:
        return limit
    return Limit(limit.scope, limit.subject, limit.metric, value, limit.window_seconds, limit.source)


def _decision(
    takes: Sequence[Take], admitted: bool, retry_after: int, now: int, states: list[tuple[Limit, int, int]]
) -> Decision:
    """``states``: per take, the limit as applied, the amount used in the window and its oldest second."""
    blocked = None
    if not admitted:
        over = [limit for take, (limit, used, _) in zip(takes, states, strict=True) if used + take.need > limit.limit]
        blocked = min(over, key=lambda limit: limit.limit) if over else None
    return Decision(
        allowed=admitted,
        retry_after=0 if admitted else max(1, retry_after),
        blocked_by=blocked,
        states=[State(limit, used, max(0, oldest + limit.window_seconds - now)) for limit, used, oldest in states],
        second=now,
    )


class Limiter:
    """Per process. Redis when configured (shared by every worker), local windows otherwise or meanwhile."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._local = LocalWindows()
        self._fallback: LocalWindows | None = None
        self._redis_down_until = 0.0
        self._pending: dict[tuple[Limit, int], int] = {}
        self._flusher: asyncio.Task[None] | None = None

    def _redis(self) -> Any:
        """The script bound to this loop's client, or None when Redis is not configured or resting."""
        if not settings.REDIS_URL or time.monotonic() < self._redis_down_until:
            return None
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # clients belong to one event loop (tests run several)
            self._loop = loop
            self._client = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
            )
            self._script = self._client.register_script(TAKE_SCRIPT)
        return self._script

    def _prefix(self) -> str:
        return settings.RATE_LIMIT_PREFIX

    def _outage(self, error: Exception) -> LocalWindows:
        if self._fallback is None:
            workers = settings.GATEHOUSE_EXPECTED_WORKERS
            logger.error(
                "ALERT rate limiting lost Redis (%s); counting locally with limits divided by %d worker(s)",
                type(error).__name__,
                workers,
            )
            self._fallback = LocalWindows(divisor=workers)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        return self._fallback

    async def take(self, takes: Sequence[Take]) -> Decision:
        if not takes:
            return Decision(allowed=True)
        for take in takes:
            if take.need > take.limit.limit:  # can never fit: say so now, however empty the window
                return Decision(allowed=False, retry_after=0, blocked_by=take.limit, second=int(time.time()))
        script = self._redis()
        if script is None:
            return (self._fallback or self._local).take(takes)
        keys = [f"{self._prefix()}:{take.limit.counter}" for take in takes]
        args: list[int] = []
        for take in takes:
            args += [take.limit.limit, take.need, take.consume, take.limit.window_seconds]
        try:
            reply = await script(keys=keys, args=args)
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as error:
            return self._outage(error).take(takes)
        if self._fallback is not None:
            logger.warning("rate limiting has Redis again")
            self._fallback = None
        admitted, retry_after, now = int(reply[0]), int(reply[1]), int(reply[2])
        states = [(take.limit, int(reply[3 + 2 * i]), int(reply[4 + 2 * i])) for i, take in enumerate(takes)]
        return _decision(takes, bool(admitted), retry_after, now, states)

    def add(self, additions: Sequence[tuple[Limit, int]], second: int) -> None:
        """After a call: count what it really used (tokens) in the second it was admitted.

        With Redis the amounts are batched and written every ``TOKENS_FLUSH_SECONDS`` (one pipeline for all the
        calls that ended meanwhile), so a call's tokens weigh on the next calls within that time, not at once.
        """
        additions = [(limit, amount) for limit, amount in additions if amount > 0]
        if not additions:
            return
        if self._redis() is None:
            for limit, amount in additions:
                (self._fallback or self._local).add(limit, second, amount)
            return
        for limit, amount in additions:
            self._pending[(limit, second)] = self._pending.get((limit, second), 0) + amount
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon(), name="gatehouse-token-counts")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(TOKENS_FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Write the batched token counts now."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            if self._redis() is None or self._client is None:
                raise aioredis.ConnectionError("Redis is resting")
            async with self._client.pipeline(transaction=False) as pipe:
                for (limit, second), amount in pending.items():
                    key = f"{self._prefix()}:{limit.counter}"
                    pipe.hincrby(key, str(second), amount)
                    pipe.expire(key, limit.window_seconds + 1)
                await pipe.execute()
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as error:
            fallback = self._outage(error)
            for (limit, second), amount in pending.items():
                fallback.add(limit, second, amount)

    async def close(self) -> None:
        """Write what is batched and close this loop's Redis client (ASGI lifespan shutdown, and tests)."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        self._flusher = None
        if self._client is not None:
            await self.flush()
            await self._client.aclose()
        self._loop, self._client, self._script = None, None, None

    def reset_local(self) -> None:
        """Forget local windows (tests)."""
        self._local, self._fallback, self._redis_down_until, self._pending = LocalWindows(), None, 0.0, {}


def takes_for(limits: Sequence[Limit], body: dict[str, Any]) -> list[Take]:
    """What one call asks of these limits: one request now, and room for the prompt's estimated tokens."""
    if not limits:
        return []
    prompt_size = estimated_tokens(body)
    return [Take(limit, 1, 1) if limit.metric == "requests" else Take(limit, prompt_size, 0) for limit in limits]


def retry_after_message(decision: Decision) -> str:
    limit = decision.blocked_by
    if limit is None:
        return "Rate limit reached. Try again later."
    per = "minute" if limit.window_seconds == 60 else f"{limit.window_seconds} s"
    where = f" (set by {limit.source})" if limit.source else ""
    if decision.retry_after == 0:
        return (
            f"This request needs more {limit.metric} than the {limit.scope} limit of {limit.limit} {limit.metric} per"
            f" {per}{where} allows at all."
        )
    return (
        f"Rate limit reached for this {limit.scope}: {limit.limit} {limit.metric} per {per}{where}."
        f" Try again in {decision.retry_after} s."
    )


def estimated_tokens(body: dict[str, Any]) -> int:
    """A cheap upper-bound-ish size of a request's prompt (~4 characters per token), for the tokens check."""
    text = body.get("messages") or body.get("input") or ""
    size = len(text) if isinstance(text, str) else sum(len(str(part)) for part in text) if isinstance(text, list) else 0
    return max(1, math.ceil(size / 4))


LIMITER = Limiter()

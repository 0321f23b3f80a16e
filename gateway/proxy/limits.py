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

**Quotas and budgets** (requests, tokens, cost per calendar day or month) ride in the same script: each is a
Redis hash ``{used, reserved}`` for one period. Before a call its worst case is *reserved* (admitted only if
``used + reserved + worst case`` fits the quota plus its grace); after the call ``settle`` releases the
reservation and adds what was really used — also when the call failed or the client left. Parallel calls can
therefore never overspend: each one holds its worst case until it knows better (see gateway/policies.py for
how the worst case is computed, and app.py for the stream that grows its reservation as it flows).

Without Redis (the embedded mode) the same counters live in process memory. If Redis becomes unreachable, each
worker falls back to local windows with the limits divided by ``GATEHOUSE_EXPECTED_WORKERS`` and logs an alert
once per outage; Redis is tried again after ``REDIS_RETRY_SECONDS``. Quotas **fail closed** meanwhile: a call
that would spend from a quota is refused (503), because money is never spent blind.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis as sync_redis
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

    def describe(self) -> str:
        per = "min" if self.window_seconds == 60 else f"{self.window_seconds} s"
        return f"{self.limit:,} {self.metric}/{per} per {self.scope}"


def per_minute(scope: str, subject: object, requests: int | None, tokens: int | None, source: str) -> tuple[Limit, ...]:
    """The requests/tokens-per-minute limits of one subject (empty or zero: no limit)."""
    return tuple(
        Limit(scope, str(subject), metric, value, 60, source)
        for metric, value in (("requests", requests), ("tokens", tokens))
        if value
    )


@dataclass(frozen=True)
class Quota:
    """``limit`` units of ``metric`` (requests, tokens, or cost in micro-USD) per calendar ``period`` ("day" or
    "month", in ``timezone``) for one subject; calls may go ``grace_percent`` beyond it before they are refused.
    ``alert_at`` are the percentages of ``limit`` whose crossing emits an alert event (once per period)."""

    scope: str  # "subscription", "application", "tenant", "key"
    subject: str
    metric: str  # "requests", "tokens" or "cost"
    limit: int
    period: str = "month"
    timezone: str = "UTC"
    grace_percent: int = 0
    alert_at: tuple[int, ...] = (50, 80, 100)
    source: str = ""
    tenant_id: int = 0  # the consumer tenant its alerts go to

    @property
    def amount(self) -> str:
        """The quota as people say it: "$50.00" or "1,000,000 tokens"."""
        return f"${self.limit / 1_000_000:,.2f}" if self.metric == "cost" else f"{self.limit:,} {self.metric}"

    def describe(self) -> str:
        grace = f" (+{self.grace_percent}% grace)" if self.grace_percent else ""
        return f"{self.amount} per {self.period}{grace} per {self.scope}"

    @property
    def allowed(self) -> int:
        """What may really be spent: the quota and its grace."""
        return self.limit + self.limit * self.grace_percent // 100

    def at(self, now: float) -> PeriodQuota:
        """This quota's counter for the period holding ``now`` (a Unix time)."""
        label, _, end = _period(self.period, self.timezone, now)
        return PeriodQuota(self, label, max(1, math.ceil(end - now)))


# (period, timezone) → the period last asked for: (label, start, end). Every call asks; periods change rarely.
_PERIODS: dict[tuple[str, str], tuple[str, float, float]] = {}


def _period(period: str, timezone: str, now: float) -> tuple[str, float, float]:
    known = _PERIODS.get((period, timezone))
    if known is not None and known[1] <= now < known[2]:
        return known
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    if period == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        label = start.strftime("%Y%m%d")
        # A day is not always 86,400 s (DST): the next midnight by the calendar.
        end = (start + timedelta(days=1, hours=12)).replace(hour=0).timestamp()
    else:
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        label = start.strftime("%Y%m")
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end = start.replace(year=year, month=month).timestamp()
    found = _PERIODS[(period, timezone)] = (label, start.timestamp(), end)
    return found


@dataclass(frozen=True)
class PeriodQuota:
    """A quota's counter in one period: what a call reserves from and settles to."""

    quota: Quota
    label: str  # e.g. "20261127" or "202611"
    seconds_left: int  # until the period ends (the retry-after of a refusal)

    @property
    def counter(self) -> str:
        q = self.quota
        return f"quota:{q.scope}:{q.subject}:{q.metric}:{q.period}:{self.label}"

    @property
    def limit(self) -> int:
        return self.quota.allowed

    @property
    def window_seconds(self) -> int:
        return self.seconds_left

    @property
    def metric(self) -> str:
        return self.quota.metric

    @property
    def scope(self) -> str:
        return self.quota.scope

    @property
    def source(self) -> str:
        return self.quota.source


@dataclass(frozen=True)
class Take:
    """What a call asks of one counter: ``need`` must fit now, ``consume`` is taken at once if admitted.

    For a rate limit ``consume`` is counted in the window; for a quota it is reserved until ``settle``.
    """

    limit: Limit | PeriodQuota
    need: int
    consume: int

    @property
    def is_quota(self) -> bool:
        return isinstance(self.limit, PeriodQuota)


@dataclass(frozen=True)
class State:
    limit: Limit | PeriodQuota
    used: int  # in the window (a quota: in the period, reservations included), after this call if admitted
    reset_seconds: int  # until the oldest amount leaves the window (a quota: until the period ends)


@dataclass
class Decision:
    allowed: bool
    retry_after: int = 0
    blocked_by: Limit | PeriodQuota | None = None
    states: list[State] = field(default_factory=list)
    second: int = 0  # the bucket this call was counted in (``add`` settles tokens there)
    unavailable: bool = False  # refused because a quota could not be checked (Redis away): fail closed

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers, for the consumer's tightest requests and tokens limits.

        A deployment's capacity is the publisher's business: it never shows in these headers.
        """
        headers: dict[str, str] = {}
        for metric in ("requests", "tokens"):
            states = [
                s
                for s in self.states
                if isinstance(s.limit, Limit) and s.limit.metric == metric and s.limit.scope != "deployment"
            ]
            if not states:
                continue
            tightest = min(states, key=lambda s: s.limit.limit - s.used)
            headers[f"x-ratelimit-limit-{metric}"] = str(tightest.limit.limit)
            headers[f"x-ratelimit-remaining-{metric}"] = str(max(0, tightest.limit.limit - tightest.used))
            headers[f"x-ratelimit-reset-{metric}"] = f"{tightest.reset_seconds}s"
        if not self.allowed and self.retry_after:
            headers["retry-after"] = str(self.retry_after)
        return headers


# KEYS: one hash per counter. ARGV[1]: for each counter "kind,limit,need,consume,window", separated by ";" (kind 0:
# a rate-limit window, 1: a quota; a quota's window is the seconds left in its period) — one argument, because
# the client spends more time encoding arguments than Redis spends running the script.
# Returns {admitted (1/0), retry_after, now, used_1, oldest_1, used_2, oldest_2, …}; a quota's "used" counts its
# outstanding reservations too.
TAKE_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
local admitted, retry_after = 1, 0
local used, oldest, specs = {}, {}, {}
for kind, limit, need, consume, window in string.gmatch(ARGV[1], '(%d+),(%d+),(%d+),(%d+),(%d+)') do
  -- consume stays a string: HINCRBY gets it exactly as sent, whatever its size
  specs[#specs + 1] = {tonumber(kind), tonumber(limit), tonumber(need), consume, tonumber(window)}
end
for i = 1, #KEYS do
  local kind, limit, need, window = specs[i][1], specs[i][2], specs[i][3], specs[i][5]
  if kind == 1 then
    local held = redis.call('HMGET', KEYS[i], 'used', 'reserved')
    used[i], oldest[i] = (tonumber(held[1]) or 0) + math.max(0, tonumber(held[2]) or 0), now
    if used[i] + need > limit then
      admitted = 0
      if window > retry_after then retry_after = window end
    end
  else
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
end
if admitted == 1 then
  for i = 1, #KEYS do
    local kind, consume, window = specs[i][1], specs[i][4], specs[i][5]
    if kind == 1 then
      if consume ~= '0' then redis.call('HINCRBY', KEYS[i], 'reserved', consume) end
      redis.call('EXPIRE', KEYS[i], window + 86400)
    else
      if consume ~= '0' then redis.call('HINCRBY', KEYS[i], now, consume) end
      redis.call('EXPIRE', KEYS[i], window + 1)
    end
    used[i] = used[i] + tonumber(consume)
  end
end
local result = {admitted, retry_after, now}
for i = 1, #KEYS do
  result[#result + 1] = used[i]
  result[#result + 1] = oldest[i]
end
return result
"""

# KEYS[1]: a quota's hash; KEYS[2]: the guard of this write (a write sent twice counts once).
# ARGV: the reservation to release, what was really used, the seconds left in the period, then pairs of
# (percent, amount) alert thresholds. Returns {applied (1/0), used after, the percents crossed now…}; a crossed
# threshold is returned once per period, whichever worker's settlement crossed it.
SETTLE_SCRIPT = """
local ttl = tonumber(ARGV[3]) + 86400
-- the guard only has to outlive a resend (Redis back within the hour): it expires, so guards do not pile up
if not redis.call('SET', KEYS[2], 1, 'NX', 'EX', 3600) then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'used') or '0')}
end
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
-- never below zero: a reservation lost with a restarted Redis is not released twice
redis.call('HSET', KEYS[1], 'reserved', math.max(0, reserved - tonumber(ARGV[1])))
local spent = tonumber(ARGV[2])
local used = redis.call('HINCRBY', KEYS[1], 'used', spent)
redis.call('EXPIRE', KEYS[1], ttl)
local result = {1, used}
for i = 4, #ARGV, 2 do
  local amount = tonumber(ARGV[i + 1])
  if used - spent < amount and amount <= used then
    if redis.call('SET', KEYS[1] .. ':alert:' .. ARGV[i], 1, 'NX', 'EX', ttl) then
      result[#result + 1] = tonumber(ARGV[i])
    end
  end
end
return result
"""


class LocalWindows:
    """The same counters in this process's memory: the embedded mode's, and the rate limits' fallback while Redis
    is away (quotas then fail closed instead: ``Limiter`` never brings them here when Redis is configured)."""

    def __init__(self, divisor: int = 1) -> None:
        self.divisor = max(1, divisor)
        self._buckets: dict[str, dict[int, int]] = {}
        self._quotas: dict[str, list[int]] = {}  # counter → [used, reserved]

    def _limit(self, limit: Limit) -> int:
        return max(1, limit.limit // self.divisor)

    def take(self, takes: Sequence[Take], now: int | None = None) -> Decision:
        now = int(time.time()) if now is None else now
        admitted, retry_after = True, 0
        states: list[tuple[Limit | PeriodQuota, int, int]] = []
        for take in takes:
            if isinstance(take.limit, PeriodQuota):
                used, reserved = self._quotas.get(take.limit.counter, (0, 0))
                states.append((take.limit, used + reserved, now))
                if used + reserved + take.need > take.limit.limit:
                    admitted, retry_after = False, max(retry_after, take.limit.seconds_left)
                continue
            window = self._buckets.setdefault(take.limit.counter, {})
            first = now - take.limit.window_seconds + 1
            for second in [s for s in window if s < first]:
                del window[second]
            total, limit = sum(window.values()), self._limit(take.limit)
            states.append((_scaled(take.limit, limit), total, min(window, default=now)))
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
            for index, take in enumerate(takes):
                if take.consume <= 0:
                    continue
                if isinstance(take.limit, PeriodQuota):
                    self._quotas.setdefault(take.limit.counter, [0, 0])[1] += take.consume
                else:
                    window = self._buckets[take.limit.counter]
                    window[now] = window.get(now, 0) + take.consume
                applied, used, oldest = states[index]
                states[index] = (applied, used + take.consume, oldest)
        return _decision(takes, admitted, retry_after, now, states)

    def add(self, limit: Limit, second: int, amount: int) -> None:
        window = self._buckets.setdefault(limit.counter, {})
        window[second] = window.get(second, 0) + amount  # a second already out of the window is purged by take

    def settle(self, quota: PeriodQuota, reserved: int, used: int) -> int:
        held = self._quotas.setdefault(quota.counter, [0, 0])
        held[1] = max(0, held[1] - reserved)
        held[0] += used
        return held[0]


def _scaled(limit: Limit, value: int) -> Limit:
    if value == limit.limit:
        return limit
    return Limit(limit.scope, limit.subject, limit.metric, value, limit.window_seconds, limit.source)


def _decision(
    takes: Sequence[Take],
    admitted: bool,
    retry_after: int,
    now: int,
    states: list[tuple[Limit | PeriodQuota, int, int]],
) -> Decision:
    """``states``: per take, the limit as applied, the amount used in the window and its oldest second."""
    blocked = None
    if not admitted:
        over = [limit for take, (limit, used, _) in zip(takes, states, strict=True) if used + take.need > limit.limit]
        # An exhausted quota is the news (it lasts until the period ends); among limits, the tightest.
        blocked = min(over, key=lambda limit: (isinstance(limit, Limit), limit.limit)) if over else None
    return Decision(
        allowed=admitted,
        retry_after=0 if admitted else max(1, retry_after),
        blocked_by=blocked,
        states=[State(limit, used, max(0, oldest + limit.window_seconds - now)) for limit, used, oldest in states],
        second=now,
    )


@dataclass(frozen=True)
class Settlement:
    """After a call, for one quota it reserved from: release ``reserved``, count ``used``."""

    quota: PeriodQuota
    reserved: int
    used: int


class Limiter:
    """Per process. Redis when configured (shared by every worker), local windows otherwise or meanwhile."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aioredis.Redis | None = None
        self._script: Any = None
        self._settle_script: Any = None
        self._local = LocalWindows()
        self._fallback: LocalWindows | None = None
        self._redis_down_until = 0.0
        self._pending: dict[tuple[Limit, int], int] = {}
        self._settlements: list[Settlement] = []
        # Settlements merged per quota for one write, each with the id that makes a repeated write count once,
        # until Redis confirms them (a write whose reply was lost is sent again with the same id).
        self._unsettled: list[tuple[str, Settlement]] = []
        self._alerted: set[str] = set()  # local mode: thresholds already announced
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
            self._settle_script = self._client.register_script(SETTLE_SCRIPT)
        return self._script

    def _prefix(self) -> str:
        return settings.RATE_LIMIT_PREFIX

    def _outage(self, error: Exception) -> LocalWindows:
        if self._fallback is None:
            workers = settings.GATEHOUSE_EXPECTED_WORKERS
            logger.error(
                "ALERT rate limiting lost Redis (%s); counting locally with limits divided by %d worker(s), and"
                " refusing calls that spend from a quota",
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
        spends = any(take.is_quota for take in takes)
        script = self._redis()
        if script is None:
            if settings.REDIS_URL and spends:  # Redis is resting after a failure: money is never spent blind
                return Decision(allowed=False, unavailable=True, second=int(time.time()))
            return (self._fallback or self._local).take(takes)
        prefix = self._prefix()
        keys = [f"{prefix}:{take.limit.counter}" for take in takes]
        specs = ";".join(
            f"{int(take.is_quota)},{take.limit.limit},{take.need},{take.consume},{take.limit.window_seconds}"
            for take in takes
        )
        try:
            reply = await script(keys=keys, args=[specs])
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as error:
            fallback = self._outage(error)
            if spends:
                return Decision(allowed=False, unavailable=True, second=int(time.time()))
            return fallback.take(takes)
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
        if not settings.REDIS_URL or (self._fallback is not None and self._redis() is None):
            for limit, amount in additions:
                (self._fallback or self._local).add(limit, second, amount)
            return
        for limit, amount in additions:
            self._pending[(limit, second)] = self._pending.get((limit, second), 0) + amount
        self._flush_later()

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """After a call: release its reservations and count what it really used (batched like ``add``).

        Without Redis this happens at once. With Redis a settlement that cannot be written is kept and written
        when Redis is back (its reservation holds the quota meanwhile: the error is on the safe side).
        """
        if not settlements:
            return
        if not settings.REDIS_URL:
            for settlement in settlements:
                used = self._local.settle(settlement.quota, settlement.reserved, settlement.used)
                self._announce_crossings(settlement, used)
            return
        self._settlements.extend(settlements)
        self._flush_later()

    def _flush_later(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon(), name="gatehouse-limit-counts")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(TOKENS_FLUSH_SECONDS)
        await self.flush()

    def _merge_settlements(self) -> None:
        """The settlements since the last write, summed per quota counter (one script call per quota per flush,
        however many calls ended meanwhile), queued with their write ids."""
        merged: dict[str, Settlement] = {}
        for settlement in self._settlements:
            known = merged.get(settlement.quota.counter)
            if known is not None:
                settlement = Settlement(
                    settlement.quota, known.reserved + settlement.reserved, known.used + settlement.used
                )
            merged[settlement.quota.counter] = settlement
        self._settlements = []
        batch = uuid.uuid4().hex
        self._unsettled += [(f"{batch}:{index}", s) for index, s in enumerate(merged.values())]

    async def flush(self) -> None:
        """Write the batched token counts and settlements now."""
        pending, self._pending = self._pending, {}
        self._merge_settlements()
        writes, self._unsettled = self._unsettled, []
        if not pending and not writes:
            return
        try:
            if self._redis() is None or self._client is None:
                raise aioredis.ConnectionError("Redis is resting")
            async with self._client.pipeline(transaction=False) as pipe:
                for (limit, second), amount in pending.items():
                    key = f"{self._prefix()}:{limit.counter}"
                    pipe.hincrby(key, str(second), amount)
                    pipe.expire(key, limit.window_seconds + 1)
                for write_id, settlement in writes:
                    keys = [f"{self._prefix()}:{settlement.quota.counter}", f"{self._prefix()}:settled:{write_id}"]
                    await self._settle_script(keys=keys, args=_settle_args(settlement), client=pipe)
                replies = await pipe.execute()
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as error:
            fallback = self._outage(error)
            for (limit, second), amount in pending.items():
                fallback.add(limit, second, amount)
            self._unsettled[:0] = writes  # sent again (same ids) when Redis is back; their reservations hold
            return
        for (_, settlement), reply in zip(writes, replies[2 * len(pending) :], strict=True):
            for percent in reply[2:]:
                _announce(settlement, int(percent), int(reply[1]))

    def _announce_crossings(self, settlement: Settlement, used: int) -> None:
        """Local mode: the thresholds this settlement crossed, once per period (what SETTLE_SCRIPT does)."""
        for percent, amount in _thresholds(settlement.quota):
            marker = f"{settlement.quota.counter}:{percent}"
            if used - settlement.used < amount <= used and marker not in self._alerted:
                self._alerted.add(marker)
                _announce(settlement, percent, used)

    async def held(self, quota: PeriodQuota) -> tuple[int, int]:
        """What a quota holds now: (used, reserved) — settled spending, and what calls in flight reserved."""
        if not settings.REDIS_URL:
            used, reserved = self._local._quotas.get(quota.counter, (0, 0))
            return used, reserved
        if self._redis() is None or self._client is None:
            raise aioredis.ConnectionError("Redis is resting")
        held: list[Any] = await self._client.hmget(f"{self._prefix()}:{quota.counter}", ["used", "reserved"])  # type: ignore[misc]
        used_raw, reserved_raw = held
        return int(used_raw or 0), int(reserved_raw or 0)

    async def close(self) -> None:
        """Write what is batched and close this loop's Redis client (ASGI lifespan shutdown, and tests)."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        self._flusher = None
        if self._client is not None:
            await self.flush()
            await self._client.aclose()
        self._loop, self._client, self._script, self._settle_script = None, None, None, None

    def reset_local(self) -> None:
        """Forget local windows (tests)."""
        self._local, self._fallback, self._redis_down_until, self._pending = LocalWindows(), None, 0.0, {}
        self._settlements, self._unsettled, self._alerted = [], [], set()


def _thresholds(quota: PeriodQuota) -> list[tuple[int, int]]:
    """(percent, amount) of each alert threshold of a quota (percents of the quota, not of its grace)."""
    return [(percent, math.ceil(quota.quota.limit * percent / 100)) for percent in quota.quota.alert_at]


def _settle_args(settlement: Settlement) -> list[int]:
    args = [settlement.reserved, settlement.used, settlement.quota.seconds_left]
    for percent, amount in _thresholds(settlement.quota):
        args += [percent, amount]
    return args


def _announce(settlement: Settlement, percent: int, used: int) -> None:
    """An alert event: a quota crossed a threshold. It travels with the usage events to analytics."""
    from gateway.proxy.usage import RECORDER

    quota = settlement.quota.quota
    logger.warning(
        "quota %s of %s %s reached %d%% (%d of %d %s this %s)",
        quota.metric, quota.scope, quota.subject, percent, used, quota.limit, quota.metric, quota.period,
    )  # fmt: skip
    RECORDER.record(
        {
            "type": "alert",
            "event_id": f"quota:{settlement.quota.counter}:{percent}",
            "occurred_at": datetime.now(ZoneInfo("UTC")).isoformat(),
            "tenant_id": quota.tenant_id,
            "kind": "quota_threshold",
            "message": f"{percent}% of the {quota.scope} quota of {quota.amount} per {quota.period}"
            + (f" (set by {quota.source})" if quota.source else "")
            + " is used.",
            "percent": percent,
            "used": used,
            "limit": quota.limit,
            "metric": quota.metric,
            "scope": quota.scope,
            "subject": quota.subject,
            "period": settlement.quota.label,
            "source": quota.source,
        }
    )


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


def held_now(quota: PeriodQuota) -> tuple[int, int] | None:
    """(used, reserved) of a quota, read synchronously for a page; None when Redis cannot be reached."""
    if not settings.REDIS_URL:
        used, reserved = LIMITER._local._quotas.get(quota.counter, (0, 0))  # the same process serves the gateway
        return used, reserved
    client = sync_redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        held: Any = client.hmget(f"{settings.RATE_LIMIT_PREFIX}:{quota.counter}", ["used", "reserved"])
        used_raw, reserved_raw = held
    except sync_redis.RedisError:
        return None
    finally:
        client.close()
    return int(used_raw or 0), int(reserved_raw or 0)

"""Live figures (the live dashboard) and process-wide counters (/metrics), fed by the gateway's usage flush.

The gateway never writes these per call: its recorder flushes usage events every 50 ms, and ``redis_commands``
adds the counter increments to the *same* pipelined round trip as the XADD of the batch (``memory_add`` does the
same in process memory when there is no Redis). So the hot path pays nothing for them.

- Live, per consumer tenant and per second (kept two minutes): requests, errors, tokens, cost, and a latency
  histogram (analytics/sketch.py buckets); cost also per UTC hour (kept two days) for "spend today" in the
  tenant's own day. ``figures_for`` reads the last minute in one round trip.
- Metrics, one hash of monotonically growing counters for all processes (``metrics_snapshot``), rendered by
  analytics/metrics.py.

Counters are operational figures, not the books: a flush whose reply is lost and that is sent again counts
twice here (the call log, which bills, stores each event once). The books are the call log and its rollups.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from django.conf import settings

from analytics import sketch
from tenants.models import Tenant

SECOND_TTL = 120
HOUR_TTL = 2 * 86400
RATE_WINDOW = 5  # requests/s is averaged over this many complete seconds
QUALITY_WINDOW = 60  # error rate and p95 over the last minute

# Prometheus histogram bounds for request latency, in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _prefix() -> str:
    return f"{settings.CACHE_KEY_PREFIX}:live"


def second_key(tenant_id: int, second: int) -> str:
    return f"{_prefix()}:{tenant_id}:s:{second}"


def hour_key(tenant_id: int, hour: int) -> str:
    return f"{_prefix()}:{tenant_id}:h:{hour}"


def metrics_key() -> str:
    return f"{settings.CACHE_KEY_PREFIX}:metrics"


def _label(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "/")[:100]


def increments(events: list[dict[str, Any]], now: float) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """What a batch adds: {redis key: {field: amount}} for the live figures, {field: amount} for metrics."""
    second, hour = int(now), int(now) // 3600
    live: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    metrics: dict[str, int] = defaultdict(int)
    for event in events:
        if event.get("type") == "alert":
            metrics["alerts_total"] += 1
            continue
        tenant = event.get("tenant_id")
        status, model = int(event.get("status") or 0), _label(event.get("model"))
        latency = int(event.get("latency_ms") or 0)
        tokens = int(event.get("prompt_tokens") or 0) + int(event.get("completion_tokens") or 0)
        cost = int(event.get("cost_micros") or 0)
        if tenant:
            counts = live[second_key(tenant, second)]
            counts["n"] += 1
            counts["e"] += status >= 400
            counts["t"] += tokens
            counts["c"] += cost
            counts[f"h{sketch.bucket_of(latency)}"] += 1
            if cost:
                live[hour_key(tenant, hour)]["c"] += cost
        who = f"{_label(tenant)}|{model}"
        metrics[f"requests|{who}|{status}"] += 1
        metrics[f"prompt_tokens|{who}"] += int(event.get("prompt_tokens") or 0)
        metrics[f"completion_tokens|{who}"] += int(event.get("completion_tokens") or 0)
        metrics[f"cost_micros|{who}"] += cost
        if event.get("cache_hit"):
            metrics[f"cache_hits|{who}"] += 1
        # One count in the smallest bucket that holds it (beyond the last: only in the count); /metrics adds
        # them up into Prometheus' cumulative buckets.
        slot = bisect.bisect_left(LATENCY_BUCKETS, latency / 1000)
        if slot < len(LATENCY_BUCKETS):
            metrics[f"duration_bucket|{model}|{LATENCY_BUCKETS[slot]}"] += 1
        metrics[f"duration_count|{model}"] += 1
        metrics[f"duration_sum_ms|{model}"] += latency
        code = event.get("error_code") or ""
        if status >= 500 or code.startswith("upstream"):
            metrics[f"upstream_errors|{_label(event.get('provider_kind'))}|{_label(event.get('deployment_name'))}"] += 1
        if status == 429:
            metrics[f"rate_limited|{_label(tenant)}|{_label(code)}"] += 1
        for decision in event.get("policy_decisions") or ():
            metrics[f"policy_decisions|{_label(str(decision).split(':')[0])}|{_label(decision)}"] += 1
    return live, metrics


def redis_commands(pipe: Any, events: list[dict[str, Any]], now: float | None = None) -> None:
    """Queue the batch's increments on a (redis.asyncio) pipeline the caller executes anyway."""
    live, metrics = increments(events, time.time() if now is None else now)
    for key, fields in live.items():
        for name, amount in fields.items():
            pipe.hincrby(key, name, amount)
        pipe.expire(key, HOUR_TTL if ":h:" in key else SECOND_TTL)
    for name, amount in metrics.items():
        pipe.hincrby(metrics_key(), name, amount)


class MemoryCounters:
    """The same counters in process memory (embedded mode: one process serves everything)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hashes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.expiry: dict[str, float] = {}

    def add(self, events: list[dict[str, Any]], now: float | None = None) -> None:
        now = time.time() if now is None else now
        live, metrics = increments(events, now)
        with self._lock:
            for key, fields in live.items():
                for name, amount in fields.items():
                    self.hashes[key][name] += amount
                self.expiry[key] = now + (HOUR_TTL if ":h:" in key else SECOND_TTL)
            for name, amount in metrics.items():
                self.hashes[metrics_key()][name] += amount
            for key in [k for k, t in self.expiry.items() if t < now]:
                self.hashes.pop(key, None)
                self.expiry.pop(key, None)

    def read(self, keys: list[str]) -> list[dict[str, int]]:
        with self._lock:
            return [dict(self.hashes.get(key, {})) for key in keys]

    def clear(self) -> None:
        with self._lock:
            self.hashes.clear()
            self.expiry.clear()


MEMORY = MemoryCounters()


def memory_add(events: list[dict[str, Any]]) -> None:
    MEMORY.add(events)


_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis:
    """One pooled client per Redis URL (tests point REDIS_URL elsewhere now and then)."""
    url = settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    return _clients[url]


def read_hashes(keys: list[str]) -> list[dict[str, int]]:
    """HGETALL of each key in one round trip (Redis), or from process memory."""
    if not settings.REDIS_URL:
        return MEMORY.read(keys)
    pipe = _redis().pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return [{k.decode(): int(v) for k, v in reply.items()} for reply in pipe.execute()]


def figures_for(tenant: Tenant, *, with_costs: bool, now: float | None = None) -> dict[str, Any]:
    """The live dashboard's numbers for a tenant: requests/s, error rate and p95 over the last minute, and
    (for those who may see costs) spend today in the tenant's time zone."""
    now = time.time() if now is None else now
    current = int(now)
    seconds = list(range(current - QUALITY_WINDOW, current))  # complete seconds only
    local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tenant.timezone))
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    first_hour = int(day_start.timestamp()) // 3600
    hours = list(range(first_hour, current // 3600 + 1))
    keys = [second_key(tenant.pk, s) for s in seconds] + [hour_key(tenant.pk, h) for h in hours]
    hashes = read_hashes(keys)
    per_second, per_hour = hashes[: len(seconds)], hashes[len(seconds) :]
    recent = per_second[-RATE_WINDOW:]
    minute_calls = sum(h.get("n", 0) for h in per_second)
    minute_errors = sum(h.get("e", 0) for h in per_second)
    histogram = sketch.merge({k[1:]: v for k, v in h.items() if k.startswith("h")} for h in per_second)
    figures: dict[str, Any] = {
        "at": datetime.fromtimestamp(current, UTC).isoformat(),
        "requests_per_second": round(sum(h.get("n", 0) for h in recent) / RATE_WINDOW, 2),
        "calls_last_minute": minute_calls,
        "error_rate_percent": round(100 * minute_errors / minute_calls, 2) if minute_calls else 0.0,
        "latency_p95_ms": sketch.quantile(histogram, 0.95),
        "tokens_last_minute": sum(h.get("t", 0) for h in per_second),
        "series": [h.get("n", 0) for h in per_second],
    }
    if with_costs:
        figures["spend_today_micros"] = sum(h.get("c", 0) for h in per_hour)
        figures["spend_today_since"] = day_start.isoformat()
    return figures


def metrics_snapshot() -> dict[str, int]:
    """Every process's counters, summed (Redis), or this process's (embedded)."""
    [counters] = read_hashes([metrics_key()])
    return counters

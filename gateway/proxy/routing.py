"""Which deployment to try first, and what next when it fails.

Primaries (fallback_order 0) share traffic by weight — a canary at 5 % is a primary with weight 5 beside one
with 95 — and the choice is sticky per key: the same key lands on the same primary while the routes stay as
they are (a hash, no state). Fallbacks follow in their order when a try fails with a retriable error, as long
as nothing has reached the client yet; the last one is retried after a jittered backoff while attempts remain.
A deployment that keeps failing is skipped for a while (circuit breaker).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass

from gateway.proxy.errors import GatewayError
from gateway.proxy.snapshot import Target

RETRIABLE_CODES = frozenset(
    {"rate_limit_exceeded", "upstream_error", "upstream_timeout", "upstream_unreachable", "upstream_bad_response"}
)


def pick_primary(primaries: tuple[Target, ...], sticky: str) -> Target:
    total = sum(t.weight for t in primaries)
    point = zlib.crc32(sticky.encode()) % total
    for target in primaries:
        if point < target.weight:
            return target
        point -= target.weight
    return primaries[-1]  # unreachable: the weights add up to total


def plan(targets: tuple[Target, ...], sticky: str) -> list[Target]:
    """The deployments to try, in order: one weighted primary, then the fallbacks by their order."""
    primaries = tuple(t for t in targets if t.fallback_order == 0 and t.weight > 0)
    fallbacks = sorted((t for t in targets if t.fallback_order > 0), key=lambda t: t.fallback_order)
    return ([pick_primary(primaries, sticky)] if primaries else []) + fallbacks


def is_retriable(error: GatewayError) -> bool:
    return error.code in RETRIABLE_CODES


# --- circuit breakers ----------------------------------------------------------------------------------------

BREAKER_THRESHOLD = 5  # consecutive retriable failures that open a deployment's circuit
BREAKER_COOLDOWN_SECONDS = 30.0  # then one probe request is let through (half-open)


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class Breakers:
    """Per-process circuit breakers, one per deployment.

    Closed: traffic flows. After ``threshold`` consecutive failures: open — the deployment is skipped. After
    ``cooldown`` seconds: half-open — exactly one request probes it; success closes the circuit, failure opens
    it again for another cool-down.
    """

    def __init__(self, threshold: int = BREAKER_THRESHOLD, cooldown: float = BREAKER_COOLDOWN_SECONDS) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self._circuits: dict[int, _Circuit] = {}

    def allows(self, deployment_id: int, now: float) -> bool:
        circuit = self._circuits.get(deployment_id)
        if circuit is None or circuit.opened_at is None:
            return True
        if now - circuit.opened_at >= self.cooldown and not circuit.probing:
            circuit.probing = True
            return True
        return False

    def succeeded(self, deployment_id: int) -> None:
        self._circuits.pop(deployment_id, None)

    def failed(self, deployment_id: int, now: float) -> None:
        circuit = self._circuits.setdefault(deployment_id, _Circuit())
        circuit.failures += 1
        if circuit.probing or circuit.failures >= self.threshold:
            circuit.opened_at, circuit.probing = now, False

    def retry_after(self, deployment_ids: list[int], now: float) -> int:
        """Seconds until the first of these circuits lets a probe through."""
        waits = [
            self.cooldown - (now - c.opened_at)
            for i in deployment_ids
            if (c := self._circuits.get(i)) is not None and c.opened_at is not None
        ]
        return max(1, int(min(waits, default=1) + 0.999))

    def reset(self) -> None:
        self._circuits.clear()


# --- retries -------------------------------------------------------------------------------------------------

MAX_ATTEMPTS = 3  # per request, across deployments and retries
MAX_BACKOFF_SECONDS = 2.0


def backoff_seconds(error: GatewayError, attempt: int) -> float:
    """How long to wait before trying the same deployment again: the upstream's retry-after when it gave one
    (capped), else exponential; jittered so that many clients do not come back at the same instant."""
    retry_after = error.headers.get("retry-after", "")
    base = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 0.1 * 2 ** (attempt - 1)
    return min(base, MAX_BACKOFF_SECONDS) * random.uniform(0.5, 1.0)

"""Which deployment to try first, and what next when it fails.

Primaries (fallback_order 0) share traffic by weight — a canary at 5 % is a primary with weight 5 beside one
with 95 — and the choice is sticky per key: the same key lands on the same primary while the routes stay as
they are (a hash, no state). Fallbacks follow in their order when a try fails with a retriable error, as long
as nothing has reached the client yet.
"""

from __future__ import annotations

import zlib

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

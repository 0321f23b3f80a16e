"""Routing: weighted, sticky primaries and ordered fallbacks."""

from __future__ import annotations

import uuid
from collections import Counter

from gateway.proxy.errors import GatewayError
from gateway.proxy.routing import is_retriable, pick_primary, plan
from gateway.proxy.snapshot import Target


def _target(name: str, weight: int = 100, fallback_order: int = 0) -> Target:
    return Target(
        deployment_id=hash(name) % 1000, name=name, kind="openai_compatible", api_base="http://x", api_key="",
        model="m", timeout_seconds=5, weight=weight, fallback_order=fallback_order,
        input_price_micros_per_mtok=0, output_price_micros_per_mtok=0,
    )  # fmt: skip


def test_weights_split_traffic_across_keys_within_five_percent():
    stable, canary = _target("stable", 90), _target("canary", 10)

    counts = Counter(pick_primary((stable, canary), uuid.uuid4().hex).name for _ in range(1000))

    assert abs(counts["canary"] - 100) <= 50  # 10 % ± 5 % of 1,000 calls
    assert counts["stable"] + counts["canary"] == 1000


def test_a_key_sticks_to_its_primary():
    targets = (_target("a", 50), _target("b", 50))
    key = uuid.uuid4().hex

    assert len({pick_primary(targets, key).name for _ in range(100)}) == 1


def test_plan_is_one_primary_then_fallbacks_in_order():
    targets = (_target("p1"), _target("p2"), _target("second", fallback_order=2), _target("first", fallback_order=1))

    order = [t.name for t in plan(targets, "key")]

    assert order[0] in {"p1", "p2"}
    assert order[1:] == ["first", "second"]


def test_zero_weight_primaries_get_no_traffic():
    targets = (_target("off", 0), _target("on", 100))

    assert {pick_primary(tuple(t for t in targets if t.weight), uuid.uuid4().hex).name for _ in range(50)} == {"on"}
    assert [t.name for t in plan(targets, "k")] == ["on"]


def test_only_upstream_trouble_is_retried():
    assert is_retriable(GatewayError(429, "busy", code="rate_limit_exceeded"))
    assert is_retriable(GatewayError(504, "slow", code="upstream_timeout"))
    assert not is_retriable(GatewayError(400, "bad", code="upstream_invalid_request"))


def test_a_circuit_opens_after_consecutive_failures_and_lets_one_probe_through_after_the_cool_down():
    from gateway.proxy.routing import Breakers

    breakers = Breakers(threshold=3, cooldown=10)
    for second in range(3):
        assert breakers.allows(7, now=second)
        breakers.failed(7, now=second)

    assert not breakers.allows(7, now=5)
    assert breakers.retry_after([7], now=5) == 7  # opened at 2, cool-down 10
    assert breakers.allows(7, now=12.1)  # half-open: one probe…
    assert not breakers.allows(7, now=12.2)  # …and only one
    breakers.failed(7, now=12.3)  # the probe failed: open again
    assert not breakers.allows(7, now=20)
    assert breakers.allows(7, now=22.4)
    breakers.succeeded(7)  # the probe worked: closed
    assert breakers.allows(7, now=22.5)
    assert breakers.allows(8, now=0)  # circuits are per deployment


def test_backoff_honours_retry_after_within_a_cap():
    from gateway.proxy.routing import MAX_BACKOFF_SECONDS, backoff_seconds

    told = GatewayError(429, "busy", code="rate_limit_exceeded", headers={"retry-after": "1"})
    greedy = GatewayError(429, "busy", code="rate_limit_exceeded", headers={"retry-after": "120"})

    assert all(0.5 <= backoff_seconds(told, 1) <= 1.0 for _ in range(50))
    assert all(backoff_seconds(greedy, 1) <= MAX_BACKOFF_SECONDS for _ in range(50))
    assert all(0.05 <= backoff_seconds(GatewayError(502, "x", code="upstream_error"), 1) <= 0.1 for _ in range(50))

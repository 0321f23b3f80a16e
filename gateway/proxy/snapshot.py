"""What the hot path needs from the database, held in process memory.

- ``KeyAccess`` per key public id (subscriptions.selectors.key_access_snapshot), negative answers included;
- the ``Target`` deployments serving each (API, model alias), with decrypted provider credentials.

Entries load on first use (one thread hop to the ORM, then never again while cached), expire after
``TTL_SECONDS`` as a safety net, and are dropped at once by access_changed / routes_changed events (Redis
pub/sub in production, in-process when embedded). A warm proxied call therefore touches no database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from subscriptions.selectors import KeyAccess, key_access_snapshot

TTL_SECONDS = 60.0
# Unknown key ids are remembered too (so guessing does not hit the database twice), but only this many: anyone
# can compute a valid checksum, so an unbounded negative cache would be a memory leak on demand.
MAX_NEGATIVE_ENTRIES = 10_000


@dataclass(frozen=True)
class Target:
    """One deployment that can serve a model alias."""

    deployment_id: int
    name: str
    kind: str
    api_base: str
    api_key: str
    model: str
    timeout_seconds: int
    weight: int
    fallback_order: int
    input_price_micros_per_mtok: int
    output_price_micros_per_mtok: int


def load_targets(api_id: int) -> dict[str, tuple[Target, ...]]:
    """Model alias → deployments, for every serving version of one API (sync: runs on a cache miss only)."""
    from gateway.models import ApiVersion, Route
    from gateway.services import provider_credentials

    routes = (
        Route.objects.filter(
            version__api_id=api_id,
            version__status__in=[ApiVersion.Status.PUBLISHED, ApiVersion.Status.DEPRECATED],
            deployment__is_active=True,
        )
        .select_related("version", "deployment__provider")
        .order_by("fallback_order", "-weight", "pk")
    )
    table: dict[str, list[Target]] = {}
    for route in routes:
        deployment, provider = route.deployment, route.deployment.provider
        table.setdefault(route.version.model_alias, []).append(
            Target(
                deployment_id=deployment.pk,
                name=deployment.name,
                kind=provider.kind,
                api_base=provider.api_base,
                api_key=provider_credentials(provider).get("api_key", ""),
                model=deployment.model,
                timeout_seconds=deployment.timeout_seconds,
                weight=route.weight,
                fallback_order=route.fallback_order,
                input_price_micros_per_mtok=deployment.input_price_micros_per_mtok,
                output_price_micros_per_mtok=deployment.output_price_micros_per_mtok,
            )
        )
    return {alias: tuple(targets) for alias, targets in table.items()}


class AccessCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._keys: dict[str, tuple[float, KeyAccess | None]] = {}
        self._unknown = 0
        self._targets: dict[int, tuple[float, dict[str, tuple[Target, ...]]]] = {}

    async def key(self, public_id: str) -> KeyAccess | None:
        cached = self._keys.get(public_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        access = await sync_to_async(key_access_snapshot)(public_id)
        was_unknown = cached is not None and cached[1] is None
        if access is None and not was_unknown:
            if self._unknown >= MAX_NEGATIVE_ENTRIES:
                return None
            self._unknown += 1
        elif access is not None and was_unknown:
            self._unknown -= 1
        self._keys[public_id] = (time.monotonic() + self.ttl, access)
        return access

    async def targets(self, api_id: int, alias: str) -> tuple[Target, ...]:
        cached = self._targets.get(api_id)
        if cached is None or cached[0] <= time.monotonic():
            table = await sync_to_async(load_targets)(api_id)
            cached = (time.monotonic() + self.ttl, table)
            self._targets[api_id] = cached
        return cached[1].get(alias, ())

    def invalidate(self, message: dict[str, Any]) -> None:
        """Apply an access_changed / routes_changed event."""
        if message.get("event") == "routes_changed":
            for api_id in message.get("api_ids", []):
                self._targets.pop(api_id, None)
            return
        for public_id in message.get("key_ids", []):
            dropped = self._keys.pop(public_id, None)
            if dropped is not None and dropped[1] is None:
                self._unknown -= 1
        applications = set(message.get("application_ids", []))
        if applications:
            for public_id, (_, access) in list(self._keys.items()):
                if access is not None and access.application_id in applications:
                    del self._keys[public_id]

    def clear(self) -> None:
        self._keys.clear()
        self._targets.clear()
        self._unknown = 0

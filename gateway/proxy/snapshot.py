"""What the hot path needs from the database, held in process memory.

- ``KeyAccess`` per key public id (subscriptions.selectors.key_access_snapshot), negative answers included;
- the ``Target`` deployments serving each (API, model alias), with decrypted provider credentials, and the
  serving versions of prompt APIs (``ApiTable``);
- the ``Catalog``: which APIs serve a model alias or sit at a prompt URL, so that a key without a subscription
  hears "subscribe first" (403) where the model exists and "no such model" (404) where it does not.

Entries load on first use (one thread hop to the ORM, shared by every concurrent caller), are refreshed behind
the scenes after ``TTL_SECONDS`` (a safety net), and are dropped at once by access_changed / routes_changed
events (Redis pub/sub in production, in-process when embedded). A warm proxied call therefore touches no
database and never waits for one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from asgiref.sync import sync_to_async

from gateway.proxy.limits import Limit, per_minute
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
    limits: tuple[Limit, ...] = ()  # upstream protection: what the provider allows this deployment
    region: str = ""  # where it runs (data residency)


@dataclass(frozen=True)
class PromptVersion:
    version: str
    template: str
    schema: dict[str, Any]
    model_alias: str
    deprecated: bool
    sunset_at: datetime | None


@dataclass(frozen=True)
class ApiTable:
    """Where one API's calls go: model alias → deployments; for prompt APIs also version → template."""

    targets: dict[str, tuple[Target, ...]]
    prompts: dict[str, PromptVersion]
    current_prompt: str | None  # the version a prompt URL without one means: the newest published

    def for_alias(self, alias: str) -> tuple[Target, ...]:
        return self.targets.get(alias, ())


@dataclass(frozen=True)
class CatalogEntry:
    api_id: int
    label: str  # publisher/api
    publisher_id: int
    is_private: bool


@dataclass(frozen=True)
class Catalog:
    models: dict[str, tuple[CatalogEntry, ...]]  # chat and embeddings model aliases
    prompt_apis: dict[tuple[str, str], CatalogEntry]  # (publisher slug, api slug)

    def visible(self, entries: tuple[CatalogEntry, ...], tenant_id: int) -> list[CatalogEntry]:
        """What a key of this tenant may know exists: public/unlisted APIs, and private ones of its own tenant."""
        return [e for e in entries if not e.is_private or e.publisher_id == tenant_id]


def load_catalog() -> Catalog:
    from gateway.models import AiApi, ApiVersion

    versions = ApiVersion.objects.filter(
        status__in=[ApiVersion.Status.PUBLISHED, ApiVersion.Status.DEPRECATED]
    ).select_related("api__tenant")
    models: dict[str, dict[int, CatalogEntry]] = {}
    prompt_apis: dict[tuple[str, str], CatalogEntry] = {}
    for version in versions:
        api = version.api
        entry = CatalogEntry(
            api_id=api.pk,
            label=f"{api.tenant.slug}/{api.slug}",
            publisher_id=api.tenant_id,
            is_private=api.visibility == AiApi.Visibility.PRIVATE,
        )
        if api.kind == AiApi.Kind.PROMPT:
            prompt_apis[(api.tenant.slug, api.slug)] = entry
        elif version.model_alias:
            models.setdefault(version.model_alias, {})[api.pk] = entry
    return Catalog({alias: tuple(e.values()) for alias, e in models.items()}, prompt_apis)


def deployment_limits(deployment: Any) -> tuple[Limit, ...]:
    """Upstream protection: what the provider allows this deployment."""
    return per_minute(
        "deployment", deployment.pk, deployment.requests_per_minute, deployment.tokens_per_minute,
        f"deployment {deployment.name}",
    )  # fmt: skip


def load_targets(api_id: int) -> ApiTable:
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
                limits=deployment_limits(deployment),
                region=deployment.region,
            )
        )
    serving = list(
        ApiVersion.objects.filter(
            api_id=api_id, status__in=[ApiVersion.Status.PUBLISHED, ApiVersion.Status.DEPRECATED]
        ).order_by("created_at", "pk")
    )
    prompts = {
        v.version: PromptVersion(
            version=v.version,
            template=v.prompt_template,
            schema=v.variables_schema or {},
            model_alias=v.model_alias,
            deprecated=v.status == ApiVersion.Status.DEPRECATED,
            sunset_at=v.sunset_at,
        )
        for v in serving
        if v.prompt_template
    }
    newest = [p for p in prompts.values() if not p.deprecated] or list(prompts.values())
    return ApiTable(
        targets={alias: tuple(targets) for alias, targets in table.items()},
        prompts=prompts,
        current_prompt=newest[-1].version if newest else None,
    )


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Entries(Generic[K, V]):
    """One kind of cached answer: hits from memory, one load at a time per key, stale-while-revalidate.

    - A miss starts one load (a thread hop to the ORM); concurrent callers for the same key await that load
      instead of queueing their own behind it on the one sync thread (a thundering herd: at 128 connections an
      expiring key used to stall every request in flight for hundreds of milliseconds).
    - An entry past its TTL is still answered while one refresh runs behind it: the TTL is only a safety net,
      changes arrive as events, and ``drop``/``clear`` remove entries at once — nothing dropped is ever served.
    - A load that was in flight when its key was dropped answers its waiters but is not kept (it may have read
      the database before the change committed).
    - ``None`` answers (unknown keys) are kept too, but at most ``max_none`` of them.
    """

    def __init__(self, load: Callable[[K], V], *, ttl: float, max_none: int | None = None) -> None:
        self._load, self.ttl, self.max_none = load, ttl, max_none
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}
        self._nones = 0
        self._generation = 0

    async def get(self, key: K) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] <= time.monotonic() and key not in self._loading:
                self._start_load(key)  # refresh behind the scenes; keep answering what we have
            return entry[1]
        task = self._loading.get(key) or self._start_load(key)
        return await asyncio.shield(task)

    def _start_load(self, key: K) -> asyncio.Task[V]:
        generation = self._generation
        task = asyncio.ensure_future(sync_to_async(self._load)(key))
        self._loading[key] = task

        def landed(task: asyncio.Task[V]) -> None:
            if self._loading.get(key) is task:
                del self._loading[key]
            if task.cancelled() or task.exception() is not None:
                return  # waiters see the error; a stale entry, if any, stays until the next attempt
            if generation == self._generation:
                self._store(key, task.result())

        task.add_done_callback(landed)
        return task

    def _store(self, key: K, value: V) -> None:
        previous = self._entries.get(key)
        was_none = previous is not None and previous[1] is None
        if value is None and not was_none:
            if self.max_none is not None and self._nones >= self.max_none:
                self._entries.pop(key, None)
                return
            self._nones += 1
        elif value is not None and was_none:
            self._nones -= 1
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def drop(self, keys: Iterable[K]) -> None:
        self._generation += 1
        for key in keys:
            dropped = self._entries.pop(key, None)
            if dropped is not None and dropped[1] is None:
                self._nones -= 1

    def items(self) -> list[tuple[K, V]]:
        return [(key, value) for key, (_, value) in self._entries.items()]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._nones = 0

    def __len__(self) -> int:
        return len(self._entries)


_CATALOG = "catalog"


class AccessCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        # The loaders look their functions up when called (tests replace them).
        self._keys: _Entries[str, KeyAccess | None] = _Entries(
            lambda public_id: key_access_snapshot(public_id), ttl=ttl, max_none=MAX_NEGATIVE_ENTRIES
        )
        self._tables: _Entries[int, ApiTable] = _Entries(lambda api_id: load_targets(api_id), ttl=ttl)
        self._catalog: _Entries[str, Catalog] = _Entries(lambda _: load_catalog(), ttl=ttl)

    async def key(self, public_id: str) -> KeyAccess | None:
        return await self._keys.get(public_id)

    async def table(self, api_id: int) -> ApiTable:
        return await self._tables.get(api_id)

    async def catalog(self) -> Catalog:
        """Only consulted when a key asks for something it has no grant for (the unhappy path)."""
        return await self._catalog.get(_CATALOG)

    def invalidate(self, message: dict[str, Any]) -> None:
        """Apply an access_changed / routes_changed event."""
        if message.get("event") == "routes_changed":
            self._tables.drop(message.get("api_ids", []))
            self._catalog.clear()
            return
        if message.get("everything"):
            self._keys.clear()
            return
        keys = list(message.get("key_ids", []))
        applications = set(message.get("application_ids", []))
        if applications:
            keys += [
                k for k, access in self._keys.items() if access is not None and access.application_id in applications
            ]
        self._keys.drop(keys)

    def clear(self) -> None:
        self._keys.clear()
        self._tables.clear()
        self._catalog.clear()

"""What the hot path needs from the database, held in process memory.

- ``KeyAccess`` per key public id (subscriptions.selectors.key_access_snapshot), negative answers included;
- the ``Target`` deployments serving each (API, model alias), with decrypted provider credentials, and the
  serving versions of prompt APIs (``ApiTable``);
- the ``Catalog``: which APIs serve a model alias or sit at a prompt URL, so that a key without a subscription
  hears "subscribe first" (403) where the model exists and "no such model" (404) where it does not.

Entries load on first use (one thread hop to the ORM, then never again while cached), expire after
``TTL_SECONDS`` as a safety net, and are dropped at once by access_changed / routes_changed events (Redis
pub/sub in production, in-process when embedded). A warm proxied call therefore touches no database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
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


class AccessCache:
    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._keys: dict[str, tuple[float, KeyAccess | None]] = {}
        self._unknown = 0
        self._targets: dict[int, tuple[float, ApiTable]] = {}
        self._catalog: tuple[float, Catalog] | None = None

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

    async def table(self, api_id: int) -> ApiTable:
        cached = self._targets.get(api_id)
        if cached is None or cached[0] <= time.monotonic():
            table = await sync_to_async(load_targets)(api_id)
            cached = (time.monotonic() + self.ttl, table)
            self._targets[api_id] = cached
        return cached[1]

    async def catalog(self) -> Catalog:
        """Only consulted when a key asks for something it has no grant for (the unhappy path)."""
        if self._catalog is None or self._catalog[0] <= time.monotonic():
            self._catalog = (time.monotonic() + self.ttl, await sync_to_async(load_catalog)())
        return self._catalog[1]

    def invalidate(self, message: dict[str, Any]) -> None:
        """Apply an access_changed / routes_changed event."""
        if message.get("event") == "routes_changed":
            for api_id in message.get("api_ids", []):
                self._targets.pop(api_id, None)
            self._catalog = None
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
        self._catalog = None
        self._unknown = 0

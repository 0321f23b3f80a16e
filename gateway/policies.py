"""Resource policies: the rules document, where policies attach, and how they combine into one effective policy.

A policy is a small JSON document of rules (``RULES_SCHEMA``) attached at one level. Two sides meet in a call:

- **The publisher's side** — platform default → publisher tenant → API → API version → plan. For each rule the
  most specific level that sets it wins (a plan's own limits are its plan-level rules). These rules are counted
  **per subscription**: "Standard: 120 requests/min" means each subscription on Standard gets 120.
- **The consumer's side** — consumer tenant → application → key. Each of these counts **its own subject**
  (a tenant-wide 1,000 requests/min is shared by all the tenant's keys), on top of the publisher's limits; a call
  must fit every one. So a consumer's policy can only tighten what the publisher grants, never loosen it.

``effective_policy`` runs when a key's access snapshot is built (subscriptions.selectors), never per call; the
result is plain data the gateway carries in memory, and the pages that explain limits ("why was I limited?")
show the very same objects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import regex

from gateway.proxy import pii
from gateway.proxy.limits import Limit, Quota, per_minute
from gateway.proxy.pii import PiiRules

# When a request names no max_tokens, its completion is reserved (and, when not streamed, capped) at this many
# tokens unless a policy says otherwise.
DEFAULT_MAX_TOKENS = 4096
DEFAULT_ALERTS = (50, 80, 100)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_COUNT = {"type": "integer", "minimum": 1, "maximum": 10**15}

RULES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://gatehouse.dev/schemas/policy-rules.json",
    "title": "Gatehouse policy rules",
    "description": "Rules attached at one level (platform, publisher, API, version, consumer, application, key).",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "rate_limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "requests_per_minute": {**_COUNT, "maximum": 10**9},
                "tokens_per_minute": {**_COUNT, "maximum": 10**12},
            },
        },
        "quota": {
            "type": "object",
            "description": "Per calendar period in the consumer tenant's timezone. Money in integer micro-USD.",
            "additionalProperties": False,
            "properties": {
                "period": {"enum": ["day", "month"]},
                "requests": _COUNT,
                "tokens": _COUNT,
                "cost_micros": _COUNT,
                "grace_percent": {"type": "integer", "minimum": 0, "maximum": 100},
                "alert_at_percent": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": 100},
                    "uniqueItems": True,
                    "maxItems": 10,
                },
            },
        },
        "max_tokens": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"default": {"type": "integer", "minimum": 1, "maximum": 1_000_000}},
        },
        "cache": {
            "type": "object",
            "description": "Exact-match answers for deterministic requests (gateway/proxy/cache.py).",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "ttl_seconds": {"type": "integer", "minimum": 1, "maximum": 86_400},
            },
        },
        "payloads": {
            "type": "object",
            "description": "Keep each call's prompt and answer in the call log, masked (every kind of personal "
            "data and secret the PII detectors know replaced), for retention_days (analytics.CallPayload).",
            "additionalProperties": False,
            "properties": {
                "log": {"type": "boolean"},
                "retention_days": {"type": "integer", "minimum": 1, "maximum": 365},
            },
        },
        "pii": {
            "type": "object",
            "description": "Personal data and secrets in requests and answers (gateway/proxy/pii.py).",
            "additionalProperties": False,
            "properties": {
                "entities": {
                    "type": "object",
                    "propertyNames": {"enum": list(pii.ENTITIES)},
                    "additionalProperties": {"enum": list(pii.ACTIONS)},
                },
                "custom": {
                    "type": "array",
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "pattern", "action"],
                        "properties": {
                            "name": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]{0,30}$"},
                            "pattern": {"type": "string", "minLength": 1, "maxLength": 500},
                            "action": {"enum": list(pii.ACTIONS)},
                        },
                    },
                },
            },
        },
        "injection": {
            "type": "object",
            "description": "The prompt-injection guard (gateway/proxy/injection.py) on every message of a request.",
            "additionalProperties": False,
            "properties": {
                "action": {"enum": ["flag", "block"]},
                "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            },
        },
        "output": {
            "type": "object",
            "description": "What answers may not contain: deny-terms and leaked secrets.",
            "additionalProperties": False,
            "properties": {
                "deny_terms": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 2, "maxLength": 200},
                    "maxItems": 500,
                },
                "secrets": {"type": "boolean"},
                "action": {"enum": ["mask", "block"]},
            },
        },
        "access": {
            "type": "object",
            "description": "Who may call from where and when. Every level's rules must pass (they only add up).",
            "additionalProperties": False,
            "properties": {
                "ip_allow": {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 200},
                "ip_deny": {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 200},
                "hours": {
                    "type": "object",
                    "description": "A daily window in the consumer tenant's timezone ('to' before 'from': overnight).",
                    "additionalProperties": False,
                    "required": ["from", "to"],
                    "properties": {
                        "days": {"type": "array", "items": {"enum": list(DAYS)}, "uniqueItems": True, "minItems": 1},
                        "from": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                        "to": {"type": "string", "pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"},
                    },
                },
                "regions": {
                    "type": "array",
                    "description": "Data residency: calls only go to deployments in these regions.",
                    "items": {"type": "string", "pattern": "^[a-z0-9-]{1,20}$"},
                    "uniqueItems": True,
                    "minItems": 1,
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(RULES_SCHEMA)

# The rules, by path; the publisher's side merges them one by one.
FIELDS: tuple[tuple[str, str], ...] = (
    ("rate_limits", "requests_per_minute"),
    ("rate_limits", "tokens_per_minute"),
    ("quota", "period"),
    ("quota", "requests"),
    ("quota", "tokens"),
    ("quota", "cost_micros"),
    ("quota", "grace_percent"),
    ("quota", "alert_at_percent"),
    ("max_tokens", "default"),
    ("cache", "enabled"),
    ("cache", "ttl_seconds"),
    ("payloads", "log"),
    ("payloads", "retention_days"),
)
DEFAULT_CACHE_TTL = 300
DEFAULT_PAYLOAD_DAYS = 7
CACHE_PATHS = (("cache", "enabled"), ("cache", "ttl_seconds"))
PAYLOAD_PATHS = (("payloads", "log"), ("payloads", "retention_days"))
QUOTA_METRICS = (("requests", "requests"), ("tokens", "tokens"), ("cost_micros", "cost"))


class RulesError(ValueError):
    """A rules document that does not follow RULES_SCHEMA; the message says where and why."""


def validate_rules(rules: Any) -> dict[str, Any]:
    """The rules, checked against ``RULES_SCHEMA``; raises ``RulesError`` naming the first problem."""
    error = next(iter(sorted(_VALIDATOR.iter_errors(rules), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "the document"
        raise RulesError(f"{where}: {error.message}")
    for index, detector in enumerate(rules.get("pii", {}).get("custom", ())):
        try:
            regex.compile(detector["pattern"])
        except regex.error as error:
            raise RulesError(f"pii.custom.{index}.pattern: not a valid pattern ({error})") from None
    for listing in ("ip_allow", "ip_deny"):
        for index, network in enumerate(rules.get("access", {}).get(listing, ())):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise RulesError(f"access.{listing}.{index}: {network!r} is not an IP address or network") from None
    return dict(rules)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class InjectionRules:
    action: str  # "flag" (a header and a log line) or "block" (400 prompt_injection_detected)
    threshold: float | None  # the classifier's; None: the model's own (≤ 1 % false positives in training)
    source: str


@dataclass(frozen=True)
class OutputFilter:
    deny_terms: tuple[str, ...]  # case-folded
    secrets: bool  # API keys, private keys and the like may not leave in an answer
    action: str  # "mask" or "block" (the answer is withheld: finish_reason "content_filter")
    source: str


@dataclass(frozen=True)
class AccessRule:
    """One level's access rules, parsed: a call must pass every level's."""

    source: str
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    days: frozenset[int] = frozenset()  # 0 = Monday; empty: every day
    start: int | None = None  # minutes after local midnight
    end: int | None = None
    timezone: str = "UTC"

    def refuses_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        if address is None:
            return bool(self.allow)
        if any(address in network for network in self.deny):
            return True
        return bool(self.allow) and not any(address in network for network in self.allow)

    def refuses_time(self, now: float) -> bool:
        if self.start is None or self.end is None:
            return False
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            inside, day = self.start <= minute < self.end, local.weekday()
        else:  # spans midnight: the early hours belong to the window that opened the day before
            inside = minute >= self.start or minute < self.end
            day = local.weekday() if minute >= self.start else (local.weekday() - 1) % 7
        return not inside or (bool(self.days) and day not in self.days)

    def describe_hours(self) -> str:
        if self.start is None or self.end is None:
            return ""
        days = ", ".join(DAYS[d] for d in sorted(self.days)) if self.days else "every day"
        return f"{days} {_clock(self.start)} to {_clock(self.end)} ({self.timezone})"


def _access_rule(source: str, access: Mapping[str, Any], timezone: str) -> AccessRule | None:
    hours = access.get("hours")
    rule = AccessRule(
        source=source,
        allow=tuple(ipaddress.ip_network(n, strict=False) for n in access.get("ip_allow", ())),
        deny=tuple(ipaddress.ip_network(n, strict=False) for n in access.get("ip_deny", ())),
        days=frozenset(DAYS.index(d) for d in hours.get("days", ())) if hours else frozenset(),
        start=_minutes(hours["from"]) if hours else None,
        end=_minutes(hours["to"]) if hours else None,
        timezone=timezone,
    )
    return rule if rule.allow or rule.deny or rule.start is not None else None


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class EffectivePolicy:
    """What applies to a call through one grant: plain data, computed when the snapshot is built."""

    limits: tuple[Limit, ...] = ()
    quotas: tuple[Quota, ...] = ()
    max_tokens_default: int = DEFAULT_MAX_TOKENS
    max_tokens_source: str = "platform default"
    access: tuple[AccessRule, ...] = ()
    regions: frozenset[str] | None = None  # data residency: None is anywhere
    regions_source: str = ""
    cache_ttl: int | None = None  # seconds answers are cached; None: no caching
    cache_source: str = ""
    payload_days: int | None = None  # days masked prompts and answers are kept; None: not logged
    payload_source: str = ""
    pii: PiiRules = field(default_factory=PiiRules)  # personal data and secrets
    injection: InjectionRules | None = None
    output: OutputFilter | None = None

    @property
    def spends(self) -> bool:
        """Whether a call must reserve tokens or money before it goes (a tokens or cost quota applies)."""
        return any(q.metric in ("tokens", "cost") for q in self.quotas)


Layer = tuple[str, Mapping[str, Any]]  # (where it was set, e.g. "publisher acme", its rules)


def _get(rules: Mapping[str, Any], path: tuple[str, str]) -> Any:
    section = rules.get(path[0])
    return section.get(path[1]) if isinstance(section, Mapping) else None


def publisher_rules(layers: Sequence[Layer]) -> dict[tuple[str, str], tuple[Any, str]]:
    """Rule by rule, the value of the most specific layer that sets it (layers go from general to specific)."""
    merged: dict[tuple[str, str], tuple[Any, str]] = {}
    for source, rules in layers:
        for path in FIELDS:
            value = _get(rules, path)
            if value is not None:
                merged[path] = (value, source)
    return merged


def _quotas(
    scope: str,
    subject: object,
    rules: Mapping[tuple[str, str], tuple[Any, str]],
    tenant_id: int,
    timezone: str,
    periods: Mapping[str, str] | None = None,
) -> list[Quota]:
    """``periods``: the period each level names for its own quotas — a quota counts per the period of the level
    that set it (a plan's monthly budget stays monthly under a publisher's daily request quota)."""
    default_period = rules.get(("quota", "period"), ("month", ""))[0]
    grace = rules.get(("quota", "grace_percent"), (0, ""))[0]
    alerts = tuple(sorted(rules.get(("quota", "alert_at_percent"), (DEFAULT_ALERTS, ""))[0]))
    quotas = []
    for name, metric in QUOTA_METRICS:
        if ("quota", name) in rules:
            value, source = rules[("quota", name)]
            period = (periods or {}).get(source, default_period)
            quotas.append(Quota(scope, str(subject), metric, value, period, timezone, grace, alerts, source, tenant_id))
    return quotas


def _as_rules(source: str, rules: Mapping[str, Any]) -> dict[tuple[str, str], tuple[Any, str]]:
    return {path: (value, source) for path in FIELDS if (value := _get(rules, path)) is not None}


def effective_policy(
    *,
    subscription_id: int,
    publisher_layers: Sequence[Layer],
    consumer_layers: Sequence[tuple[str, object, Layer]],
    tenant_id: int,
    timezone: str,
) -> EffectivePolicy:
    """Combine both sides (see the module docstring). ``consumer_layers``: (scope, subject id, layer) for the
    consumer tenant, the application and the key that have a policy."""
    merged = publisher_rules(publisher_layers)
    limits: list[Limit] = []
    quotas: list[Quota] = []

    def rate_limits(scope: str, subject: object, rules: Mapping[tuple[str, str], tuple[Any, str]]) -> None:
        requests = rules.get(("rate_limits", "requests_per_minute"))
        tokens = rules.get(("rate_limits", "tokens_per_minute"))
        if requests is not None:
            limits.extend(per_minute(scope, subject, requests[0], None, requests[1]))
        if tokens is not None:
            limits.extend(per_minute(scope, subject, None, tokens[0], tokens[1]))

    rate_limits("subscription", subscription_id, merged)
    periods = {
        source: rules["quota"]["period"]
        for source, rules in publisher_layers
        if (rules.get("quota") or {}).get("period")
    }
    quotas += _quotas("subscription", subscription_id, merged, tenant_id, timezone, periods)
    default, default_source = merged.get(("max_tokens", "default"), (DEFAULT_MAX_TOKENS, "platform default"))
    # Caching and payload logging: the most specific level that says wins, the consumer's levels being the
    # most specific (so a consumer can turn logging of its prompts off, or on).
    cache = {path[1]: merged[path] for path in CACHE_PATHS if path in merged}
    payloads = {path[1]: merged[path] for path in PAYLOAD_PATHS if path in merged}
    for scope, subject, (source, rules) in consumer_layers:
        own = _as_rules(source, rules)
        cache |= {path[1]: own[path] for path in CACHE_PATHS if path in own}
        payloads |= {path[1]: own[path] for path in PAYLOAD_PATHS if path in own}
        rate_limits(scope, subject, own)
        quotas += _quotas(scope, subject, own, tenant_id, timezone)
        if ("max_tokens", "default") in own and own[("max_tokens", "default")][0] < default:
            default, default_source = own[("max_tokens", "default")]
    # Access rules of every level, on both sides, add up: each must pass; allowed regions intersect.
    access: list[AccessRule] = []
    regions: frozenset[str] | None = None
    region_sources: list[str] = []
    for source, rules in [*publisher_layers, *(layer for _, _, layer in consumer_layers)]:
        section = rules.get("access") or {}
        rule = _access_rule(source, section, timezone)
        if rule is not None:
            access.append(rule)
        if section.get("regions"):
            regions = frozenset(section["regions"]) & (
                regions if regions is not None else frozenset(section["regions"])
            )
            region_sources.append(source)
    enabled, cache_source = cache.get("enabled", (False, ""))
    logged, payload_source = payloads.get("log", (False, ""))
    layers = [*publisher_layers, *(layer for _, _, layer in consumer_layers)]
    return EffectivePolicy(
        tuple(limits),
        tuple(quotas),
        default,
        default_source,
        tuple(access),
        regions,
        ", ".join(region_sources),
        cache_ttl=cache.get("ttl_seconds", (DEFAULT_CACHE_TTL, ""))[0] if enabled else None,
        cache_source=cache_source,
        payload_days=payloads.get("retention_days", (DEFAULT_PAYLOAD_DAYS, ""))[0] if logged else None,
        payload_source=payload_source,
        pii=_pii_rules(layers),
        injection=_injection_rules(layers),
        output=_output_filter(layers),
    )


def _injection_rules(layers: Sequence[Layer]) -> InjectionRules | None:
    """Every level that turns the guard on counts: block beats flag, the lowest threshold wins."""
    found = [(source, rules["injection"]) for source, rules in layers if rules.get("injection")]
    if not found:
        return None
    action = "block" if any(section.get("action", "block") == "block" for _, section in found) else "flag"
    thresholds = [section["threshold"] for _, section in found if "threshold" in section]
    return InjectionRules(action, min(thresholds) if thresholds else None, ", ".join(source for source, _ in found))


def _output_filter(layers: Sequence[Layer]) -> OutputFilter | None:
    found = [(source, rules["output"]) for source, rules in layers if rules.get("output")]
    if not found:
        return None
    terms = sorted({term.casefold() for _, section in found for term in section.get("deny_terms", ())})
    return OutputFilter(
        deny_terms=tuple(terms),
        secrets=any(section.get("secrets", False) for _, section in found),
        action="block" if any(section.get("action") == "block" for _, section in found) else "mask",
        source=", ".join(source for source, _ in found),
    )


def _stricter(first: str, second: str) -> str:
    return max(first, second, key=pii.ACTIONS.index)


def _pii_rules(layers: Sequence[Layer]) -> PiiRules:
    """Every level's PII rules apply: per kind of data (and per tenant-defined pattern) the strictest action."""
    actions: dict[str, str] = {}
    custom: dict[str, pii.CustomDetector] = {}
    sources: list[str] = []
    for source, rules in layers:
        section = rules.get("pii") or {}
        for entity, action in (section.get("entities") or {}).items():
            actions[entity] = _stricter(actions.get(entity, action), action)
        for detector in section.get("custom") or ():
            known = custom.get(detector["name"])
            action = _stricter(known.action, detector["action"]) if known else detector["action"]
            pattern = known.pattern if known else detector["pattern"]
            custom[detector["name"]] = pii.CustomDetector(detector["name"], pattern, action)
        if section.get("entities") or section.get("custom"):
            sources.append(source)
    return PiiRules(tuple(sorted(actions.items())), tuple(custom.values()), ", ".join(sources))


def plan_rules(plan: Any, extra_tokens: int = 0) -> dict[str, Any]:
    """A plan's own limits as a rules document (the plan level of the publisher's side). Its period counts only
    where it sets a quota of its own."""
    rules: dict[str, Any] = {"rate_limits": {}, "quota": {}}
    if plan.requests_per_minute:
        rules["rate_limits"]["requests_per_minute"] = plan.requests_per_minute
    if plan.tokens_per_minute:
        rules["rate_limits"]["tokens_per_minute"] = plan.tokens_per_minute
    if plan.token_quota:
        rules["quota"]["tokens"] = plan.token_quota + extra_tokens
    if plan.cost_quota_micros:
        rules["quota"]["cost_micros"] = plan.cost_quota_micros
    if rules["quota"]:
        rules["quota"]["period"] = plan.quota_period
    if plan.regions:
        rules["access"] = {"regions": list(plan.regions)}
    return rules

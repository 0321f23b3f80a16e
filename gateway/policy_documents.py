"""Policy as code: a tenant's plans and policies as one YAML document — its schema, parsing, and a readable diff.

The document (``DOCUMENT_SCHEMA``, published at ``/schemas/policies.json``)::

    gatehouse: policies/v1
    tenant: acme
    publisher:                    # what the tenant sets as a publisher
      policy: {rules}             #   on every API it publishes
      apis:
        assistant:
          policy: {rules}         #   on one API
          versions: {v1: {rules}} #   on one version
          plans:                  #   its plans (each named one is created or updated; unnamed ones are left alone)
            free: {name: Free, requests_per_minute: 60, …}
    consumer:                     # what the tenant sets as a consumer
      policy: {rules}             #   on all its applications together
      applications:
        web:
          policy: {rules}         #   on one application
          keys: {AbCd1234: {rules}}  # on one key, by its public id

``{rules}`` is gateway/policies.py ``RULES_SCHEMA``. Reading and writing the database is in gateway/selectors.py
(``policy_document_of``) and gateway/services.py (``policy_document_apply``); this module is pure.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import yaml

from gateway.policies import RULES_SCHEMA

FORMAT = "policies/v1"
MAX_DOCUMENT_BYTES = 1_000_000
PLAN_DEFAULTS: dict[str, Any] = {
    "description": "",
    "requests_per_minute": None,
    "tokens_per_minute": None,
    "quota_period": "month",
    "token_quota": None,
    "cost_quota_micros": None,
    "allowed_models": [],
    "regions": [],
    "requires_approval": None,
    "is_active": True,
}
_SLUG = "^[-a-zA-Z0-9_]{1,50}$"
_RULES = {"$ref": "#/$defs/rules"}
_COUNT = {"type": ["integer", "null"], "minimum": 1}

DOCUMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://gatehouse.dev/schemas/policies.json",
    "title": "Gatehouse policies of one tenant",
    "type": "object",
    "additionalProperties": False,
    "required": ["gatehouse", "tenant"],
    "properties": {
        "gatehouse": {"const": FORMAT},
        "tenant": {"type": "string", "pattern": _SLUG},
        "publisher": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "policy": _RULES,
                "apis": {
                    "type": "object",
                    "propertyNames": {"pattern": _SLUG},
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "policy": _RULES,
                            "versions": {"type": "object", "additionalProperties": _RULES},
                            "plans": {
                                "type": "object",
                                "propertyNames": {"pattern": _SLUG},
                                "additionalProperties": {"$ref": "#/$defs/plan"},
                            },
                        },
                    },
                },
            },
        },
        "consumer": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "policy": _RULES,
                "applications": {
                    "type": "object",
                    "propertyNames": {"pattern": _SLUG},
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "policy": _RULES,
                            "keys": {
                                "type": "object",
                                "propertyNames": {"pattern": "^[A-Za-z0-9]{8}$"},
                                "additionalProperties": _RULES,
                            },
                        },
                    },
                },
            },
        },
    },
    "$defs": {
        "rules": {k: v for k, v in RULES_SCHEMA.items() if not k.startswith("$")},
        "plan": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "description": {"type": "string", "maxLength": 300},
                "requests_per_minute": _COUNT,
                "tokens_per_minute": _COUNT,
                "quota_period": {"enum": ["day", "month"]},
                "token_quota": _COUNT,
                "cost_quota_micros": _COUNT,
                "allowed_models": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "regions": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "requires_approval": {"type": ["boolean", "null"]},
                "is_active": {"type": "boolean"},
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(DOCUMENT_SCHEMA)


class DocumentError(ValueError):
    """A document that cannot be read or breaks the schema; the message says where."""


def parse(text: str) -> dict[str, Any]:
    """The document in ``text`` (YAML, of which JSON is a subset), validated against ``DOCUMENT_SCHEMA``."""
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise DocumentError("The document is larger than 1 MB.")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DocumentError(f"This is not valid YAML{where}.") from None
    return validate(document)


def validate(document: Any) -> dict[str, Any]:
    error = next(iter(sorted(_VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "the document"
        raise DocumentError(f"{where}: {error.message}")
    return dict(document)


def to_yaml(document: dict[str, Any], version: int | None = None) -> str:
    header = f"# Gatehouse policies of tenant {document['tenant']}"
    header += f" (version {version})" if version else ""
    header += ". Check a change with: python manage.py policies apply FILE --dry-run\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def _flat(value: Any, path: str, into: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flat(inner, f"{path}.{key}" if path else str(key), into)
    else:
        into[path] = value
    return into


def diff(current: dict[str, Any], proposed: dict[str, Any]) -> list[str]:
    """What applying ``proposed`` over ``current`` changes, one readable line per setting:
    ``+ path: value`` (added), ``- path: value`` (removed), ``~ path: old → new`` (changed)."""
    before, after = _flat(current, "", {}), _flat(proposed, "", {})
    lines = []
    for path in sorted(before.keys() | after.keys()):
        if path not in before:
            lines.append(f"+ {path}: {_show(after[path])}")
        elif path not in after:
            lines.append(f"- {path}: {_show(before[path])}")
        elif before[path] != after[path]:
            lines.append(f"~ {path}: {_show(before[path])} → {_show(after[path])}")
    return lines


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def plan_entry(plan: Any) -> dict[str, Any]:
    """A plan as the document writes it: its name, then only what differs from the defaults."""
    entry: dict[str, Any] = {"name": plan.name}
    for field, default in PLAN_DEFAULTS.items():
        value = getattr(plan, field)
        value = str(value) if field == "quota_period" else value
        if value != default:
            entry[field] = value
    return entry


def plan_settings(entry: dict[str, Any]) -> dict[str, Any]:
    """A plan's document entry as model fields (what the entry leaves out takes its default)."""
    return {"name": entry["name"], **{field: entry.get(field, default) for field, default in PLAN_DEFAULTS.items()}}

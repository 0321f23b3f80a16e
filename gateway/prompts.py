"""Prompt templates: ``{name}`` placeholders filled by safe substitution, variables checked by a JSON schema.

Rendering is plain text replacement — no template engine, so a template or a variable can never evaluate code,
reach attributes or include files. ``{{`` and ``}}`` stand for literal braces. A placeholder must be a plain
name (letters, digits, underscore); anything else between braces stays as written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")
MAX_RENDERED_CHARS = 200_000


class PromptError(ValueError):
    """A template, schema or set of variables that cannot be used; the message is for the person who sent it."""


def placeholders(template: str) -> set[str]:
    return {m[1] for m in _TOKEN.finditer(template) if m[1]}


def check_template(template: str, schema: dict[str, Any]) -> None:
    """For publishers: the schema is valid JSON Schema and declares every placeholder of the template."""
    if not template.strip():
        raise PromptError("A prompt API version needs a prompt template.")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise PromptError(f"The variables schema is not valid JSON Schema: {error.message}") from None
    declared = set((schema.get("properties") or {}).keys())
    undeclared = sorted(placeholders(template) - declared)
    if undeclared:
        raise PromptError(f"The template uses variables the schema does not declare: {', '.join(undeclared)}.")


def check_variables(schema: dict[str, Any], variables: Any) -> None:
    """For callers: the variables match the version's schema (the first problem is reported, with its path)."""
    if not isinstance(variables, dict):
        raise PromptError("'variables' must be a JSON object.")
    error = next(iter(sorted(Draft202012Validator(schema).iter_errors(variables), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise PromptError(f"variables{'/' + where if where else ''}: {error.message}")


def render(template: str, variables: dict[str, Any]) -> str:
    """Fill the placeholders; strings go in as they are, other values as JSON. Missing ones are an error."""

    def fill(match: re.Match[str]) -> str:
        if match[0] == "{{":
            return "{"
        if match[0] == "}}":
            return "}"
        name = match[1]
        if name not in variables:
            raise PromptError(f"variables: '{name}' is required by the template.")
        value = variables[name]
        return value if isinstance(value, str) else json.dumps(value)

    rendered = _TOKEN.sub(fill, template)
    if len(rendered) > MAX_RENDERED_CHARS:
        raise PromptError("The rendered prompt is too long.")
    return rendered

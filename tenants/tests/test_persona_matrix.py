"""Every tenant-scoped URL, as every persona: owner, each lesser role, an outsider (another tenant) and anonymous.

The URLs are collected from the URL conf (any route with ``<tenant_slug>``), so a new page or endpoint is
covered the moment it is added — and fails here until it says what a valid request looks like (SAMPLES).
The expected status comes from the permission table (tenants/permissions.py), not from a hand-written list.
Denied requests must leave the database exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from gateway.forms import PolicyDocumentForm
from tenants.models import AuditEvent, Invitation, Membership, PersonalAccessToken, Tenant
from tenants.permissions import ROLE_PERMISSIONS, Role
from tenants.tests.fixtures import World

PERSONAS = ["owner", "admin", "developer", "finance", "viewer", "outsider", "anonymous"]

# How to call each route: URL kwargs beyond the tenant, and a valid body per method that writes.
KWARGS: dict[str, Callable[[World], Any]] = {
    "member_id": lambda w: w.memberships["viewer"].pk,
    "invitation_id": lambda w: w.invitation.pk,
    "app_slug": lambda w: w.extra["web"].slug,
    "key_id": lambda w: w.extra["key"].pk,
    "subscription_id": lambda w: w.extra["approved"].pk,
    "change_id": lambda w: w.extra["change"].pk,
    "publisher_slug": lambda w: w.tenant.slug,
    "api_slug": lambda w: w.extra["api"].slug,
    "version": lambda w: "v1",
    "provider_id": lambda w: w.extra["provider"].pk,
    "number": lambda w: 1,
    "event_id": lambda w: w.extra["call"].event_id,
    "rule_id": lambda w: w.extra["alert_rule"].pk,
    "year": lambda w: 2026,
    "month": lambda w: 11,
}
POLICY_DOCUMENT = (
    "gatehouse: policies/v1\ntenant: tenant-a\nconsumer:\n  policy:\n    rate_limits: {requests_per_minute: 50}\n"
)
# Where one route needs another object than the kwarg's default.
ROUTE_KWARGS: dict[str, dict[str, Callable[[World], Any]]] = {
    "tenants:decide-subscription": {"subscription_id": lambda w: w.extra["pending"].pk},
    "api:subscription-decision": {"subscription_id": lambda w: w.extra["pending"].pk},
}
SAMPLES: dict[tuple[str, str], Callable[[World], dict[str, Any]]] = {
    ("tenants:invite", "POST"): lambda w: {"email": "new@a.test", "role": "viewer"},
    ("tenants:member-role", "POST"): lambda w: {"role": "developer"},
    ("tenants:member-remove", "POST"): lambda w: {},
    ("tenants:invitation-revoke", "POST"): lambda w: {},
    ("tenants:leave", "POST"): lambda w: {},
    ("tenants:transfer", "POST"): lambda w: {"membership": w.memberships["admin"].pk},
    ("tenants:settings", "POST"): lambda w: {
        "name": "Tenant A2",
        "default_region": "us",
        "timezone": "Europe/Berlin",
    },
    ("tenants:applications", "POST"): lambda w: {"name": "New", "slug": "new-app"},
    ("tenants:application-delete", "POST"): lambda w: {},
    ("tenants:key-create", "POST"): lambda w: {"name": "k", "expires_in_days": "90"},
    ("tenants:key-rotate", "POST"): lambda w: {"grace_hours": "24"},
    ("tenants:key-revoke", "POST"): lambda w: {},
    ("tenants:subscribe", "POST"): lambda w: {"application": "fresh", "plan": "standard", "justification": "x"},
    ("tenants:change-request", "POST"): lambda w: {"new_plan": "large", "extra_tokens": "0", "justification": "x"},
    ("tenants:decide-subscription", "POST"): lambda w: {"decision": "approve"},
    ("tenants:decide-change", "POST"): lambda w: {"decision": "approve"},
    ("tenants:subscriber-action", "POST"): lambda w: {"action": "suspend"},
    ("tenants:apis", "POST"): lambda w: {
        "name": "Embed",
        "slug": "embed",
        "kind": "embeddings",
        "visibility": "public",
    },
    ("tenants:api", "POST"): lambda w: {"name": "Assistant 2", "visibility": "public"},
    ("tenants:version-create", "POST"): lambda w: {"version": "v2", "model_alias": "gpt-4o"},
    ("tenants:version-status", "POST"): lambda w: {"status": "retired"},
    ("tenants:plan-create", "POST"): lambda w: {
        "name": "XL",
        "slug": "extra-large",
        "quota_period": "month",
        "budget_usd": "12.5",
    },
    ("tenants:route-set", "POST"): lambda w: {
        "deployment": w.extra["deployment"].pk,
        "weight": "100",
        "fallback_order": "0",
    },
    ("tenants:providers", "POST"): lambda w: {"name": "anthropic-eu", "kind": "anthropic", "api_key": "sk-x"},
    ("tenants:deployment-create", "POST"): lambda w: {
        "name": "big",
        "model": "gpt-4o",
        "region": "eu",
        "timeout_seconds": "30",
    },
    ("tenants:policies", "POST"): lambda w: {
        "document": POLICY_DOCUMENT,
        "previewed": PolicyDocumentForm.digest(POLICY_DOCUMENT),
    },
    ("tenants:alerts", "POST"): lambda w: {
        "name": "Errors",
        "kind": "error_rate",
        "threshold": "5",
        "window_minutes": "15",
        "min_requests": "20",
        "metric": "requests",
        "email_to": "ops@a.test",
    },
    ("tenants:alert-rule-delete", "POST"): lambda w: {},
    ("api:policies", "POST"): lambda w: {"yaml": POLICY_DOCUMENT},
    ("api:alert-rule-list", "POST"): lambda w: {
        "name": "Errors",
        "kind": "error_rate",
        "threshold": 5,
        "email_to": "ops@a.test",
    },
    ("api:alert-rule-detail", "DELETE"): lambda w: {},
    ("api:policy-rollback", "POST"): lambda w: {},
    ("api:tenant-detail", "PATCH"): lambda w: {"name": "Tenant A2"},
    ("api:api-list", "POST"): lambda w: {"slug": "embed", "name": "Embed", "kind": "embeddings"},
    ("api:api-detail", "PATCH"): lambda w: {"summary": "Better"},
    ("api:version-list", "POST"): lambda w: {"version": "v2", "model_alias": "gpt-4o"},
    ("api:version-status", "POST"): lambda w: {"status": "retired"},
    ("api:plan-list", "POST"): lambda w: {"slug": "xl", "name": "XL", "requests_per_minute": 10},
    ("api:application-list", "POST"): lambda w: {"slug": "new-app", "name": "New"},
    ("api:application-detail", "DELETE"): lambda w: {},
    ("api:key-list", "POST"): lambda w: {"name": "k"},
    ("api:key-detail", "DELETE"): lambda w: {},
    ("api:key-rotate", "POST"): lambda w: {"grace_seconds": 60},
    ("api:subscription-list", "POST"): lambda w: {
        "application": "fresh",
        "publisher": w.tenant.slug,
        "api": "assistant",
        "plan": "standard",
    },
    ("api:change-request-create", "POST"): lambda w: {"extra_tokens": 500},
    ("api:subscription-decision", "POST"): lambda w: {"decision": "approve"},
    ("api:subscription-state", "POST"): lambda w: {"action": "suspend"},
    ("api:change-decision", "POST"): lambda w: {"decision": "approve"},
    ("api:member-detail", "PATCH"): lambda w: {"role": "developer"},
    ("api:member-detail", "DELETE"): lambda w: {},
    ("api:invitation-list", "POST"): lambda w: {"email": "new@a.test", "role": "viewer"},
    ("api:invitation-detail", "DELETE"): lambda w: {},
}
# What a permitted request answers.
SUCCESS = {"GET": 200, "POST": 302, "PATCH": 200, "DELETE": 204}
# Writes that answer with a page instead of a redirect: the new key is shown once, in that response only.
PAGE_SUCCESS = {("tenants:key-create", "POST"): 200, ("tenants:key-rotate", "POST"): 200}
# API actions on an existing object answer 200 with it (not 201: nothing new is created).
API_ACTION_SUCCESS = {
    ("api:version-status", "POST"): 200,
    ("api:policies", "POST"): 200,
    ("api:policy-rollback", "POST"): 200,
    ("api:subscription-decision", "POST"): 200,
    ("api:subscription-state", "POST"): 200,
    ("api:change-decision", "POST"): 200,
}
API_SUCCESS = {"POST": 201}


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, Any]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}:{p.namespace}" if namespace and p.namespace else (p.namespace or namespace)
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern) and p.name:
            yield (f"{namespace}:{p.name}" if namespace else p.name), prefix + str(p.pattern), p.callback


def tenant_routes() -> list[tuple[str, str, Any]]:
    return [r for r in _walk(get_resolver().url_patterns) if "<slug:tenant_slug>" in r[1]]


def _cases() -> Iterator[Any]:
    for name, route, callback in tenant_routes():
        view_class = getattr(callback, "view_class", None)
        if view_class is not None:  # DRF API view: methods and permissions declared on the class
            for method, perm in view_class.permissions.items():
                yield pytest.param(name, route, method, perm, True, id=f"{name}-{method}")
        else:  # page guarded by tenant_view
            assert hasattr(callback, "tenant_permission"), f"{name} is under /t/<slug>/ but not guarded by tenant_view"
            yield pytest.param(name, route, "GET", callback.tenant_permission, False, id=f"{name}-GET")
            yield pytest.param(name, route, "POST", callback.tenant_post_permission, False, id=f"{name}-POST")


def _url(route: str, world: World, name: str = "") -> str:
    url = "/" + route.replace("<slug:tenant_slug>", world.tenant.slug)
    for key, value in {**KWARGS, **ROUTE_KWARGS.get(name, {})}.items():
        for converter in ("int", "slug", "str"):
            url = url.replace(f"<{converter}:{key}>", str(value(world)))
    assert "<" not in url, f"add a KWARGS entry for {url}"
    return url


def fingerprint() -> list[Any]:
    from analytics.models import AlertRule
    from gateway.models import AiApi, ApiVersion, Plan
    from subscriptions.models import ApiKey, Application, ChangeRequest, Subscription

    return [
        list(AiApi.all_tenants.order_by("pk").values()),
        list(ApiVersion.objects.order_by("pk").values()),
        list(Plan.objects.order_by("pk").values()),
        list(Application.all_tenants.order_by("pk").values()),
        list(Subscription.objects.order_by("pk").values()),
        list(ChangeRequest.objects.order_by("pk").values()),
        list(ApiKey.objects.order_by("pk").values()),
        list(Tenant.objects.order_by("pk").values()),
        list(Membership.all_tenants.order_by("pk").values()),
        list(Invitation.all_tenants.order_by("pk").values()),
        list(PersonalAccessToken.objects.order_by("pk").values()),
        AuditEvent.all_tenants.count(),
        list(AlertRule.all_tenants.order_by("pk").values()),
    ]


def _expected(persona: str, method: str, perm: Any, is_api: bool, allowed_methods: set[str], name: str = "") -> int:
    if method not in allowed_methods:
        return 405  # method checks wrap the tenant check: nothing about the tenant is revealed
    if persona == "anonymous":
        return 401 if is_api else 302
    if persona == "outsider":
        return 404
    if perm not in ROLE_PERMISSIONS[Role(persona)]:
        return 403
    if is_api:
        return API_ACTION_SUCCESS.get((name, method), API_SUCCESS.get(method, SUCCESS[method]))
    return PAGE_SUCCESS.get((name, method), SUCCESS[method])


def _allowed_methods(callback: Any) -> set[str]:
    """A page's methods, read from its require_http_methods decorator (the closure keeps the list)."""
    for cell in callback.__closure__ or ():
        if isinstance(cell.cell_contents, list) and all(isinstance(m, str) for m in cell.cell_contents):
            return set(cell.cell_contents)
    return {"GET", "POST"}


def test_every_tenant_route_is_in_the_matrix():
    names = {name for name, _, _ in tenant_routes()}

    assert {"tenants:overview", "tenants:members", "tenants:audit", "api:member-list", "api:audit-event-list"} <= names
    assert len(names) >= 17


@pytest.mark.parametrize(("name", "route", "method", "perm", "is_api"), list(_cases()))
@pytest.mark.parametrize("persona", PERSONAS)
def test_persona_gets_exactly_the_access_its_role_allows(world, as_persona, persona, name, route, method, perm, is_api):
    callback = next(cb for n, _, cb in tenant_routes() if n == name)
    allowed = {method} if is_api else _allowed_methods(callback)
    expected = _expected(persona, method, perm, is_api, allowed, name)
    if method != "GET" and expected in (200, 201, 204, 302) and persona not in ("anonymous", "outsider"):
        sample = SAMPLES.get((name, method))
        assert sample is not None, f"add a SAMPLES entry for {name} {method}"
        data = sample(world)
    else:
        data = SAMPLES.get((name, method), lambda w: {})(world)
    client = as_persona(persona)
    before = fingerprint()

    call = getattr(client, method.lower())
    url = _url(route, world, name)
    response = call(url, data, content_type="application/json") if is_api and data else call(url, data)

    assert response.status_code == expected, (persona, name, method, getattr(response, "content", b"")[:300])
    if expected == 302 and persona == "anonymous":
        assert response["location"].startswith("/accounts/login/")
    if expected not in (200, 201, 204, 302) or persona in ("anonymous", "outsider"):
        assert fingerprint() == before, "a denied request changed the database"
    elif method != "GET":
        assert fingerprint() != before, "a permitted write changed nothing: is the sample valid?"

"""Analytics test helpers: usage events exactly as the gateway sends them, and a finance member for Globex."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from tenants import services as tenant_services
from tenants.models import User
from tenants.permissions import Role
from tenants.tests.fixtures import PASSWORD


def usage_event(market: Any, when: datetime, **overrides: Any) -> dict[str, Any]:
    """A usage event as the gateway sends it: Globex's web app calling Acme's assistant."""
    return {
        "event_id": uuid.uuid4().hex,
        "request_id": uuid.uuid4().hex,
        "occurred_at": when.isoformat(),
        "tenant_id": market.globex.pk,
        "publisher_id": market.acme.pk,
        "application_id": market.app.pk,
        "application_slug": market.app.slug,
        "key_public_id": "AbCd1234",
        "subscription_id": None,
        "api_id": market.api.pk,
        "api_label": "acme/assistant",
        "endpoint": "chat",
        "model": "gpt-4o-mini",
        "deployment_id": 7,
        "deployment_name": "mock",
        "provider_kind": "openai",
        "status": 200,
        "error_code": "",
        "is_stream": False,
        "attempts": 1,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_micros": 4,
        "latency_ms": 100,
        "ttft_ms": None,
        "usage_is_estimated": False,
        "client_ip": "10.1.2.3",
        "cache_hit": False,
        "region": "eu",
        "policy_decisions": ["prompt_injection:classifier:flag"],
        **overrides,
    }


@pytest.fixture
def globex_finance(market: Any) -> User:
    user = tenant_services.user_create(email="finance@globex.test", password=PASSWORD, email_verified=True)
    tenant_services.membership_create(tenant=market.globex, user=user, role=Role.FINANCE)
    return user

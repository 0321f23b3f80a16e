"""The catalog: versions move only forward through their life, plans validate limits, descriptions are inert."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from gateway import services
from gateway.markdown import render_markdown
from gateway.models import ApiVersion
from portal.errors import DomainError
from tenants import services as tenant_services
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db
Status = ApiVersion.Status


@pytest.fixture
def api():
    owner = tenant_services.user_create(email="owner@acme.test", password="x" * 12)
    tenant = tenant_services.tenant_create(slug="acme", name="Acme", owner=owner)
    return services.api_create(
        tenant=tenant, slug="assistant", name="Assistant", kind="chat", actor=tenant_services.SYSTEM
    )


def _version(api, status: str) -> ApiVersion:
    version = services.version_create(api=api, version="v1", model_alias="gpt-4o-mini", actor=tenant_services.SYSTEM)
    path = {
        Status.DRAFT: [],
        Status.PUBLISHED: [Status.PUBLISHED],
        Status.DEPRECATED: [Status.PUBLISHED, Status.DEPRECATED],
        Status.RETIRED: [Status.PUBLISHED, Status.RETIRED],
    }[status]
    for step in path:
        services.version_set_status(
            version=version, status=step, actor=tenant_services.SYSTEM, sunset_at=timezone.now() + timedelta(days=30)
        )
    return version


@pytest.mark.parametrize("start", [s.value for s in Status])
@pytest.mark.parametrize("target", [s.value for s in Status])
def test_version_lifecycle_allows_only_its_transitions(api, start, target):
    version = _version(api, start)
    allowed = target in services.VERSION_TRANSITIONS[start]

    if allowed:
        services.version_set_status(
            version=version, status=target, actor=tenant_services.SYSTEM, sunset_at=timezone.now() + timedelta(days=30)
        )
        version.refresh_from_db()
        assert version.status == target
        assert AuditEvent.objects.for_tenant(api.tenant).filter(action=f"api.version_{target}").exists()
    else:
        with pytest.raises(DomainError, match="cannot become"):
            services.version_set_status(version=version, status=target, actor=tenant_services.SYSTEM)
        version.refresh_from_db()
        assert version.status == start


def test_deprecation_needs_a_future_sunset_date(api):
    version = _version(api, Status.PUBLISHED)

    with pytest.raises(DomainError, match="sunset date"):
        services.version_set_status(version=version, status=Status.DEPRECATED, actor=tenant_services.SYSTEM)
    with pytest.raises(DomainError, match="sunset date"):
        services.version_set_status(
            version=version, status=Status.DEPRECATED, actor=tenant_services.SYSTEM, sunset_at=timezone.now()
        )


def test_versions_need_what_their_kind_serves(api):
    with pytest.raises(DomainError, match="model alias"):
        services.version_create(api=api, version="v2", actor=tenant_services.SYSTEM)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "10"])
def test_plan_limits_must_be_positive_whole_numbers(api, bad):
    with pytest.raises(DomainError, match="positive whole number"):
        services.plan_create(api=api, slug="p", name="P", actor=tenant_services.SYSTEM, requests_per_minute=bad)


def test_slugs_are_unique_per_publisher(api):
    with pytest.raises(DomainError, match="already has an API"):
        services.api_create(
            tenant=api.tenant, slug="assistant", name="Again", kind="chat", actor=tenant_services.SYSTEM
        )


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        '<img src=x onerror="alert(1)">',
        '<iframe src="https://evil.test"></iframe>',
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        '<p style="background:url(javascript:alert(1))" onclick="alert(1)">hi</p>',
    ],
)
def test_markdown_descriptions_render_inert(hostile):
    html = str(render_markdown(f"# Title\n\nSafe **text**.\n\n{hostile}"))

    lowered = html.lower()
    for needle in ("<script", "javascript:", "onerror", "onclick", "<iframe", "data:text", "style="):
        assert needle not in lowered, html
    assert "<strong>text</strong>" in html


def test_markdown_keeps_links_tables_and_code():
    html = str(
        render_markdown("[docs](https://example.test/docs)\n\n```\ncurl x\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    )

    assert 'href="https://example.test/docs"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "<pre><code>curl x" in html
    assert "<table>" in html

"""Policy as code: a tenant's plans and policies as YAML — export, dry-run diff, atomic apply, versions and rollback,
from the command line, the management API and the policies page."""

from __future__ import annotations

import io

import jsonschema
import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from gateway import policy_documents, selectors, services
from gateway.forms import PolicyDocumentForm
from gateway.models import Plan, Policy, PolicyDocumentVersion
from portal.errors import DomainError
from tenants import services as tenant_services
from tenants.models import AuditEvent
from tenants.tests.fixtures import login_verified

SYSTEM = tenant_services.SYSTEM


@pytest.fixture
def configured(market):
    """Acme publishes with policies at three levels; Globex consumes with policies on its app and a key."""
    from subscriptions import services as subscriptions

    key, _ = subscriptions.api_key_create(application=market.app, name="ci", actor=SYSTEM)
    for level, target, rules in [
        ("publisher", market.acme, {"quota": {"period": "day", "requests": 900}}),
        ("api", market.api, {"max_tokens": {"default": 1024}}),
        ("version", market.api.versions.get(), {"rate_limits": {"tokens_per_minute": 9000}}),
        ("application", market.app, {"quota": {"cost_micros": 7_000_000}}),
        ("key", key, {"rate_limits": {"requests_per_minute": 5}}),
    ]:
        services.policy_set(level=level, target=target, rules=rules, actor=SYSTEM)
    return key


def _yaml(tenant) -> str:
    return policy_documents.to_yaml(selectors.policy_document_of(tenant=tenant))


def test_export_then_apply_then_export_is_identical(market, configured):
    for tenant in (market.acme, market.globex):
        exported = _yaml(tenant)

        result = services.policy_document_apply(tenant=tenant, document=policy_documents.parse(exported), actor=SYSTEM)

        assert result.changes == []  # nothing to change: no version either
        assert result.version is None
        assert _yaml(tenant) == exported
    assert "keys:\n        " + configured.public_id in _yaml(market.globex)


def test_the_exported_document_validates_against_the_published_schema(client, market, configured):
    schema = client.get(reverse("policies-schema")).json()

    for tenant in (market.acme, market.globex):
        jsonschema.validate(selectors.policy_document_of(tenant=tenant), schema)


def test_a_dry_run_shows_a_readable_diff_and_changes_nothing(market, configured):
    document = selectors.policy_document_of(tenant=market.acme)
    document["publisher"]["policy"]["quota"]["requests"] = 1200
    document["publisher"]["apis"]["assistant"]["plans"]["standard"]["requests_per_minute"] = 30
    del document["publisher"]["apis"]["assistant"]["versions"]
    audit_before = AuditEvent.all_tenants.count()
    policies_before = list(Policy.objects.values())

    result = services.policy_document_apply(tenant=market.acme, document=document, actor=SYSTEM, dry_run=True)

    assert result.changes == [
        "~ publisher.apis.assistant.plans.standard.requests_per_minute: 60 → 30",
        "- publisher.apis.assistant.versions.v1.rate_limits.tokens_per_minute: 9000",
        "~ publisher.policy.quota.requests: 900 → 1200",
    ]
    assert result.version is None
    assert list(Policy.objects.values()) == policies_before
    assert Plan.objects.get(pk=market.standard.pk).requests_per_minute == 60
    assert AuditEvent.all_tenants.count() == audit_before
    assert not PolicyDocumentVersion.objects.exists()


def test_apply_is_atomic_audited_and_kept_as_a_version(market, configured):
    document = selectors.policy_document_of(tenant=market.acme)
    document["publisher"]["policy"] = {"rate_limits": {"requests_per_minute": 10}}
    document["publisher"]["apis"]["assistant"]["plans"]["gold"] = {"name": "Gold", "token_quota": 5_000_000}
    broken = {**document, "publisher": {**document["publisher"], "apis": {**document["publisher"]["apis"], "nope": {}}}}

    with pytest.raises(DomainError) as refused:
        services.policy_document_apply(tenant=market.acme, document=broken, actor=SYSTEM)
    assert "publisher.apis.nope: Acme has no API “nope”" in refused.value.message
    assert not Plan.objects.filter(slug="gold").exists()  # nothing of it was applied
    assert Policy.objects.get(level="publisher").rules == {"quota": {"period": "day", "requests": 900}}

    result = services.policy_document_apply(tenant=market.acme, document=document, actor=SYSTEM, note="Q4 limits")

    assert result.version is not None
    assert result.version.number == 2  # version 1 keeps what was there before the first apply
    assert Plan.objects.get(slug="gold").token_quota == 5_000_000
    assert Policy.objects.get(level="publisher").rules == {"rate_limits": {"requests_per_minute": 10}}
    audit = AuditEvent.all_tenants.filter(action="policies.applied").get()
    assert audit.details["version"] == 2
    assert audit.details["note"] == "Q4 limits"
    assert "+ publisher.apis.assistant.plans.gold.name: Gold" in audit.details["changes"]


def test_plans_a_document_leaves_out_are_left_alone(market):
    document = {"gatehouse": "policies/v1", "tenant": "acme", "publisher": {"policy": {"quota": {"requests": 5}}}}

    result = services.policy_document_apply(tenant=market.acme, document=document, actor=SYSTEM)

    assert result.changes == ["+ publisher.policy.quota.requests: 5"]
    assert Plan.objects.filter(api=market.api).count() == 2


def test_rolling_back_applies_an_earlier_version_as_a_new_one(market, configured):
    original = _yaml(market.acme)
    changed = selectors.policy_document_of(tenant=market.acme)
    changed["publisher"]["policy"] = {"rate_limits": {"requests_per_minute": 10}}
    services.policy_document_apply(tenant=market.acme, document=changed, actor=SYSTEM)

    preview = services.policy_document_rollback(tenant=market.acme, number=1, actor=SYSTEM, dry_run=True)
    result = services.policy_document_rollback(tenant=market.acme, number=1, actor=SYSTEM)

    assert preview.changes == result.changes
    assert "+ publisher.policy.quota.requests: 900" in result.changes
    assert result.version is not None
    assert (result.version.number, result.version.note) == (3, "rollback to version 1")
    assert _yaml(market.acme) == original
    with pytest.raises(DomainError):
        services.policy_document_rollback(tenant=market.acme, number=9, actor=SYSTEM)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gatehouse: policies/v1\ntenant: acme\npublisher: [", "not valid YAML at line 3"),
        ("gatehouse: policies/v2\ntenant: acme\n", "gatehouse: 'policies/v1' was expected"),
        (
            "gatehouse: policies/v1\ntenant: acme\nconsumer:\n  policy:\n    quota: {period: week}\n",
            "consumer.policy.quota.period",
        ),
        ("gatehouse: policies/v1\n", "'tenant' is a required property"),
    ],
)
def test_a_document_that_breaks_the_schema_says_where(text, message):
    with pytest.raises(policy_documents.DocumentError) as refused:
        policy_documents.parse(text)

    assert message in str(refused.value)


def test_a_document_for_another_tenant_is_refused(market):
    with pytest.raises(DomainError) as refused:
        services.policy_document_apply(
            tenant=market.acme, document={"gatehouse": "policies/v1", "tenant": "globex"}, actor=SYSTEM
        )

    assert "for tenant “globex”, not “acme”" in refused.value.message


# --- the command, the API, the page --------------------------------------------------------------------------


def test_the_command_exports_dry_runs_applies_and_lists_history(market, configured, tmp_path):
    path = tmp_path / "acme.yaml"
    call_command("policies", "export", "acme", "--output", str(path))
    path.write_text(path.read_text().replace("requests: 900", "requests: 950"))

    dry, applied, history = io.StringIO(), io.StringIO(), io.StringIO()
    call_command("policies", "apply", str(path), "--dry-run", stdout=dry)
    assert Policy.objects.get(level="publisher").rules["quota"]["requests"] == 900
    call_command("policies", "apply", str(path), "--note", "more", stdout=applied)
    call_command("policies", "history", "acme", stdout=history)

    assert dry.getvalue() == "~ publisher.policy.quota.requests: 900 → 950\nDry run: 1 change(s) not applied.\n"
    assert applied.getvalue().endswith("Applied as version 2.\n")
    assert Policy.objects.get(level="publisher").rules["quota"]["requests"] == 950
    assert history.getvalue().splitlines()[0].startswith("v2 ")
    assert history.getvalue().splitlines()[0].endswith("1 change(s)  more")
    path.write_text("gatehouse: policies/v1\ntenant: acme\npublisher:\n  apis:\n    nope: {}\n")
    with pytest.raises(CommandError, match="no API"):
        call_command("policies", "apply", str(path))


def test_the_api_reads_previews_applies_and_rolls_back(client, market, configured):
    login_verified(client, market.acme_owner)
    url = reverse("api:policies", kwargs={"tenant_slug": "acme"})

    current = client.get(url).json()
    text = current["yaml"].replace("requests: 900", "requests: 10")
    preview = client.post(url, {"yaml": text, "dry_run": True}, content_type="application/json")
    applied = client.post(url, {"yaml": text, "note": "api"}, content_type="application/json")
    broken = client.post(url, {"yaml": "tenant: [acme"}, content_type="application/json")
    back = client.post(
        reverse("api:policy-rollback", kwargs={"tenant_slug": "acme", "number": 1}), {}, content_type="application/json"
    )
    versions = client.get(reverse("api:policy-versions", kwargs={"tenant_slug": "acme"})).json()

    assert current["version"] is None
    assert yaml.safe_load(current["yaml"]) == current["document"]
    assert preview.json() == {
        "dry_run": True,
        "changes": ["~ publisher.policy.quota.requests: 900 → 10"],
        "version": None,
    }
    assert applied.json()["version"] == 2
    assert broken.status_code == 400
    assert "not valid YAML" in broken.content.decode()
    assert back.json()["version"] == 3
    assert [v["number"] for v in versions] == [3, 2, 1]
    assert versions[1]["created_by"] == market.acme_owner.email


def test_the_page_shows_the_diff_first_and_applies_only_what_was_previewed(client, market, configured):
    login_verified(client, market.acme_owner)
    url = reverse("tenants:policies", kwargs={"tenant_slug": "acme"})
    text = _yaml(market.acme).replace("requests: 900", "requests: 10")

    preview = client.post(url, {"document": text})
    edited = client.post(url, {"document": text.replace("10", "11"), "previewed": PolicyDocumentForm.digest(text)})
    applied = client.post(url, {"document": text, "previewed": PolicyDocumentForm.digest(text)}, follow=True)

    assert preview.status_code == 200
    assert "~ publisher.policy.quota.requests: 900 → 10" in preview.content.decode()
    assert "Apply 1 change" in preview.content.decode()
    assert "requests: 11" not in _yaml(market.acme)  # changed after the preview: previewed again, not applied
    assert "900 → 11" in edited.content.decode()
    assert "Applied as version 2: 1 change(s)." in applied.content.decode()
    assert "requests: 10" in _yaml(market.acme)


def test_the_page_restores_an_earlier_version_into_the_editor(client, market, configured):
    changed = selectors.policy_document_of(tenant=market.acme)
    changed["publisher"]["policy"] = {"rate_limits": {"requests_per_minute": 10}}
    services.policy_document_apply(tenant=market.acme, document=changed, actor=SYSTEM)
    login_verified(client, market.acme_owner)

    page = client.get(reverse("tenants:policies", kwargs={"tenant_slug": "acme"}), {"version": 1})

    assert "requests: 900" in page.content.decode()
    assert "restore version 1" in page.content.decode()


def test_a_viewer_reads_the_document_but_cannot_edit_it(client, market, configured):
    login_verified(client, market.developer)  # Globex's developer: may view, not manage policies

    page = client.get(reverse("tenants:policies", kwargs={"tenant_slug": "globex"}))

    assert page.status_code == 200
    assert "readonly" in page.content.decode()
    assert "Preview changes" not in page.content.decode()


def test_operators_set_the_platform_default_from_the_command_line(market, tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text("rate_limits:\n  requests_per_minute: 600\n")
    shown = io.StringIO()

    call_command("policies", "platform", str(path))
    call_command("policies", "platform", stdout=shown)

    assert Policy.objects.get(level="platform").rules == {"rate_limits": {"requests_per_minute": 600}}
    assert "requests_per_minute: 600" in shown.getvalue()
    path.write_text("rate_limits:\n  requests_per_minute: 0\n")
    with pytest.raises(CommandError, match="Invalid policy"):
        call_command("policies", "platform", str(path))

"""The analytics management API answers what the pages show, with the same scoping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from analytics import services, tasks
from analytics.models import AlertRule
from analytics.tests.fixtures import usage_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_everything(settings):
    settings.CALL_LOG_RETENTION_DAYS = 100_000


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_usage_and_costs_through_the_api_equal_the_raw_events(market, globex_finance):
    when = datetime(2026, 11, 10, 12, tzinfo=UTC)
    services.usage_events_record(
        events=[usage_event(market, when, cost_micros=c, status=s) for c, s in [(5, 200), (7, 200), (11, 500)]]
    )
    tasks.roll_up_usage()

    usage = api(globex_finance).get("/api/v1/tenants/globex/usage?since=2026-11-10&until=2026-11-10&by=model")
    costs = api(globex_finance).get("/api/v1/tenants/globex/reports/costs?month=2026-11")
    statement = api(globex_finance).get("/api/v1/tenants/globex/reports/statements/2026/11")
    developer_usage = api(market.developer).get("/api/v1/tenants/globex/usage?since=2026-11-10&until=2026-11-10")

    assert usage.status_code == 200
    assert (usage.data["totals"]["requests"], usage.data["totals"]["errors"], usage.data["totals"]["cost_micros"]) == (
        3,
        1,
        23,
    )
    assert [(r["label"], r["requests"]) for r in usage.data["breakdown"]] == [("gpt-4o-mini", 3)]
    assert len(usage.data["series"]) == 24  # a day: one point per hour
    assert costs.data["total_micros"] == 23
    assert statement.data["total_micros"] == 23
    assert "cost_micros" not in developer_usage.data["totals"]  # spend is for those who may see costs
    assert api(market.developer).get("/api/v1/tenants/globex/reports/statements/2026/11").status_code == 403
    assert api(market.developer).get("/api/v1/tenants/globex/usage?since=yesterday").status_code == 400


def test_alert_rules_are_created_with_the_pages_rules_and_listed(market, globex_finance):
    client = api(globex_finance)

    refused = client.post("/api/v1/tenants/globex/alert-rules", {"name": "x", "kind": "error_rate"}, format="json")
    created = client.post(
        "/api/v1/tenants/globex/alert-rules",
        {"name": "Errors", "kind": "error_rate", "threshold": 5, "webhook_url": "http://127.0.0.1:9/hook"},
        format="json",
    )

    assert refused.status_code == 400
    assert "threshold" in refused.data or "non_field_errors" in refused.data
    assert created.status_code == 201
    assert created.data["webhook_secret"].startswith("whsec_")
    listed = client.get("/api/v1/tenants/globex/alert-rules").data
    assert [r["name"] for r in listed] == ["Errors"]
    assert "webhook_secret" not in listed[0]
    rule = AlertRule.objects.for_tenant(market.globex).get()
    assert client.delete(f"/api/v1/tenants/globex/alert-rules/{rule.pk}").status_code == 204
    assert client.get("/api/v1/tenants/globex/alerts").data["results"] == []

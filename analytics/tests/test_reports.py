"""Cost reports, statements and budgets: exact to the micro-USD against the raw events, in the tenant's months."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client

from analytics import selectors, services, tasks
from analytics.models import UsageEvent
from analytics.tests.fixtures import usage_event
from gateway.models import Policy
from subscriptions import services as subscriptions
from tenants import services as tenant_services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_everything(settings):
    settings.CALL_LOG_RETENTION_DAYS = 100_000  # fixed dates in these tests are never "too old to roll up"


@pytest.fixture
def batch_app(market):
    owner = tenant_services.Actor(user=market.globex.memberships.get(role="owner").user)
    return subscriptions.application_create(tenant=market.globex, slug="globex-batch", name="Batch", actor=owner)


def _berlin(market):
    market.globex.timezone = "Europe/Berlin"
    market.globex.save()


def _mixed_month(market, batch_app) -> list[dict]:
    """December 2026 in Berlin runs from 2026-11-30T23:00Z to 2026-12-31T23:00Z; events on both sides."""
    rng = random.Random(7)
    edges = [
        datetime(2026, 11, 30, 22, 59, tzinfo=UTC),  # 23:59 on 30 Nov in Berlin: November
        datetime(2026, 11, 30, 23, 0, tzinfo=UTC),  # midnight 1 Dec in Berlin: December
        datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC),  # last second of December in Berlin
        datetime(2026, 12, 31, 23, 0, tzinfo=UTC),  # January in Berlin
    ]
    middle = [datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(60 * 24 * 30)) for _ in range(300)]
    events = []
    for when in edges + middle:
        app = rng.choice([market.app, batch_app])
        events.append(
            usage_event(
                market, when, application_id=app.pk, application_slug=app.slug,
                model=rng.choice(["gpt-4o-mini", "gpt-4o"]), cost_micros=rng.randrange(0, 3_000_000),
                status=rng.choice([200, 200, 200, 500, 429]), is_stream=rng.random() < 0.5,
                cache_hit=rng.random() < 0.1, latency_ms=rng.randrange(5, 3000),
            )
        )  # fmt: skip
    services.usage_events_record(events=events)
    tasks.roll_up_usage()
    return events


def _december(event: dict) -> bool:
    when = datetime.fromisoformat(event["occurred_at"])
    return datetime(2026, 11, 30, 23, tzinfo=UTC) <= when < datetime(2026, 12, 31, 23, tzinfo=UTC)


def test_a_month_report_equals_the_raw_events_to_the_micro_usd_in_the_tenants_own_month(market, batch_app):
    _berlin(market)
    events = _mixed_month(market, batch_app)
    period = selectors.month_period(market.globex, 2026, 12)

    lines = selectors.cost_report(selectors.UsageScope(tenant=market.globex), period)

    expected: dict[tuple[str, str], int] = {}
    for e in filter(_december, events):
        expected[(e["application_slug"], e["model"])] = expected.get((e["application_slug"], e["model"]), 0)
        expected[(e["application_slug"], e["model"])] += e["cost_micros"]
    assert {(line.application, line.model): line.cost_micros for line in lines} == expected
    assert sum(line.requests for line in lines) == sum(1 for e in events if _december(e)) == 302
    assert (period.start, period.end) == (
        datetime(2026, 11, 30, 23, tzinfo=UTC),
        datetime(2026, 12, 31, 23, tzinfo=UTC),
    )


def test_totals_and_breakdowns_equal_the_raw_sums(market, batch_app):
    _berlin(market)
    events = [e for e in _mixed_month(market, batch_app) if _december(e)]
    scope = selectors.UsageScope(tenant=market.globex)
    period = selectors.month_period(market.globex, 2026, 12)

    totals, breakdowns = selectors.usage_summary(scope, period, ["application"])
    by_app = {row.label: row for row in breakdowns["application"]}

    assert totals.cost_micros == sum(e["cost_micros"] for e in events)
    assert totals.errors == sum(e["status"] >= 400 for e in events)
    assert totals.cache_hits == sum(e["cache_hit"] for e in events)
    for slug in ("globex-web", "globex-batch"):
        assert by_app[slug].cost_micros == sum(e["cost_micros"] for e in events if e["application_slug"] == slug)
    # The merged sketch never reports a p95 below the true one, and is within one bucket (25 %) above it.
    latencies = sorted(e["latency_ms"] for e in events)
    true_p95 = latencies[-(-95 * len(latencies) // 100) - 1]
    assert true_p95 <= totals.latency_p95_ms <= true_p95 * 1.25 + 1


def test_the_statement_adds_each_publishers_markup_per_line_and_totals_exactly(market, batch_app):
    market.acme.markup_basis_points = 1250  # 12.5 %
    market.acme.save()
    when = datetime(2026, 11, 10, 12, tzinfo=UTC)
    services.usage_events_record(
        events=[
            usage_event(market, when, cost_micros=1_000_003),
            usage_event(market, when, cost_micros=4),
            usage_event(market, when, application_id=batch_app.pk, application_slug="globex-batch", cost_micros=7),
        ]
    )
    tasks.roll_up_usage()

    statement = selectors.statement_for(market.globex, selectors.month_period(market.globex, 2026, 11))

    [batch, web] = statement.lines
    assert (web.application, web.cost_micros, web.markup_micros) == ("globex-web", 1_000_007, 125_001)  # 125000.875
    assert (batch.cost_micros, batch.markup_micros) == (7, 1)  # 0.875 rounds up
    assert statement.cost_micros == 1_000_014
    assert statement.total_micros == 1_000_014 + 125_002
    assert [(app, total) for app, _, total in statement.by_application()] == [
        ("globex-batch", 8),
        ("globex-web", 1_125_008),
    ]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_finance_downloads_the_whole_tenants_csv_and_a_developer_only_their_applications(
    market, batch_app, globex_finance
):
    _berlin(market)
    events = [e for e in _mixed_month(market, batch_app) if _december(e)]

    def download(user) -> list[dict]:
        response = _client(user).get("/t/globex/reports/costs.csv?month=2026-12")
        assert response.status_code == 200
        assert response["content-disposition"] == 'attachment; filename="globex-costs-2026-12.csv"'
        return list(csv.DictReader(io.StringIO(response.getvalue().decode())))

    finance_rows, developer_rows = download(globex_finance), download(market.developer)

    assert sum(int(r["cost_micros"]) for r in finance_rows) == sum(e["cost_micros"] for e in events)
    assert {r["application"] for r in finance_rows} == {"globex-web", "globex-batch"}
    assert {r["application"] for r in developer_rows} == {"globex-web"}  # the developer owns only this one
    web_cost = sum(e["cost_micros"] for e in events if e["application_slug"] == "globex-web")
    assert sum(int(r["cost_micros"]) for r in developer_rows) == web_cost
    assert all(Decimal(r["cost_usd"]) * 1_000_000 == int(r["cost_micros"]) for r in finance_rows)
    page = _client(market.developer).get("/t/globex/reports/costs/?month=2026-12")
    assert b"globex-batch" not in page.content
    assert b"You see the applications you own" in page.content


def test_the_statement_page_is_for_finance_and_shows_the_total(market, globex_finance):
    services.usage_events_record(events=[usage_event(market, datetime(2026, 11, 3, tzinfo=UTC), cost_micros=2_500_000)])
    tasks.roll_up_usage()

    finance = _client(globex_finance).get("/t/globex/reports/statements/2026/11/")
    developer = _client(market.developer).get("/t/globex/reports/statements/2026/11/")
    as_csv = _client(globex_finance).get("/t/globex/reports/statements/2026/11/?format=csv")

    assert finance.status_code == 200
    assert b'id="statement-total">$2.50<' in finance.content
    assert developer.status_code == 403
    rows = list(csv.DictReader(io.StringIO(as_csv.getvalue().decode())))
    assert [(r["application"], r["total_usd"]) for r in rows] == [("globex-web", "2.5")]


def test_month_to_date_spend_and_forecast_against_the_tenants_budget(market):
    Policy.objects.create(
        level=Policy.Level.CONSUMER, tenant=market.globex, rules={"quota": {"cost_micros": 20_000_000}}
    )
    services.usage_events_record(
        events=[
            usage_event(market, datetime(2026, 12, day, 12, tzinfo=UTC), cost_micros=1_000_000) for day in range(4, 11)
        ]
    )
    tasks.roll_up_usage()
    now = datetime(2026, 12, 11, tzinfo=UTC)

    status = selectors.budget_status(selectors.UsageScope(tenant=market.globex), now)

    assert status.spent_micros == 7_000_000
    assert status.forecast_micros == 7_000_000 + 21 * 1_000_000  # a million a day for the 21 days left
    assert status.budget_micros == 20_000_000
    assert status.will_exceed


def test_reports_read_rollups_only(market):
    """The pages never scan the call log: with the raw rows gone, the report still adds up."""
    services.usage_events_record(events=[usage_event(market, datetime(2026, 11, 3, tzinfo=UTC), cost_micros=9)])
    tasks.roll_up_usage()
    UsageEvent.all_tenants.all().delete()

    lines = selectors.cost_report(
        selectors.UsageScope(tenant=market.globex), selectors.month_period(market.globex, 2026, 11)
    )

    assert [line.cost_micros for line in lines] == [9]

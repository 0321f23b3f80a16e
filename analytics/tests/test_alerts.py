"""Alerts: each rule type fires once per window; e-mail and signed webhooks, retried on 5xx, SSRF refused."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from analytics import services, tasks, webhooks
from analytics.forms import AlertRuleForm
from analytics.models import AlertDelivery, AlertEvent, AlertRule
from analytics.tests.fixtures import usage_event
from portal.crypto import decrypt
from tenants.services import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_everything(settings):
    settings.CALL_LOG_RETENTION_DAYS = 100_000


def rule(market, kind: str, **fields) -> AlertRule:
    owner = market.globex.memberships.get(role="owner").user
    fields.setdefault("email_to", "ops@globex.test")
    created, _ = services.alert_rule_create(
        tenant=market.globex, actor=Actor(user=owner), name=kind, kind=kind, **fields
    )
    return created


def calls(market, start: datetime, count: int, **overrides) -> None:
    services.usage_events_record(
        events=[usage_event(market, start + timedelta(seconds=i), **overrides) for i in range(count)]
    )


NOW = datetime(2026, 11, 20, 10, 31, tzinfo=UTC)  # the last complete 15-minute window is 10:15-10:30


def test_an_error_rate_rule_fires_once_per_window(market):
    errors = rule(market, "error_rate", threshold=10, window_minutes=15, min_requests=20)
    window = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    calls(market, window, 18)
    calls(market, window + timedelta(minutes=5), 4, status=502)  # 4 of 22 = 18 %

    assert services.alerts_evaluate(now=NOW) == 1
    assert services.alerts_evaluate(now=NOW + timedelta(minutes=5)) == 0  # same window: no second alert

    [alert] = AlertEvent.objects.for_tenant(market.globex)
    assert alert.rule == errors
    assert alert.details["errors"] == 4
    assert "18.2 %" in alert.message
    # The next window, healthy again: nothing.
    calls(market, window + timedelta(minutes=15), 30)
    assert services.alerts_evaluate(now=NOW + timedelta(minutes=15)) == 0


def test_an_error_rate_needs_enough_calls_and_a_rate_at_the_threshold(market):
    rule(market, "error_rate", threshold=50, window_minutes=15, min_requests=20)
    window = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    calls(market, window, 5, status=500)  # 100 % of 5: too few to judge

    assert services.alerts_evaluate(now=NOW) == 0
    calls(market, window + timedelta(minutes=1), 16)  # 5 of 21 = 24 %: under 50 %
    assert services.alerts_evaluate(now=NOW) == 0


def test_a_latency_rule_fires_on_the_exact_p95_of_the_window(market):
    rule(market, "latency_p95", threshold=1000, window_minutes=15, min_requests=20)
    window = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    calls(market, window, 18, latency_ms=100)
    calls(market, window + timedelta(minutes=1), 2, latency_ms=1500)  # p95 of 20 = the 19th = 1500

    assert services.alerts_evaluate(now=NOW) == 1
    assert AlertEvent.objects.for_tenant(market.globex).get().details["latency_p95_ms"] == 1500


def test_an_anomaly_rule_fires_for_the_key_far_above_its_own_baseline(market):
    rule(market, "anomaly", threshold=4, min_requests=10)
    last_hour = datetime(2026, 11, 20, 9, tzinfo=UTC)
    for hours_back in range(1, 25):
        start = last_hour - timedelta(hours=hours_back)
        calls(market, start, 20 + hours_back % 3, key_public_id="SteadyAA")
        calls(market, start, 20 + hours_back % 3, key_public_id="SpikyBBB")
    calls(market, last_hour, 22, key_public_id="SteadyAA")
    calls(market, last_hour, 200, key_public_id="SpikyBBB")

    fired = tasks.roll_up_usage() and services.alerts_evaluate(now=NOW)
    again = services.alerts_evaluate(now=NOW + timedelta(minutes=20))

    assert (fired, again) == (1, 0)
    assert AlertEvent.objects.for_tenant(market.globex).get().details["key"] == "SpikyBBB"


def test_a_forecast_rule_fires_once_a_month(market):
    rule(market, "budget_forecast", budget_micros=20_000_000)
    days = [datetime(2026, 12, day, 12, tzinfo=UTC) for day in range(4, 11)]
    services.usage_events_record(events=[usage_event(market, day, cost_micros=1_000_000) for day in days])
    tasks.roll_up_usage()

    first = services.alerts_evaluate(now=datetime(2026, 12, 11, tzinfo=UTC))
    second = services.alerts_evaluate(now=datetime(2026, 12, 12, tzinfo=UTC))

    assert (first, second) == (1, 0)
    assert "$28.00" in AlertEvent.objects.for_tenant(market.globex).get().message


def quota_alert(market, percent: int) -> dict:
    return {"type": "alert", "event_id": f"quota:globex:budget:2026-11:{percent}", "tenant_id": market.globex.pk,
            "occurred_at": NOW.isoformat(), "kind": "quota_threshold", "percent": percent,
            "message": f"{percent}% of the consumer quota is used."}  # fmt: skip


def test_the_gateways_quota_crossings_go_out_through_the_rules_they_reach(market, django_capture_on_commit_callbacks):
    rule(market, "quota_threshold", threshold=80, email_to="finance@globex.test")
    rule(market, "quota_threshold", threshold=100, email_to="cfo@globex.test")

    with django_capture_on_commit_callbacks(execute=True):
        services.usage_events_record(events=[quota_alert(market, 80)])
    with django_capture_on_commit_callbacks(execute=True):
        services.usage_events_record(events=[quota_alert(market, 80)])  # delivered again by the stream
    tasks.deliver_alerts()  # what the worker does with the task enqueued after commit (eager: already done)

    assert [m.to for m in mail.outbox] == [["finance@globex.test"]]
    assert "80% of the consumer quota" in mail.outbox[0].body
    assert AlertDelivery.objects.get().state == AlertDelivery.State.DELIVERED


class Receiver:
    """A webhook endpoint on loopback that answers with the statuses it is told, in order."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/gatehouse"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver([500])
    yield hook
    hook.close()


def test_a_webhook_is_signed_and_retried_with_backoff_after_a_500(market, receiver):
    hooked = rule(market, "error_rate", threshold=10, min_requests=1, email_to="", webhook_url=receiver.url)
    calls(market, datetime(2026, 11, 20, 10, 20, tzinfo=UTC), 2, status=500)
    services.alerts_evaluate(now=NOW)  # (the test's transaction never commits: sending is driven by hand)
    delivery = AlertDelivery.objects.get()

    assert services.alert_deliveries_send(now=NOW) == 0  # the receiver answers 500
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 500")
    assert delivery.next_attempt_at == NOW + timedelta(seconds=30)
    assert services.alert_deliveries_send(now=NOW + timedelta(seconds=10)) == 0  # not due yet: nothing sent
    assert len(receiver.received) == 1
    assert services.alert_deliveries_send(now=NOW + timedelta(seconds=31)) == 1

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    headers, body = receiver.received[-1]
    secret = decrypt(hooked.webhook_secret)
    assert webhooks.verify(secret, headers["gatehouse-signature"], body)
    assert not webhooks.verify(secret, headers["gatehouse-signature"], body + b" ")  # a changed body fails
    assert not webhooks.verify("whsec_other", headers["gatehouse-signature"], body)
    payload = json.loads(body)
    assert (payload["type"], payload["tenant"], payload["rule"]["name"]) == ("error_rate", "globex", "error_rate")
    assert headers["gatehouse-event-id"] == payload["id"]


def test_a_webhook_gives_up_at_once_on_a_4xx_and_after_the_backoff_on_5xx(market):
    hook = Receiver([404] + [503] * 10)
    try:
        rule(market, "error_rate", threshold=10, min_requests=1, email_to="", webhook_url=hook.url)
        calls(market, datetime(2026, 11, 20, 10, 20, tzinfo=UTC), 1, status=500)
        services.alerts_evaluate(now=NOW)
        services.alert_deliveries_send(now=NOW)
        assert AlertDelivery.objects.get().state == AlertDelivery.State.FAILED  # 404: retrying will not help

        calls(market, datetime(2026, 11, 20, 10, 35, tzinfo=UTC), 1, status=500)
        services.alerts_evaluate(now=NOW + timedelta(minutes=15))
        later = NOW + timedelta(minutes=15)
        for _ in range(10):
            services.alert_deliveries_send(now=later)
            later += timedelta(hours=3)
        second = AlertDelivery.objects.order_by("pk").last()
        assert (second.state, second.attempts) == ("failed", len(services.DELIVERY_BACKOFF) + 1)
    finally:
        hook.close()


def test_webhooks_to_private_addresses_are_refused_by_the_door(market, settings, receiver):
    hooked = rule(market, "error_rate", threshold=10, min_requests=1, email_to="", webhook_url=receiver.url)
    settings.GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS = False  # production: the SSRF guard is on
    calls(market, datetime(2026, 11, 20, 10, 20, tzinfo=UTC), 1, status=500)
    services.alerts_evaluate(now=NOW)

    services.alert_deliveries_send(now=NOW)

    delivery = AlertDelivery.objects.get(rule=hooked)
    assert delivery.state == "failed"
    assert delivery.last_error.startswith("refused:")
    assert receiver.received == []
    fields = {"name": "x", "kind": "error_rate", "threshold": "5", "window_minutes": "15", "min_requests": "20"}
    form = AlertRuleForm({**fields, "metric": "requests", "webhook_url": "http://169.254.169.254/"})
    assert not form.is_valid()
    assert "webhook_url" in form.errors


def test_the_alerts_page_creates_a_rule_and_shows_its_secret_once(market, globex_finance, client):
    client.force_login(globex_finance)

    response = client.post(
        "/t/globex/alerts/",
        {"name": "Spend spike", "kind": "anomaly", "threshold": "3", "window_minutes": "15", "min_requests": "20",
         "metric": "spend", "webhook_url": "http://127.0.0.1:9/hook"},
        follow=True,
    )  # fmt: skip

    created = AlertRule.objects.for_tenant(market.globex).get()
    secret = decrypt(created.webhook_secret)
    assert secret.startswith("whsec_")
    assert secret.encode() in response.content
    assert b"Spend spike" in client.get("/t/globex/alerts/").content
    assert secret.encode() not in client.get("/t/globex/alerts/").content  # shown once

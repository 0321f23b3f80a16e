"""Fill a month of the call log with N synthetic calls, roll it up, and time the report pages on it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse_bulk .venv/bin/python scripts/seed_call_log.py \
        --rows 1000000 --month 2026-10

Needs the demo data (it runs ``seed_demo`` first). Rows go to Globex's applications calling Acme's APIs, spread
over the month, in batches through the same ``usage_events_record`` service the gateway's events take (so the
rollup backlog is written as in production), then ``roll_up_usage`` runs and the pages are fetched as Globex's
owner and Acme's finance user. Prints the seeding, rollup and page times; the pages must answer in < 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS", "true")  # the demo points at the loopback mock

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from analytics import services, tasks  # noqa: E402
from gateway.models import AiApi  # noqa: E402
from subscriptions import services as subscriptions  # noqa: E402
from subscriptions.models import Application  # noqa: E402
from tenants.models import Tenant, User  # noqa: E402
from tenants.services import Actor  # noqa: E402

# (model, input and output price in micro-USD per 1M tokens)
MODELS = [
    ("gpt-4o-mini", 150_000, 600_000),
    ("text-embedding-3-small", 20_000, 0),
    ("claude-haiku", 800_000, 4_000_000),
]


def applications(globex: Tenant, count: int) -> list[Application]:
    owner = User.objects.get(email="owner@globex.test")
    apps = list(Application.objects.for_tenant(globex))
    for n in range(len(apps), count):
        apps.append(
            subscriptions.application_create(tenant=globex, slug=f"bulk-{n}", name=f"Bulk {n}", actor=Actor(user=owner))
        )
    return apps[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--month", default="2026-10", help="YYYY-MM (UTC) to fill")
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()
    year, month = (int(part) for part in args.month.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    seconds = int((datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC) - start).total_seconds())

    call_command("migrate", verbosity=0)
    call_command("seed_demo", verbosity=0)
    acme, globex = Tenant.objects.get(slug="acme"), Tenant.objects.get(slug="globex")
    apis = list(AiApi.objects.for_tenant(acme))
    apps = applications(globex, 5)
    keys = [f"Bulk{n:04d}" for n in range(50)]
    rng = random.Random(1)

    began = time.perf_counter()
    for offset in range(0, args.rows, args.batch):
        events = []
        for _ in range(min(args.batch, args.rows - offset)):
            app, api, (model, price_in, price_out) = rng.choice(apps), rng.choice(apis), rng.choice(MODELS)
            prompt, completion = rng.randrange(10, 2000), rng.randrange(0, 800)
            events.append({
                "event_id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex,
                "occurred_at": (start + timedelta(seconds=rng.randrange(seconds))).isoformat(),
                "tenant_id": globex.pk, "publisher_id": acme.pk, "application_id": app.pk,
                "application_slug": app.slug, "key_public_id": rng.choice(keys[apps.index(app) * 10:][:10]),
                "api_id": api.pk, "api_label": f"acme/{api.slug}", "endpoint": "chat", "model": model,
                "deployment_id": 1, "deployment_name": "bulk", "provider_kind": "openai",
                "status": rng.choice([200] * 30 + [429, 500, 502]), "is_stream": rng.random() < 0.4,
                "prompt_tokens": prompt, "completion_tokens": completion,
                "cost_micros": (prompt * price_in + completion * price_out + 500_000) // 1_000_000,
                "latency_ms": int(rng.lognormvariate(6, 0.8)), "cache_hit": rng.random() < 0.05,
            })  # fmt: skip
        services.usage_events_record(events=events)
        if offset // args.batch % 20 == 0:
            print(f"  {offset + len(events):>9,} rows  {time.perf_counter() - began:6.1f} s", flush=True)
    seeded = time.perf_counter() - began

    began = time.perf_counter()
    hours = tasks.roll_up_usage()
    rolled = time.perf_counter() - began
    print(f"seeded {args.rows:,} calls in {seeded:.1f} s; rolled up {hours} hours in {rolled:.1f} s")

    setup_test_environment()
    owner, finance = Client(), Client()
    owner.force_login(User.objects.get(email="owner@globex.test"))
    finance.force_login(User.objects.get(email="finance@acme.test"))
    local_month = f"{year:04d}-{month:02d}"
    last_day = (datetime(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).date()
    pages = [
        (owner, f"/t/globex/reports/costs/?month={local_month}"),
        (owner, f"/t/globex/reports/costs.csv?month={local_month}"),
        (owner, f"/t/globex/reports/statements/{year}/{month}/"),
        (owner, f"/t/globex/usage/?from={local_month}-01&to={last_day.isoformat()}&by=key"),
        (owner, "/t/globex/calls/?status=error"),
        (finance, f"/t/acme/revenue/?month={local_month}"),
    ]
    worst = 0.0
    for client, url in pages:
        client.get(url)  # warm (templates, connections)
        began = time.perf_counter()
        response = client.get(url)
        body = response.getvalue()
        took = time.perf_counter() - began
        worst = max(worst, took)
        print(f"{took * 1000:8.1f} ms  {response.status_code}  {len(body):>8} bytes  {url}")
    print(f"slowest page: {worst * 1000:.0f} ms ({'OK' if worst < 1 else 'TOO SLOW'}: the target is < 1 s)")


if __name__ == "__main__":
    main()

"""Analytics in Debian's chromium, on the seeded demo with real calls through the gateway to the mock upstream:
the live dashboard's numbers move while a load runs; then a finance user opens the monthly cost report,
downloads its CSV and opens the statement, and the three agree."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from tests.servers import ROOT, OutputReader, embedded_env, free_port, stop, wait_for
from tests.test_browser import CHROMIUM, SCREENSHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]
PASSWORD = "gatehouse-demo"
ADD_FINANCE = (
    "from tenants import services; from tenants.models import Tenant; "
    "u = services.user_create(email='finance@globex.test', password='gatehouse-demo', email_verified=True); "
    "services.membership_create(tenant=Tenant.objects.get(slug='globex'), user=u, role='finance')"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[dict]:
    """Mock upstream + Gatehouse (embedded: SQLite, in-process counters, the beat schedule every second)."""
    mock_port, port = free_port(), free_port()
    env = embedded_env(
        DEBUG="true",
        GATEHOUSE_VAR_DIR=str(tmp_path_factory.mktemp("var")),
        GATEHOUSE_ALLOW_PRIVATE_UPSTREAMS="true",
        GATEHOUSE_EMBEDDED_BEAT_SECONDS="1",
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    seeded = subprocess.run(
        [*manage, "seed_demo", "--json", "--mock-url", f"http://127.0.0.1:{mock_port}"],
        cwd=ROOT, env=env, check=True, timeout=120, capture_output=True, text=True,
    )  # fmt: skip
    subprocess.run([*manage, "shell", "-c", ADD_FINANCE], cwd=ROOT, env=env, check=True, timeout=120)
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for command in (
            [*manage, "mock_llm", "--port", str(mock_port)],
            [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--port", str(port), "--no-access-log"],
        )
    ]  # fmt: skip
    outputs = [OutputReader(proc) for proc in procs]
    try:
        wait_for(f"http://127.0.0.1:{mock_port}/v1/models", procs[0])
        wait_for(f"http://127.0.0.1:{port}/healthz", procs[1])
        yield {"url": f"http://127.0.0.1:{port}", "key": json.loads(seeded.stdout)["api_key"]}
    finally:
        for proc in procs:
            stop(proc)
        for output in outputs:
            output.close()


def load(base_url: str, key: str, seconds: float, answered: list[int]) -> threading.Thread:
    """Chat calls through the gateway for a while, a few a second (the 'load script'); ``answered`` gets the
    status of each."""

    def run() -> None:
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {key}"}, timeout=10) as client:
            while time.monotonic() < deadline:
                body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"load {len(answered)}"}]}
                answered.append(client.post("/v1/chat/completions", json=body).status_code)
                time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


REPORTED_REQUESTS = (
    "[...document.querySelectorAll('#cost-lines tbody tr')]"
    ".reduce((n, row) => n + Number(row.cells[4].textContent.replace(/,/g, '')), 0)"
)


def test_live_numbers_move_under_load_then_finance_reads_the_report_csv_and_statement(demo):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        context = browser.new_context(
            base_url=demo["url"], viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/accounts/login/")
        page.fill("input[name=login]", "finance@globex.test")
        page.fill("input[name=password]", PASSWORD)
        page.get_by_role("button", name="Sign In").click()
        page.wait_for_url("**/home/")

        # The live dashboard: connected over the websocket, and its numbers move while the load runs.
        page.goto("/t/globex/live/")
        expect(page.locator("#live-status")).to_have_text("live", timeout=10_000)
        calls = page.locator('[data-live="calls_last_minute"]')
        assert calls.inner_text() == "0"
        answered: list[int] = []
        traffic = load(demo["url"], demo["key"], seconds=6, answered=answered)
        page.wait_for_function("Number(document.querySelector('[data-live=calls_last_minute]').textContent) > 0")
        first = int(calls.inner_text())
        page.wait_for_function(f"Number(document.querySelector('[data-live=calls_last_minute]').textContent) > {first}")
        assert float(page.locator('[data-live="requests_per_second"]').inner_text()) > 0
        expect(page.locator('[data-live="spend_today"]')).not_to_have_text("$0.00")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "live.png"), full_page=True)
        traffic.join()
        assert set(answered) == {200}  # (an empty load would not be {200})

        # The monthly report, once the beat schedule has rolled up every call; its CSV; the statement.
        page.goto("/t/globex/reports/costs/")
        for _ in range(30):
            if page.locator("#cost-total").count() and page.evaluate(REPORTED_REQUESTS) == len(answered):
                break
            page.wait_for_timeout(1000)
            page.reload()
        assert page.evaluate(REPORTED_REQUESTS) == len(answered)
        total = page.locator("#cost-total").inner_text()
        assert total not in ("", "$0.00")
        page.screenshot(path=str(SCREENSHOTS / "cost-report.png"), full_page=True)
        with page.expect_download() as download:
            page.get_by_role("link", name="Download CSV").click()
        rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
        csv_total = sum(int(row["cost_micros"]) for row in rows)
        assert {row["application"] for row in rows} == {"globex-web"}
        assert sum(Decimal(row["cost_usd"]) for row in rows) * 1_000_000 == csv_total
        page.get_by_role("link", name="Monthly statement").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Statement")
        assert page.locator("#statement-total").inner_text() == total  # the demo publisher adds no markup
        page.screenshot(path=str(SCREENSHOTS / "statement.png"), full_page=True)
        browser.close()
    assert _usd(total) == _usd_of_micros(csv_total)
    assert errors == []


def _usd(text: str) -> str:
    return text.replace("$", "").replace(",", "")


def _usd_of_micros(micros: int) -> str:
    value = Decimal(micros) / 1_000_000
    return f"{value:.4f}" if value < 1 else f"{value:.2f}"

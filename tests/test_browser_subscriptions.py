"""The subscription workflow in Debian's chromium, on the seeded demo: a Globex developer subscribes globex-web
to acme/assistant, an Acme admin sees the inbox badge and approves (setting up two-factor on the way, since
approving is privileged), the developer sees the approval, creates a key (two-factor again) and copies it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.servers import ROOT, OutputReader, embedded_env, free_port, stop, wait_for
from tests.test_browser import CHROMIUM, SCREENSHOTS
from tests.test_browser_accounts import totp_now

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]
PASSWORD = "gatehouse-demo"
UNSUBSCRIBE = (
    "from subscriptions.models import Subscription; from subscriptions import services; "
    "from tenants.services import SYSTEM; "
    "[services.subscription_revoke(subscription=s, actor=SYSTEM) "
    "for s in Subscription.objects.filter(api__slug='assistant', state='approved')]"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    env = embedded_env(DEBUG="true", GATEHOUSE_VAR_DIR=str(tmp_path_factory.mktemp("var")))
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run([*manage, "seed_demo"], cwd=ROOT, env=env, check=True, timeout=120, capture_output=True)
    subprocess.run([*manage, "shell", "-c", UNSUBSCRIBE], cwd=ROOT, env=env, check=True, timeout=120)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--port", str(port), "--no-access-log"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = OutputReader(proc)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        output.close()


def _sign_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def _enroll_when_asked(page) -> None:
    """The privileged action sent us to set up two-factor: do it, then continue where we were going."""
    page.wait_for_url(re.compile(r"/accounts/mfa/setup/"))
    secret = page.locator("#totp-secret").inner_text().strip()
    page.fill("input[name=code]", totp_now(secret))
    page.get_by_role("button", name="Turn on two-factor").click()
    page.get_by_role("link", name="I saved them").click()


def test_subscribe_approve_with_step_up_then_create_and_copy_a_key(server):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        developer = browser.new_context(base_url=server)
        developer.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
        admin = browser.new_context(base_url=server)
        page = developer.new_page()
        try:
            # The developer finds the API and asks for access for globex-web.
            _sign_in(page, "dev@globex.test")
            page.get_by_role("link", name="Catalog").click()
            page.get_by_role("link", name="Assistant", exact=True).click()
            page.get_by_role("link", name="Subscribe").click()
            page.select_option("select[name=application]", "globex-web")
            page.fill("textarea[name=justification]", "Support chat on globex.example")
            page.get_by_role("button", name="Request access").click()
            expect(page.get_by_text("Acme AI Platform will review it")).to_be_visible()
            expect(page.locator("[data-state=pending]")).to_have_count(1)

            # The admin sees the badge, opens the inbox, and approves — two-factor is set up on the way.
            page = admin.new_page()
            _sign_in(page, "admin@acme.test")
            expect(page.get_by_test_id("inbox-badge")).to_have_text("1")
            page.get_by_role("link", name=re.compile("Approvals inbox")).click()
            expect(page.get_by_text("Support chat on globex.example")).to_be_visible()
            page.get_by_role("button", name="Approve").click()
            _enroll_when_asked(page)
            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_text("globex/globex-web → Assistant: approved.")).to_be_visible()
            expect(page.get_by_test_id("inbox-badge")).to_have_count(0)

            # The developer sees the approval, creates a key (two-factor first) and copies it.
            page = developer.pages[0]
            page.reload()
            expect(page.locator("[data-state=approved]")).to_have_count(4)
            page.get_by_role("link", name="New key").click()
            _enroll_when_asked(page)
            page.fill("input[name=name]", "production web")
            page.get_by_role("button", name="Create key").click()
            expect(page.get_by_role("heading", name="Your new API key")).to_be_visible()
            shown = page.locator("#new-key").inner_text().strip()
            assert re.fullmatch(r"gh_[0-9A-Za-z]{8}_[0-9A-Za-z]{38}", shown)
            page.get_by_role("button", name="Copy").click()
            expect(page.get_by_role("button", name="Copied")).to_be_visible()
            assert page.evaluate("navigator.clipboard.readText()") == shown
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "key-created.png"), full_page=True)
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "subscription-flow-failure.png"), full_page=True)
            raise
        finally:
            browser.close()

"""A newcomer's first session, in Debian's chromium: sign up, verify the e-mail, turn on two-factor, sign out,
sign in with a code, create a tenant, invite a colleague. Runs against uvicorn on a fresh embedded database;
e-mails are read from the server's console output. On failure a screenshot is saved under var/screenshots/."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from django_otp.oath import TOTP

from tests.servers import ROOT, OutputReader, embedded_env, free_port, stop, wait_for
from tests.test_browser import CHROMIUM, SCREENSHOTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]

EMAIL, PASSWORD = "ada@example.test", "a-long-and-unusual-passphrase"


def totp_now(secret: str, steps_ahead: int = 0) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, OutputReader]]:
    env = embedded_env(DEBUG="true", GATEHOUSE_VAR_DIR=str(tmp_path_factory.mktemp("var")))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
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
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base_url}/healthz", proc)
        yield base_url, output
    finally:
        stop(proc)
        output.close()


def test_sign_up_verify_enroll_sign_in_with_a_code_create_a_tenant_and_invite(server):
    from playwright.sync_api import expect, sync_playwright

    base_url, output = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(base_url=base_url)
        try:
            # Sign up, then follow the link of the verification e-mail.
            page.goto("/")
            page.get_by_role("link", name="Sign up").click()
            page.fill("input[name=email]", EMAIL)
            page.fill("input[name=password1]", PASSWORD)
            page.fill("input[name=password2]", PASSWORD)
            page.get_by_role("button", name="Sign Up").click()
            expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
            output.wait_for("/accounts/confirm-email/", seconds=10)
            link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", output.text)[0]
            page.goto(link)
            page.get_by_role("button", name="Confirm").click()
            expect(page.get_by_role("heading", name="Your tenants")).to_be_visible()

            # Turn on two-factor with the key shown beside the QR code.
            page.get_by_role("link", name="Set it up").click()
            secret = page.locator("#totp-secret").inner_text().strip()
            page.fill("input[name=code]", totp_now(secret))
            page.get_by_role("button", name="Turn on two-factor").click()
            expect(page.get_by_role("heading", name="Save your backup codes")).to_be_visible()
            assert len(page.locator("#backup-codes").inner_text().split()) == 10
            page.get_by_role("link", name="I saved them").click()

            # Sign out, sign back in: the password is not enough, the code completes it.
            page.get_by_role("button", name=EMAIL).click()
            page.get_by_role("button", name="Sign out").click()
            page.goto("/accounts/login/")
            page.fill("input[name=login]", EMAIL)
            page.fill("input[name=password]", PASSWORD)
            page.get_by_role("button", name="Sign In").click()
            expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
            # The enrollment code cannot be reused: wait for the next 30-second step and use its code (a code for a
            # step ahead is accepted too, but near a step boundary it can fall outside the allowed drift).
            time.sleep(30 - time.time() % 30 + 0.5)
            page.fill("input[name=code]", totp_now(secret))
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Your tenants")).to_be_visible()

            # Create a tenant and invite a colleague (privileged: covered by the sign-in verification).
            page.get_by_role("main").get_by_role("link", name="New tenant").click()
            page.fill("input[name=name]", "Initech Labs")
            page.fill("input[name=slug]", "initech")
            page.get_by_role("button", name="Create tenant").click()
            expect(page.get_by_role("heading", name="Initech Labs")).to_be_visible()
            page.get_by_role("navigation", name="Tenant navigation").get_by_role("link", name="Members").click()
            page.get_by_role("link", name="Invite", exact=True).click()
            page.fill("input[name=email]", "bob@example.test")
            page.select_option("select[name=role]", "developer")
            page.get_by_role("button", name="Send invitation").click()
            expect(page.get_by_text("Invitation sent to bob@example.test")).to_be_visible()
            expect(page.get_by_text("bob@example.test developer")).to_be_visible()
            output.wait_for("You are invited to Initech Labs", seconds=10)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "members.png"), full_page=True)
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "accounts-flow-failure.png"), full_page=True)
            raise
        finally:
            browser.close()

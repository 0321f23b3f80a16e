"""The pages as a person sees them: Debian's chromium driven by Playwright against uvicorn."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ROOT, uvicorn_server

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "var" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with uvicorn_server(env=dict(os.environ)) as url:
        yield url


@pytest.fixture
def page(base_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        yield page
        browser.close()
        assert errors == [], errors  # no script errors, no failed asset loads


def test_landing_page_looks_right_and_its_copy_button_copies(page):
    page.goto("/")

    assert page.title() == "AI gateway and developer portal · Gatehouse"
    assert page.get_by_role("navigation", name="Main navigation").is_visible()
    assert page.get_by_role("heading", level=1).inner_text().startswith("One safe door")
    # Bootstrap's CSS is applied (not just linked): the navbar gets its flex layout.
    assert page.eval_on_selector("nav.navbar", "el => getComputedStyle(el).display") == "flex"

    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for(timeout=3000)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("from openai import OpenAI")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "landing.png"), full_page=True)


def test_narrow_screens_collapse_the_navigation(page):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")

    nav = page.get_by_role("navigation", name="Main navigation")
    toggler = nav.get_by_role("button", name="Toggle navigation")
    assert toggler.is_visible()
    assert not nav.get_by_role("link", name="API reference").is_visible()
    toggler.click()
    nav.get_by_role("link", name="API reference").wait_for(state="visible", timeout=3000)

"""The production configuration works end to end: collected, hashed static files and strict settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx
import pytest

from tests.servers import ROOT, uvicorn_server
from tests.test_settings import PRODUCTION_ENV

pytestmark = pytest.mark.slow


def test_production_serves_pages_with_hashed_static_files_and_security_headers(tmp_path):
    env = {
        **os.environ,
        **PRODUCTION_ENV,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",  # no TLS proxy in front of this test
        "GATEHOUSE_VAR_DIR": str(tmp_path),
    }
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr

    with uvicorn_server(env=env) as base_url:
        landing = httpx.get(f"{base_url}/")
        css_path = re.search(
            r'href="(/static/vendor/bootstrap-5\.3\.9/bootstrap\.min\.[0-9a-f]{12}\.css)"', landing.text
        )
        assert css_path, landing.text[:500]
        css = httpx.get(f"{base_url}{css_path[1]}", headers={"accept-encoding": "gzip"})
        missing = httpx.get(f"{base_url}/no/such/page")

    assert landing.status_code == 200
    assert landing.headers["x-frame-options"] == "DENY"
    assert landing.headers["x-content-type-options"] == "nosniff"
    assert css.status_code == 200
    assert "immutable" in css.headers["cache-control"]  # hashed names can be cached forever
    assert css.headers["content-encoding"] == "gzip"
    assert missing.status_code == 404
    assert "Traceback" not in missing.text
    assert "DEBUG" not in missing.text
    assert "This page does not exist" in missing.text

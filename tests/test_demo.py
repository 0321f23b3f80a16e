"""`make demo` end to end: a cold embedded start serves the portal and the mock, and Ctrl-C stops all of it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.servers import ROOT, OutputReader, embedded_env, free_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_demo_starts_cold_on_embedded_defaults_and_stops_everything(tmp_path, stop_signal):
    port, mock_port = free_port(), free_port()
    env = embedded_env(DEBUG="true", GATEHOUSE_VAR_DIR=str(tmp_path))  # no DATABASE_URL/REDIS_URL, empty var/
    started = time.monotonic()
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port), "--mock-port", str(mock_port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = OutputReader(demo)
    base, mock = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mock_port}"
    try:
        output.wait_for("Ctrl-C stops everything", seconds=120)
        cold_start = time.monotonic() - started
        landing = httpx.get(f"{base}/")
        ready = httpx.get(f"{base}/readyz").json()
        api_key = re.search(r"^\s+(gh_\S+)$", output.text, re.M)[1]
        reply = httpx.post(
            f"{base}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"authorization": f"Bearer {api_key}"},
        ).json()
    finally:
        demo.send_signal(stop_signal)
        try:
            demo.wait(timeout=20)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
        printed = output.close()

    assert cold_start < 120
    assert landing.status_code == 200
    assert ready["checks"]["database"]["vendor"] == "sqlite"
    assert reply["choices"][0]["message"]["content"] == "echo: Hi"
    assert (tmp_path / "gatehouse.sqlite3").exists()
    assert "Gatehouse demo is running" in printed
    assert "owner@acme.test" in printed
    assert f"curl -s {base}/v1/chat/completions" in printed
    assert demo.returncode == 0, printed
    for url in (f"{base}/healthz", f"{mock}/v1/models"):  # the signal stopped both servers
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=1)


def test_seed_demo_json_is_one_object_a_script_can_read(tmp_path):
    env = embedded_env(DEBUG="true", GATEHOUSE_VAR_DIR=str(tmp_path))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)

    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    summary = json.loads(result.stdout)
    assert set(summary) >= {"base_url", "api_key", "users", "tenants"}
    assert all(set(user) >= {"email", "password", "tenant", "role"} for user in summary["users"])

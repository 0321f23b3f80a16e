"""compose.yaml is valid and describes the production topology."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.servers import ROOT

pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="Debian's docker-compose is not installed (.ci/run installs it)",
)


def _compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "GATEHOUSE_ENCRYPTION_KEY")}
    return subprocess.run(
        ["docker-compose", "-f", "compose.yaml", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_valid_and_runs_the_whole_topology():
    secrets = {"SECRET_KEY": "s" * 50, "GATEHOUSE_ENCRYPTION_KEY": "k" * 44}

    valid = _compose("config", "-q", **secrets)
    services = _compose("config", "--services", **secrets)

    assert valid.returncode == 0, valid.stderr
    assert set(services.stdout.split()) == {"web", "worker", "beat", "postgres", "redis"}


def test_compose_refuses_to_start_without_secrets():
    result = _compose("config", "-q")

    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr

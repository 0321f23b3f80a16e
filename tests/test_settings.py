"""Settings read the environment: embedded by default, real services when configured, strict in production."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from portal.env import env_bool, env_int, env_list, env_secret
from tests.servers import ROOT

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "GATEHOUSE_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    "ALLOWED_HOSTS": "gatehouse.example.com",
}


def _django(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "GATEHOUSE_ENCRYPTION_KEY")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.django_db
def test_database_is_the_configured_one():
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        assert connection.vendor == "postgresql"
    else:
        assert connection.vendor == "sqlite"
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_cache_and_channel_layer_follow_redis_url(settings):
    if os.environ.get("REDIS_URL"):
        assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
        assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
        assert settings.CELERY_TASK_ALWAYS_EAGER is False
    else:
        assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
        assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
        assert settings.CELERY_TASK_ALWAYS_EAGER is True


def test_celery_app_uses_the_configured_broker_or_runs_eagerly():
    from portal import celery_app

    if os.environ.get("REDIS_URL"):
        assert celery_app.conf.broker_url == os.environ["REDIS_URL"]
        assert celery_app.conf.task_always_eager is False
    else:
        assert celery_app.conf.broker_url == "memory://"
        assert celery_app.conf.task_always_eager is True
    assert celery_app.conf.task_acks_late is True  # a worker that dies mid-task does not lose it


@pytest.mark.slow
@pytest.mark.parametrize("missing", ["SECRET_KEY", "GATEHOUSE_ENCRYPTION_KEY"])
def test_production_refuses_to_start_without_its_secrets(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}

    result = _django("manage.py", "check", env=env)

    assert result.returncode != 0
    assert f"{missing} is required when DEBUG is off" in result.stderr


@pytest.mark.slow
def test_deploy_checks_pass_with_production_settings():
    result = _django("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_deploy_checks_catch_a_debug_deployment():
    result = _django(
        "manage.py", "check", "--deploy", "--fail-level", "WARNING", env={**PRODUCTION_ENV, "DEBUG": "true"}
    )

    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG on in deployment


def test_env_helpers_parse_and_reject_clearly(monkeypatch):
    monkeypatch.setenv("GH_FLAG", "yes")
    monkeypatch.setenv("GH_NUMBER", "12")
    monkeypatch.setenv("GH_LIST", "a, b,,c")
    monkeypatch.setenv("GH_BAD_FLAG", "maybe")
    monkeypatch.setenv("GH_BAD_NUMBER", "twelve")
    monkeypatch.delenv("GH_SECRET", raising=False)

    assert env_bool("GH_FLAG") is True
    assert env_bool("GH_UNSET", default=True) is True
    assert env_int("GH_NUMBER", 3) == 12
    assert env_list("GH_LIST", []) == ["a", "b", "c"]
    assert env_secret("GH_SECRET", required=False, dev_default="dev") == "dev"
    with pytest.raises(ImproperlyConfigured, match="GH_BAD_FLAG must be a boolean"):
        env_bool("GH_BAD_FLAG")
    with pytest.raises(ImproperlyConfigured, match="GH_BAD_NUMBER must be an integer"):
        env_int("GH_BAD_NUMBER", 1)
    with pytest.raises(ImproperlyConfigured, match="GH_SECRET is required"):
        env_secret("GH_SECRET", required=True, dev_default="dev")


@pytest.mark.slow
def test_a_malformed_encryption_key_fails_the_checks_at_start_up():
    result = _django("manage.py", "check", env={**PRODUCTION_ENV, "GATEHOUSE_ENCRYPTION_KEY": "too-short"})

    assert result.returncode != 0
    assert "gatehouse.E001" in result.stderr


@pytest.mark.slow
def test_manage_py_runs_on_a_fresh_clone_but_servers_default_to_production():
    bare = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "GATEHOUSE_ENCRYPTION_KEY")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=ROOT, env=bare, capture_output=True, text=True, timeout=120)

    command = run("manage.py", "check")
    server = run("-c", "import portal.asgi")

    assert command.returncode == 0, command.stderr
    assert server.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in server.stderr

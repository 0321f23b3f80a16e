"""Reads of the portal: the readiness report behind /readyz."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, dict[str, object]] = field(default_factory=dict)

    @property
    def is_ready(self) -> bool:
        return all(check["ok"] for check in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check["ok"]]


def _database_check() -> dict[str, object]:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        # Log the class and message (no credentials in either); the client only learns which part failed.
        logger.warning("readyz: database unreachable: %s: %s", type(exc).__name__, exc)
        connection.close()
        return {"ok": False, "vendor": connection.vendor, "error": "unreachable"}
    return {"ok": True, "vendor": connection.vendor}


def _redis_check(url: str) -> dict[str, object]:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        logger.warning("readyz: redis unreachable: %s", type(exc).__name__)
        return {"ok": False, "error": "unreachable"}
    finally:
        client.close()
    return {"ok": True}


def readiness_report() -> Readiness:
    checks = {"database": _database_check()}
    if settings.REDIS_URL:
        checks["redis"] = _redis_check(settings.REDIS_URL)
    return Readiness(checks=checks)

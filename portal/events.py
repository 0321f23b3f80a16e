"""Process-to-process events: "access to these keys changed", so every gateway worker drops its cached view.

With REDIS_URL the event is a Redis PUBLISH on the channel (every web worker subscribes); without it
(embedded mode, one process) listeners registered here are called directly. Events are sent only after the
transaction that caused them commits, so a listener never reloads state that is not there yet.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

ACCESS_CHANNEL = "gatehouse:access"

_listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = defaultdict(list)


def listen(channel: str, callback: Callable[[dict[str, Any]], None]) -> None:
    """Register an in-process listener (embedded mode, and tests)."""
    _listeners[channel].append(callback)


def unlisten(channel: str, callback: Callable[[dict[str, Any]], None]) -> None:
    _listeners[channel].remove(callback)


def _send(channel: str, message: dict[str, Any]) -> None:
    for callback in list(_listeners[channel]):
        callback(message)
    if settings.REDIS_URL:
        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
            try:
                client.publish(channel, json.dumps(message))
            finally:
                client.close()
        except redis.RedisError:
            # Gateways also expire their snapshot on a timer, so a lost event delays a change; it never leaks.
            logger.warning("could not publish %s on %s", message.get("event"), channel)


def publish_on_commit(channel: str, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: _send(channel, message))


def access_changed(
    *, key_ids: list[str] | None = None, application_ids: list[int] | None = None, everything: bool = False
) -> None:
    """Tell gateways that access changed for these keys (by public id), every key of these applications, or
    (``everything``: a policy above the application level changed) every key."""
    message: dict[str, Any] = {
        "event": "access_changed",
        "key_ids": sorted(key_ids or []),
        "application_ids": sorted(application_ids or []),
    }
    if everything:
        message["everything"] = True
    publish_on_commit(ACCESS_CHANNEL, message)


def routes_changed(*, api_ids: list[int]) -> None:
    """Tell gateways that the deployments serving these APIs changed."""
    publish_on_commit(ACCESS_CHANNEL, {"event": "routes_changed", "api_ids": sorted(api_ids)})

"""Websocket consumers of the portal."""

from __future__ import annotations

import uuid
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class HealthConsumer(AsyncJsonWebsocketConsumer):
    """Proves the websocket path end to end: the message goes out through the channel layer and comes back.

    With REDIS_URL set that is a round trip through Redis, so a healthy answer means live dashboards can work.
    """

    async def connect(self) -> None:
        self.group = f"healthz.{uuid.uuid4().hex}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.channel_layer.group_send(self.group, {"type": "health.echo", "status": "ok"})

    async def health_echo(self, event: dict[str, Any]) -> None:
        await self.send_json({"status": event["status"], "channel_layer": type(self.channel_layer).__name__})
        await self.close()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

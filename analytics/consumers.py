"""The live dashboard's websocket: /ws/t/<tenant_slug>/live/ — one message a second, to members only.

Every socket of a tenant joins the channel-layer group ``live.<tenant id>``. A ticker runs in each web process
that has such a socket; once a second the tickers race for a Redis lock named after the tenant and the second,
and the winner reads the figures and sends them to the group, which channels-redis delivers to the sockets of
every process. So with several web processes each socket still gets one message a second (embedded: one
process, in-memory layer, no lock needed). Members without ``analytics.view_costs`` get the figures without
spend. Anonymous users, non-members and other tenants' members are refused before the socket is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from analytics import live
from tenants.access import TenantContext, resolve_tenant
from tenants.permissions import Perm

logger = logging.getLogger("gatehouse.analytics.live")
TICK_SECONDS = 1.0


def group_of(tenant_id: int) -> str:
    return f"live.{tenant_id}"


class _Ticker:
    """Per process and tenant: sends the figures to the group once a second while a local socket listens."""

    def __init__(self, tenant_ctx: TenantContext) -> None:
        self.tenant = tenant_ctx.tenant
        self.listeners = 0
        self.task: asyncio.Task[None] | None = None
        self.redis = aioredis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None

    async def _won(self, second: int) -> bool:
        if self.redis is None:
            return True
        key = f"{settings.CACHE_KEY_PREFIX}:live:tick:{self.tenant.pk}:{second}"
        return bool(await self.redis.set(key, "1", nx=True, ex=5))

    async def run(self) -> None:
        layer = get_channel_layer()
        assert layer is not None
        while True:
            second = int(time.time())
            try:
                if await self._won(second):
                    figures = await sync_to_async(live.figures_for)(self.tenant, with_costs=True)
                    await layer.group_send(group_of(self.tenant.pk), {"type": "live.figures", "figures": figures})
            except Exception as error:  # Redis away for a moment: skip the tick, the page keeps the last one
                logger.warning("live ticker for tenant %s skipped a tick: %s", self.tenant.pk, type(error).__name__)
            await asyncio.sleep(max(0.05, second + TICK_SECONDS - time.time()))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.redis is not None:
            await self.redis.aclose()


_TICKERS: dict[int, _Ticker] = {}


class LiveDashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["tenant_slug"]
        ctx = await sync_to_async(resolve_tenant)(user, slug) if user and user.is_authenticated else None
        if ctx is None or not ctx.can(Perm.ANALYTICS_VIEW_USAGE):
            await self.close(code=4403)
            return
        self.tenant_id = ctx.tenant.pk
        self.with_costs = ctx.can(Perm.ANALYTICS_VIEW_COSTS)
        await self.channel_layer.group_add(group_of(self.tenant_id), self.channel_name)
        await self.accept()
        ticker = _TICKERS.get(self.tenant_id)
        if ticker is None or ticker.task is None or ticker.task.done():
            ticker = _TICKERS[self.tenant_id] = _Ticker(ctx)
            ticker.task = asyncio.get_running_loop().create_task(ticker.run(), name=f"live-{self.tenant_id}")
        ticker.listeners += 1

    async def live_figures(self, event: dict[str, Any]) -> None:
        figures = dict(event["figures"])
        if not self.with_costs:
            figures.pop("spend_today_micros", None)
            figures.pop("spend_today_since", None)
        await self.send_json(figures)

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "tenant_id"):
            return
        await self.channel_layer.group_discard(group_of(self.tenant_id), self.channel_name)
        ticker = _TICKERS.get(self.tenant_id)
        if ticker is not None:
            ticker.listeners -= 1
            if ticker.listeners <= 0:
                _TICKERS.pop(self.tenant_id, None)
                await ticker.close()

"""ASGI lifespan: start-up and shut-down of process-wide resources.

Nothing process-wide exists yet; the gateway's pooled upstream client and its policy-snapshot listener will
start and stop here. Answering the protocol keeps servers from logging it as unsupported.
"""

from __future__ import annotations

from typing import Any

Scope = dict[str, Any]


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""The ASGI entry point: `portal.asgi:application`, served by uvicorn (see Makefile and compose.yaml).

HTTP under /v1/ goes to the gateway's own ASGI app (gateway/proxy/app.py), ahead of Django's request
machinery, which alone would cap throughput far below what a gateway needs; all other HTTP goes to Django,
websockets to channels consumers; lifespan starts and stops process-wide resources (portal/lifespan.py).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry ready)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from gateway.proxy.app import app as gateway_app  # noqa: E402
from portal.lifespan import lifespan  # noqa: E402
from portal.routing import websocket_urlpatterns  # noqa: E402


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"].startswith("/v1/"):
        await gateway_app(scope, receive, send)
    else:
        await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "lifespan": lifespan,
    }
)

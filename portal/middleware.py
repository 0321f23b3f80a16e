"""Cross-cutting HTTP middleware of the Django side (the gateway hot path sets its own headers)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

# A client's id is echoed only when it is short and plain, so it cannot smuggle header or log injection.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_for(incoming: str | None) -> str:
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives every request an id (the client's `x-request-id` if sane) and returns it on every response."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        request_id = self._assign(request)
        response = self.get_response(request)
        assert isinstance(response, HttpResponseBase)
        response["x-request-id"] = request_id
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request_id = self._assign(request)
        response = await self.get_response(request)  # type: ignore[misc]
        response["x-request-id"] = request_id
        return response

    @staticmethod
    def _assign(request: HttpRequest) -> str:
        request_id = request_id_for(request.headers.get("x-request-id"))
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id

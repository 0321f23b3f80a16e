"""Errors in OpenAI's wire format: ``{"error": {"message", "type", "param", "code"}}`` with the right status."""

from __future__ import annotations

import json


class GatewayError(Exception):
    """A failure the client is told about. The message is written for the client and never holds secrets."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode()


def invalid_key() -> GatewayError:
    return GatewayError(
        401, "Incorrect API key provided. Send it as 'Authorization: Bearer gh_…'.", code="invalid_api_key"
    )


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_request_error")

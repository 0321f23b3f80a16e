"""The error every service raises when a request breaks a business rule.

Its message is written for the person who made the request and is safe to show them (no internals); views turn
it into a form error or a flash message, API views into a 400 (or the ``status`` given).
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str, *, code: str = "invalid", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, object]:
    """What every page template may use: the public base URL shown in code samples."""
    return {"gateway_base_url": settings.GATEHOUSE_PUBLIC_BASE_URL}

"""System checks: configuration mistakes found at start-up (`manage.py check`), not at the first request."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def encryption_key_check(app_configs: Any, **kwargs: Any) -> list[Error]:
    from portal.crypto import _fernet

    try:
        _fernet(settings.GATEHOUSE_ENCRYPTION_KEY)
    except ImproperlyConfigured as error:
        return [Error(str(error), id="gatehouse.E001")]
    return []

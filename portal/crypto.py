"""Encryption at rest for secrets Gatehouse must use later (provider credentials), with Fernet.

``GATEHOUSE_ENCRYPTION_KEY`` holds one key, or several separated by commas to rotate: the first encrypts,
all decrypt. Re-encrypting old rows is a matter of reading and saving them after adding the new key in front.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(Exception):
    """A stored secret cannot be read with the configured keys (the key was changed without rotation)."""


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "GATEHOUSE_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated to rotate. "
            "Make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        ) from None


def encrypt(plaintext: str) -> str:
    return _fernet(settings.GATEHOUSE_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.GATEHOUSE_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError("A stored credential cannot be decrypted with GATEHOUSE_ENCRYPTION_KEY.") from None

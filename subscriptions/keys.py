"""The API key format of SPEC §3: ``gh_`` + 8-character public id + ``_`` + 32-character secret + 6-character
checksum, all base62 (so a double-click selects the whole key).

The checksum (CRC32 of everything before it, in base62) lets the gateway turn away a mistyped key without any
lookup; the public id finds the stored record; only an HMAC-SHA256 digest of the secret is ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIX = "gh_"
PUBLIC_ID_LENGTH, SECRET_LENGTH, CHECKSUM_LENGTH = 8, 32, 6
_KEY = re.compile(
    rf"^{PREFIX}([0-9A-Za-z]{{{PUBLIC_ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        chars.append(BASE62[remainder])
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


@dataclass(frozen=True)
class ParsedKey:
    public_id: str
    secret: str


def parse(raw: str) -> ParsedKey | None:
    """The parts of a well-formed key with a valid checksum; None otherwise (no database involved)."""
    match = _KEY.match(raw)
    if match is None:
        return None
    public_id, secret, check = match.groups()
    if not hmac.compare_digest(checksum(f"{PREFIX}{public_id}_{secret}"), check):
        return None
    return ParsedKey(public_id=public_id, secret=secret)


@lru_cache(maxsize=2)
def _hmac_key(secret_key: str) -> bytes:
    # Derived from SECRET_KEY: a leaked database alone cannot be used to test guesses. Rotating SECRET_KEY
    # therefore invalidates every API key (documented in README, Configuration).
    return hashlib.sha256(f"gatehouse.api-key:{secret_key}".encode()).digest()


def digest(secret: str) -> str:
    return hmac.new(_hmac_key(settings.SECRET_KEY), secret.encode(), hashlib.sha256).hexdigest()


def digest_matches(secret: str, stored: str) -> bool:
    """Constant-time comparison of a presented secret with a stored digest."""
    return hmac.compare_digest(digest(secret), stored)


def generate() -> tuple[str, str, str]:
    """A new key: (public id, secret, the full key to show once)."""
    public_id = "".join(secrets.choice(BASE62) for _ in range(PUBLIC_ID_LENGTH))
    secret = "".join(secrets.choice(BASE62) for _ in range(SECRET_LENGTH))
    body = f"{PREFIX}{public_id}_{secret}"
    return public_id, secret, body + checksum(body)

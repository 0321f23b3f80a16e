"""Personal access tokens for the management API: ``Authorization: Token ghtok_<id>_<secret>``."""

from __future__ import annotations

import hashlib
import hmac
import re

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenants.models import PersonalAccessToken, User
from tenants.services import PAT_PREFIX, pat_touch

_TOKEN = re.compile(rf"^{PAT_PREFIX}([A-Za-z0-9]{{8}})_([A-Za-z0-9]{{40}})$")


class PersonalAccessTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[User, PersonalAccessToken] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0].lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as: Authorization: Token <token>.")
        match = _TOKEN.match(header[1])
        # One answer for every failure, so a caller cannot tell a wrong secret from an unknown or expired token.
        failed = exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        if match is None:
            raise failed
        public_id, secret = match.groups()
        token = PersonalAccessToken.objects.select_related("user", "tenant").filter(public_id=public_id).first()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if token is None or not hmac.compare_digest(token.digest, digest):
            raise failed
        if token.revoked_at is not None or token.expires_at <= timezone.now() or not token.user.is_active:
            raise failed
        pat_touch(token=token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class PersonalAccessTokenScheme(OpenApiAuthenticationExtension):
    """Describes the token scheme in the OpenAPI schema (drf-spectacular finds it by import)."""

    target_class = "tenants.api.authentication.PersonalAccessTokenAuthentication"
    name = "personalAccessToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token ghtok_<id>_<secret>` — create one under Account → API tokens.",
        }

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.api.serializers import MeOutput
from tenants.models import User
from tenants.selectors import memberships_of_user


class MeApi(APIView):
    """The signed-in user and the tenants they belong to."""

    @extend_schema(responses=MeOutput, operation_id="me_retrieve")
    def get(self, request: Request) -> Response:
        user = cast(User, request.user)  # IsAuthenticated (the default permission) holds
        data = {
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "memberships": list(memberships_of_user(user=user)),
        }
        return Response(MeOutput(data).data)

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.api.serializers import MeOutput
from tenants.selectors import memberships_of_user


class MeApi(APIView):
    """The signed-in user and the tenants they belong to."""

    @extend_schema(responses=MeOutput, operation_id="me_retrieve")
    def get(self, request: Request) -> Response:
        user = request.user
        data = {
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "memberships": list(memberships_of_user(user=user)),  # type: ignore[arg-type]
        }
        return Response(MeOutput(data).data)

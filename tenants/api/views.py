"""Management API of the tenants app: the current user, tenants, members, invitations, audit events."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants import selectors, services
from tenants.api.access import TenantAPIView
from tenants.api.serializers import (
    AuditEventFilter,
    AuditEventOutput,
    InvitationCreateInput,
    InvitationOutput,
    MemberOutput,
    MemberUpdateInput,
    MeOutput,
    TenantCreateInput,
    TenantOutput,
    TenantUpdateInput,
)
from tenants.mfa import user_has_mfa
from tenants.models import Invitation, Membership, PersonalAccessToken, User
from tenants.permissions import Perm
from tenants.scoping import get_for_tenant_or_404
from tenants.services import Actor


def _user(request: Request) -> User:
    return cast(User, request.user)


def _actor(request: Request) -> Actor:
    return Actor.from_request(request._request)


class MeApi(APIView):
    """The signed-in user and the tenants they belong to."""

    @extend_schema(responses=MeOutput, operation_id="me_retrieve")
    def get(self, request: Request) -> Response:
        user = _user(request)
        memberships = selectors.memberships_of_user(user=user)
        if isinstance(request.auth, PersonalAccessToken):
            memberships = memberships.filter(tenant=request.auth.tenant)
        data = {
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "has_mfa": user_has_mfa(user),
            "memberships": list(memberships),
        }
        return Response(MeOutput(data).data)


class TenantListApi(APIView):
    @extend_schema(responses=TenantOutput(many=True), operation_id="tenants_list")
    def get(self, request: Request) -> Response:
        memberships = selectors.memberships_of_user(user=_user(request))
        if isinstance(request.auth, PersonalAccessToken):
            memberships = memberships.filter(tenant=request.auth.tenant)
        return Response(TenantOutput([m.tenant for m in memberships], many=True).data)

    @extend_schema(request=TenantCreateInput, responses={201: TenantOutput}, operation_id="tenants_create")
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, PersonalAccessToken):
            raise PermissionDenied("Tokens act within one tenant; create tenants in the web UI.")
        data = TenantCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_create(owner=_user(request), actor=_actor(request), **data.validated_data)
        return Response(TenantOutput(tenant).data, status=status.HTTP_201_CREATED)


class TenantDetailApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "PATCH": Perm.TENANT_MANAGE}

    @extend_schema(responses=TenantOutput, operation_id="tenants_retrieve")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return Response(TenantOutput(self.tenant_ctx.tenant).data)

    @extend_schema(request=TenantUpdateInput, responses=TenantOutput, operation_id="tenants_update")
    def patch(self, request: Request, tenant_slug: str) -> Response:
        tenant = self.tenant_ctx.tenant
        data = TenantUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.tenant_update_settings(
            tenant=tenant,
            actor=_actor(request),
            name=values.get("name", tenant.name),
            require_mfa=values.get("require_mfa", tenant.require_mfa),
            default_region=values.get("default_region", tenant.default_region),
            timezone_name=values.get("timezone", tenant.timezone),
        )
        return Response(TenantOutput(tenant).data)


class MemberListApi(TenantAPIView):
    permissions = {"GET": Perm.MEMBERS_VIEW}

    @extend_schema(responses=MemberOutput(many=True), operation_id="members_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return Response(MemberOutput(selectors.members_of_tenant(tenant=self.tenant_ctx.tenant), many=True).data)


class MemberDetailApi(TenantAPIView):
    permissions = {"GET": Perm.MEMBERS_VIEW, "PATCH": Perm.MEMBERS_MANAGE, "DELETE": Perm.MEMBERS_MANAGE}

    def _member(self, member_id: int) -> Membership:
        return get_for_tenant_or_404(Membership, tenant=self.tenant_ctx.tenant, pk=member_id)

    @extend_schema(responses=MemberOutput, operation_id="members_retrieve")
    def get(self, request: Request, tenant_slug: str, member_id: int) -> Response:
        return Response(MemberOutput(self._member(member_id)).data)

    @extend_schema(request=MemberUpdateInput, responses=MemberOutput, operation_id="members_update")
    def patch(self, request: Request, tenant_slug: str, member_id: int) -> Response:
        membership = self._member(member_id)
        data = MemberUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.membership_change_role(
            membership=membership,
            role=data.validated_data["role"],
            actor=_actor(request),
            by=self.tenant_ctx.membership,
        )
        return Response(MemberOutput(membership).data)

    @extend_schema(responses={204: None}, operation_id="members_destroy")
    def delete(self, request: Request, tenant_slug: str, member_id: int) -> Response:
        services.membership_remove(
            membership=self._member(member_id), actor=_actor(request), by=self.tenant_ctx.membership
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationListApi(TenantAPIView):
    permissions = {"GET": Perm.MEMBERS_MANAGE, "POST": Perm.MEMBERS_MANAGE}

    @extend_schema(responses=InvitationOutput(many=True), operation_id="invitations_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        invitations = selectors.pending_invitations(tenant=self.tenant_ctx.tenant)
        return Response(InvitationOutput(invitations, many=True).data)

    @extend_schema(request=InvitationCreateInput, responses={201: InvitationOutput}, operation_id="invitations_create")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = InvitationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _ = services.invitation_create(
            tenant=self.tenant_ctx.tenant,
            actor=_actor(request),
            by=self.tenant_ctx.membership,
            accept_url_base=request.build_absolute_uri("/"),
            **data.validated_data,
        )
        return Response(InvitationOutput(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailApi(TenantAPIView):
    permissions = {"DELETE": Perm.MEMBERS_MANAGE}

    @extend_schema(responses={204: None}, operation_id="invitations_destroy")
    def delete(self, request: Request, tenant_slug: str, invitation_id: int) -> Response:
        invitation = get_for_tenant_or_404(Invitation, tenant=self.tenant_ctx.tenant, pk=invitation_id)
        services.invitation_revoke(invitation=invitation, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventListApi(TenantAPIView):
    permissions = {"GET": Perm.AUDIT_VIEW}

    @extend_schema(
        parameters=[AuditEventFilter], responses=AuditEventOutput(many=True), operation_id="audit_events_list"
    )
    def get(self, request: Request, tenant_slug: str) -> Response:
        filters = AuditEventFilter(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = selectors.audit_events(tenant=self.tenant_ctx.tenant, **filters.validated_data)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(AuditEventOutput(page, many=True).data)

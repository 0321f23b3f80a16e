"""Management API of applications, keys, subscriptions, change requests and approvals.

Same permissions as the pages (tenants/permissions.py): consumers manage applications and keys and ask for
access; publishers decide. A full key appears in exactly one response: the one that created it.
"""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.models import Plan
from gateway.selectors import api_for_viewer
from portal.errors import DomainError
from subscriptions import selectors, services
from subscriptions.api.serializers import (
    ApplicationInput,
    ApplicationOutput,
    ApprovalsOutput,
    ChangeRequestInput,
    ChangeRequestOutput,
    DecisionInput,
    KeyCreatedOutput,
    KeyInput,
    KeyOutput,
    RotateInput,
    StateChangeInput,
    SubscriptionOutput,
    SubscriptionRequestInput,
)
from subscriptions.models import ApiKey, Application, Subscription
from tenants.api.access import TenantAPIView
from tenants.permissions import Perm
from tenants.scoping import get_for_tenant_or_404
from tenants.services import Actor


def _actor(request: Request) -> Actor:
    return Actor.from_request(request._request)


def _created_key(key: ApiKey, full: str) -> Response:
    data = dict(KeyOutput(key).data)
    data["key"] = full
    response = Response(data, status=status.HTTP_201_CREATED)
    response["Cache-Control"] = "no-store"
    return response


class ApplicationListApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "POST": Perm.APPS_MANAGE}

    @extend_schema(responses=ApplicationOutput(many=True), operation_id="applications_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return Response(ApplicationOutput(Application.objects.for_tenant(self.tenant_ctx.tenant), many=True).data)

    @extend_schema(request=ApplicationInput, responses={201: ApplicationOutput}, operation_id="applications_create")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = ApplicationInput(data=request.data)
        data.is_valid(raise_exception=True)
        app = services.application_create(tenant=self.tenant_ctx.tenant, actor=_actor(request), **data.validated_data)
        return Response(ApplicationOutput(app).data, status=status.HTTP_201_CREATED)


class ApplicationDetailApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "DELETE": Perm.APPS_MANAGE}

    @extend_schema(responses=ApplicationOutput, operation_id="applications_retrieve")
    def get(self, request: Request, tenant_slug: str, app_slug: str) -> Response:
        return Response(
            ApplicationOutput(get_for_tenant_or_404(Application, tenant=self.tenant_ctx.tenant, slug=app_slug)).data
        )

    @extend_schema(responses={204: None}, operation_id="applications_destroy")
    def delete(self, request: Request, tenant_slug: str, app_slug: str) -> Response:
        app = get_for_tenant_or_404(Application, tenant=self.tenant_ctx.tenant, slug=app_slug)
        services.application_delete(application=app, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyListApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "POST": Perm.KEYS_MANAGE}

    @extend_schema(responses=KeyOutput(many=True), operation_id="keys_list")
    def get(self, request: Request, tenant_slug: str, app_slug: str) -> Response:
        app = get_for_tenant_or_404(Application, tenant=self.tenant_ctx.tenant, slug=app_slug)
        return Response(KeyOutput(app.keys.order_by("-created_at"), many=True).data)

    @extend_schema(request=KeyInput, responses={201: KeyCreatedOutput}, operation_id="keys_create")
    def post(self, request: Request, tenant_slug: str, app_slug: str) -> Response:
        app = get_for_tenant_or_404(Application, tenant=self.tenant_ctx.tenant, slug=app_slug)
        data = KeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        key, full = services.api_key_create(application=app, actor=_actor(request), **data.validated_data)
        return _created_key(key, full)


class KeyDetailApi(TenantAPIView):
    permissions = {"DELETE": Perm.KEYS_MANAGE}

    @extend_schema(responses={204: None}, operation_id="keys_revoke")
    def delete(self, request: Request, tenant_slug: str, app_slug: str, key_id: int) -> Response:
        app = get_for_tenant_or_404(Application, tenant=self.tenant_ctx.tenant, slug=app_slug)
        key = app.keys.filter(pk=key_id).first()
        if key is None:
            raise NotFound("No such key.")
        services.api_key_revoke(key=key, actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyRotateApi(TenantAPIView):
    permissions = {"POST": Perm.KEYS_MANAGE}

    @extend_schema(request=RotateInput, responses={201: KeyCreatedOutput}, operation_id="keys_rotate")
    def post(self, request: Request, tenant_slug: str, app_slug: str, key_id: int) -> Response:
        app = get_for_tenant_or_404(Application, tenant=self.tenant_ctx.tenant, slug=app_slug)
        key = app.keys.filter(pk=key_id).first()
        if key is None:
            raise NotFound("No such key.")
        data = RotateInput(data=request.data)
        data.is_valid(raise_exception=True)
        grace = timedelta(seconds=data.validated_data["grace_seconds"])
        new, full = services.api_key_rotate(key=key, actor=_actor(request), grace=grace)
        return _created_key(new, full)


class SubscriptionListApi(TenantAPIView):
    """The tenant's own subscriptions (as a consumer), and asking for a new one."""

    permissions = {"GET": Perm.TENANT_VIEW, "POST": Perm.SUBSCRIPTIONS_REQUEST}

    @extend_schema(responses=SubscriptionOutput(many=True), operation_id="subscriptions_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        subscriptions = Subscription.objects.filter(consumer=self.tenant_ctx.tenant).select_related(
            "application", "consumer", "publisher", "api", "plan"
        )
        return Response(SubscriptionOutput(subscriptions, many=True).data)

    @extend_schema(
        request=SubscriptionRequestInput, responses={201: SubscriptionOutput}, operation_id="subscriptions_request"
    )
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = SubscriptionRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        app = get_for_tenant_or_404(Application, tenant=self.tenant_ctx.tenant, slug=values["application"])
        api = api_for_viewer(user=request.user, publisher_slug=values["publisher"], api_slug=values["api"])  # type: ignore[arg-type]
        if api is None:
            raise NotFound("No such API.")
        plan = Plan.objects.filter(api=api, slug=values["plan"]).first()
        if plan is None:
            raise DomainError("No such plan for this API.")
        subscription = services.subscription_request(
            application=app,
            api=api,
            plan=plan,
            actor=_actor(request),
            justification=values["justification"],
            ends_at=values["ends_at"],
        )
        return Response(SubscriptionOutput(subscription).data, status=status.HTTP_201_CREATED)


class ChangeRequestCreateApi(TenantAPIView):
    permissions = {"POST": Perm.SUBSCRIPTIONS_REQUEST}

    @extend_schema(
        request=ChangeRequestInput, responses={201: ChangeRequestOutput}, operation_id="change_requests_create"
    )
    def post(self, request: Request, tenant_slug: str, subscription_id: int) -> Response:
        subscription = selectors.subscription_of_consumer_or_404(tenant=self.tenant_ctx.tenant, pk=subscription_id)
        data = ChangeRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        new_plan = None
        if values["new_plan"]:
            new_plan = Plan.objects.filter(api=subscription.api, slug=values["new_plan"]).first()
            if new_plan is None:
                raise DomainError("No such plan for this API.")
        change = services.change_request_create(
            subscription=subscription,
            actor=_actor(request),
            new_plan=new_plan,
            extra_tokens=values["extra_tokens"],
            extra_models=values["extra_models"],
            ends_at=values["ends_at"],
            justification=values["justification"],
        )
        return Response(ChangeRequestOutput(change).data, status=status.HTTP_201_CREATED)


class ApprovalsApi(TenantAPIView):
    """What waits for this publisher's decision."""

    permissions = {"GET": Perm.TENANT_VIEW}

    @extend_schema(responses=ApprovalsOutput, operation_id="approvals_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        tenant = self.tenant_ctx.tenant
        return Response(
            {
                "subscriptions": SubscriptionOutput(
                    selectors.subscriptions_pending_for_publisher(tenant=tenant).select_related(
                        "consumer", "publisher"
                    ),
                    many=True,
                ).data,
                "change_requests": ChangeRequestOutput(
                    selectors.change_requests_pending_for_publisher(tenant=tenant), many=True
                ).data,
            }
        )


class SubscriptionDecisionApi(TenantAPIView):
    permissions = {"POST": Perm.SUBSCRIPTIONS_APPROVE}

    @extend_schema(request=DecisionInput, responses=SubscriptionOutput, operation_id="subscriptions_decide")
    def post(self, request: Request, tenant_slug: str, subscription_id: int) -> Response:
        subscription = selectors.subscription_of_publisher_or_404(tenant=self.tenant_ctx.tenant, pk=subscription_id)
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        decide = (
            services.subscription_approve
            if data.validated_data["decision"] == "approve"
            else services.subscription_reject
        )
        decide(subscription=subscription, actor=_actor(request), reason=data.validated_data["reason"])
        return Response(SubscriptionOutput(subscription).data)


class SubscriptionStateApi(TenantAPIView):
    permissions = {"POST": Perm.SUBSCRIPTIONS_APPROVE}

    @extend_schema(request=StateChangeInput, responses=SubscriptionOutput, operation_id="subscriptions_change_state")
    def post(self, request: Request, tenant_slug: str, subscription_id: int) -> Response:
        subscription = selectors.subscription_of_publisher_or_404(tenant=self.tenant_ctx.tenant, pk=subscription_id)
        data = StateChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        action = {
            "suspend": services.subscription_suspend,
            "resume": services.subscription_resume,
            "revoke": services.subscription_revoke,
        }[data.validated_data["action"]]
        action(subscription=subscription, actor=_actor(request), reason=data.validated_data["reason"])
        return Response(SubscriptionOutput(subscription).data)


class ChangeRequestDecisionApi(TenantAPIView):
    permissions = {"POST": Perm.SUBSCRIPTIONS_APPROVE}

    @extend_schema(request=DecisionInput, responses=ChangeRequestOutput, operation_id="change_requests_decide")
    def post(self, request: Request, tenant_slug: str, change_id: int) -> Response:
        change = selectors.change_request_of_publisher_or_404(tenant=self.tenant_ctx.tenant, pk=change_id)
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        change = services.change_request_decide(change_request=change, actor=_actor(request), **data.validated_data)
        return Response(ChangeRequestOutput(change).data)

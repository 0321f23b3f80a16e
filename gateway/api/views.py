"""Management API of the catalog: publishers manage their APIs, versions and plans; everyone browses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway import policy_documents, selectors, services
from gateway.api.serializers import (
    ApiInput,
    ApiOutput,
    ApiUpdateInput,
    CatalogEntryOutput,
    PlanInput,
    PlanOutput,
    PolicyChangeOutput,
    PolicyDocumentInput,
    PolicyDocumentOutput,
    PolicyVersionOutput,
    RollbackInput,
    VersionInput,
    VersionOutput,
    VersionStatusInput,
)
from gateway.models import AiApi, ApiVersion
from tenants.api.access import TenantAPIView
from tenants.permissions import Perm
from tenants.scoping import get_for_tenant_or_404
from tenants.services import Actor


def _actor(request: Request) -> Actor:
    return Actor.from_request(request._request)


def _entry(api: AiApi) -> dict[str, Any]:
    data = dict(ApiOutput(api).data)
    data["versions"] = VersionOutput(selectors.serving_versions(api=api), many=True).data
    data["plans"] = PlanOutput(selectors.active_plans(api=api), many=True).data
    return data


class CatalogListApi(APIView):
    """APIs listed to the caller (public ones, and their own tenants')."""

    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="Search words"), OpenApiParameter("kind", str)],
        responses=ApiOutput(many=True),
        operation_id="catalog_list",
    )
    def get(self, request: Request) -> Response:
        apis = selectors.catalog_for(
            user=request.user,  # type: ignore[arg-type]
            query=request.query_params.get("q", "")[:100],
            kind=request.query_params.get("kind", ""),
        )
        return Response(ApiOutput(apis[:200], many=True).data)


class CatalogDetailApi(APIView):
    @extend_schema(responses=CatalogEntryOutput, operation_id="catalog_retrieve")
    def get(self, request: Request, publisher_slug: str, api_slug: str) -> Response:
        api = selectors.api_for_viewer(user=request.user, publisher_slug=publisher_slug, api_slug=api_slug)  # type: ignore[arg-type]
        if api is None:
            raise NotFound("No such API.")
        return Response(_entry(api))


class PublishedApiListApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "POST": Perm.CATALOG_PUBLISH}

    @extend_schema(responses=ApiOutput(many=True), operation_id="apis_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return Response(ApiOutput(AiApi.objects.for_tenant(self.tenant_ctx.tenant), many=True).data)

    @extend_schema(request=ApiInput, responses={201: ApiOutput}, operation_id="apis_create")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = ApiInput(data=request.data)
        data.is_valid(raise_exception=True)
        api = services.api_create(tenant=self.tenant_ctx.tenant, actor=_actor(request), **data.validated_data)
        return Response(ApiOutput(api).data, status=status.HTTP_201_CREATED)


class PublishedApiDetailApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "PATCH": Perm.CATALOG_PUBLISH}

    @extend_schema(responses=CatalogEntryOutput, operation_id="apis_retrieve")
    def get(self, request: Request, tenant_slug: str, api_slug: str) -> Response:
        return Response(_entry(get_for_tenant_or_404(AiApi, tenant=self.tenant_ctx.tenant, slug=api_slug)))

    @extend_schema(request=ApiUpdateInput, responses=ApiOutput, operation_id="apis_update")
    def patch(self, request: Request, tenant_slug: str, api_slug: str) -> Response:
        api = get_for_tenant_or_404(AiApi, tenant=self.tenant_ctx.tenant, slug=api_slug)
        data = ApiUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.api_update(api=api, actor=_actor(request), **data.validated_data)
        return Response(ApiOutput(api).data)


class VersionListApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "POST": Perm.CATALOG_PUBLISH}

    @extend_schema(responses=VersionOutput(many=True), operation_id="versions_list")
    def get(self, request: Request, tenant_slug: str, api_slug: str) -> Response:
        api = get_for_tenant_or_404(AiApi, tenant=self.tenant_ctx.tenant, slug=api_slug)
        return Response(VersionOutput(api.versions.all(), many=True).data)

    @extend_schema(request=VersionInput, responses={201: VersionOutput}, operation_id="versions_create")
    def post(self, request: Request, tenant_slug: str, api_slug: str) -> Response:
        api = get_for_tenant_or_404(AiApi, tenant=self.tenant_ctx.tenant, slug=api_slug)
        data = VersionInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.version_create(api=api, actor=_actor(request), **data.validated_data)
        return Response(VersionOutput(version).data, status=status.HTTP_201_CREATED)


class VersionStatusApi(TenantAPIView):
    permissions = {"POST": Perm.CATALOG_PUBLISH}

    @extend_schema(request=VersionStatusInput, responses=VersionOutput, operation_id="versions_set_status")
    def post(self, request: Request, tenant_slug: str, api_slug: str, version: str) -> Response:
        api = get_for_tenant_or_404(AiApi, tenant=self.tenant_ctx.tenant, slug=api_slug)
        found = ApiVersion.objects.filter(api=api, version=version).first()
        if found is None:
            raise NotFound("No such version.")
        data = VersionStatusInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.version_set_status(version=found, actor=_actor(request), **data.validated_data)
        return Response(VersionOutput(found).data)


class PlanListApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW, "POST": Perm.CATALOG_PUBLISH}

    @extend_schema(responses=PlanOutput(many=True), operation_id="plans_list")
    def get(self, request: Request, tenant_slug: str, api_slug: str) -> Response:
        api = get_for_tenant_or_404(AiApi, tenant=self.tenant_ctx.tenant, slug=api_slug)
        return Response(PlanOutput(api.plans.all(), many=True).data)

    @extend_schema(request=PlanInput, responses={201: PlanOutput}, operation_id="plans_create")
    def post(self, request: Request, tenant_slug: str, api_slug: str) -> Response:
        api = get_for_tenant_or_404(AiApi, tenant=self.tenant_ctx.tenant, slug=api_slug)
        data = PlanInput(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_create(api=api, actor=_actor(request), **data.validated_data)
        return Response(PlanOutput(plan).data, status=status.HTTP_201_CREATED)


# --- policy documents (policy as code) -----------------------------------------------------------------------


def _change(result: services.PolicyDocumentChange, dry_run: bool) -> Response:
    data = {"dry_run": dry_run, "changes": result.changes, "version": result.version.number if result.version else None}
    return Response(PolicyChangeOutput(data).data)


class PolicyDocumentApi(TenantAPIView):
    """The tenant's plans and policies as one document: read it, or apply a new one (``dry_run`` for the diff)."""

    permissions = {"GET": Perm.TENANT_VIEW, "POST": Perm.POLICIES_MANAGE}

    @extend_schema(responses=PolicyDocumentOutput, operation_id="policies_read")
    def get(self, request: Request, tenant_slug: str) -> Response:
        tenant = self.tenant_ctx.tenant
        last = selectors.policy_document_versions(tenant=tenant).first()
        document = selectors.policy_document_of(tenant=tenant)
        number = last.number if last else None
        data = {"version": number, "document": document, "yaml": policy_documents.to_yaml(document, number)}
        return Response(PolicyDocumentOutput(data).data)

    @extend_schema(request=PolicyDocumentInput, responses=PolicyChangeOutput, operation_id="policies_apply")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = PolicyDocumentInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        try:
            document = policy_documents.parse(fields["yaml"]) if "yaml" in fields else fields["document"]
        except policy_documents.DocumentError as error:
            raise ValidationError({"yaml": [str(error)]}) from None
        result = services.policy_document_apply(
            tenant=self.tenant_ctx.tenant,
            document=document,
            actor=_actor(request),
            dry_run=fields["dry_run"],
            note=fields["note"],
        )
        return _change(result, fields["dry_run"])


class PolicyVersionListApi(TenantAPIView):
    permissions = {"GET": Perm.TENANT_VIEW}

    @extend_schema(responses=PolicyVersionOutput(many=True), operation_id="policy_versions_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        versions = selectors.policy_document_versions(tenant=self.tenant_ctx.tenant)
        return Response(PolicyVersionOutput(versions, many=True).data)


class PolicyRollbackApi(TenantAPIView):
    permissions = {"POST": Perm.POLICIES_MANAGE}

    @extend_schema(request=RollbackInput, responses=PolicyChangeOutput, operation_id="policies_rollback")
    def post(self, request: Request, tenant_slug: str, number: int) -> Response:
        data = RollbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        dry_run = data.validated_data["dry_run"]
        result = services.policy_document_rollback(
            tenant=self.tenant_ctx.tenant, number=number, actor=_actor(request), dry_run=dry_run
        )
        return _change(result, dry_run)

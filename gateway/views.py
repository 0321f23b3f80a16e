"""Publisher pages (under /t/<tenant_slug>/): the tenant's APIs, versions, plans and routes (apis/…), and the
providers and deployments that serve them (providers/…)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from gateway import policy_documents, selectors, services
from gateway.forms import (
    ApiCreateForm,
    ApiEditForm,
    DeploymentForm,
    PlanForm,
    PolicyDocumentForm,
    ProviderForm,
    RouteForm,
    VersionForm,
    VersionStatusForm,
)
from gateway.models import AiApi, ApiVersion, Deployment, Provider
from portal.errors import DomainError
from tenants.access import render_tenant_page, tenant_context, tenant_view
from tenants.permissions import Perm
from tenants.scoping import get_for_tenant_or_404
from tenants.services import Actor


def _api(request: HttpRequest, api_slug: str) -> AiApi:
    return get_for_tenant_or_404(AiApi, tenant=tenant_context(request).tenant, slug=api_slug)


def _version(api: AiApi, version: str) -> ApiVersion:
    found = api.versions.filter(version=version).first()
    if found is None:
        raise Http404("No such version.")
    return found


def _errors(form: VersionForm | PlanForm | DeploymentForm | RouteForm) -> str:
    return " ".join(f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items())


def _back(request: HttpRequest, api: AiApi) -> HttpResponse:
    return redirect("tenants:api", tenant_slug=tenant_context(request).tenant.slug, api_slug=api.slug)


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.TENANT_VIEW, post=Perm.CATALOG_PUBLISH)
def apis(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    form = ApiCreateForm(request.POST or None, initial={"visibility": "public", "requires_approval": True})
    if request.method == "POST" and form.is_valid():
        try:
            api = services.api_create(tenant=ctx.tenant, actor=Actor.from_request(request), **form.cleaned_data)
        except DomainError as error:
            form.add_error("slug", error.message)
        else:
            messages.success(request, f"{api.name} is created. Add a version and a plan, then publish the version.")
            return _back(request, api)
    return render_tenant_page(
        request,
        "gateway/apis.html",
        {"apis": AiApi.objects.for_tenant(ctx.tenant).prefetch_related("versions", "plans"), "form": form},
        status=400 if form.errors else 200,
    )


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.TENANT_VIEW, post=Perm.CATALOG_PUBLISH)
def api(request: HttpRequest, api_slug: str) -> HttpResponse:
    found = _api(request, api_slug)
    initial = {
        "name": found.name,
        "summary": found.summary,
        "description": found.description,
        "tags": ", ".join(found.tags),
        "visibility": found.visibility,
        "requires_approval": found.requires_approval,
    }
    form = ApiEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.api_update(api=found, actor=Actor.from_request(request), **form.cleaned_data)
        messages.success(request, "Saved.")
        return _back(request, found)
    return render_tenant_page(
        request,
        "gateway/api.html",
        {
            "api": found,
            "form": form,
            "version_form": VersionForm(),
            "plan_form": PlanForm(initial={"quota_period": "month"}),
            "versions": found.versions.order_by("-created_at").prefetch_related("routes__deployment__provider"),
            "route_form": RouteForm(deployments=_deployments(request)),
            "plans": found.plans.all(),
            "statuses": ApiVersion.Status.choices,
        },
        status=400 if form.errors else 200,
    )


@require_POST
@tenant_view(Perm.CATALOG_PUBLISH)
def version_create(request: HttpRequest, api_slug: str) -> HttpResponse:
    found = _api(request, api_slug)
    form = VersionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return _back(request, found)
    try:
        version = services.version_create(api=found, actor=Actor.from_request(request), **form.cleaned_data)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{version.version} is a draft. Publish it when it is ready.")
    return _back(request, found)


@require_POST
@tenant_view(Perm.CATALOG_PUBLISH)
def version_status(request: HttpRequest, api_slug: str, version: str) -> HttpResponse:
    found = _api(request, api_slug)
    target = _version(found, version)
    form = VersionStatusForm(request.POST)
    if form.is_valid():
        try:
            services.version_set_status(
                version=target,
                status=form.cleaned_data["status"],
                sunset_at=form.cleaned_data["sunset_at"],
                actor=Actor.from_request(request),
            )
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{target.version} is {target.status}.")
    return _back(request, found)


@require_POST
@tenant_view(Perm.CATALOG_PUBLISH)
def plan_create(request: HttpRequest, api_slug: str) -> HttpResponse:
    found = _api(request, api_slug)
    form = PlanForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return _back(request, found)
    try:
        plan = services.plan_create(
            api=found,
            slug=form.cleaned_data["slug"],
            name=form.cleaned_data["name"],
            actor=Actor.from_request(request),
            **form.limits(),
        )
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Plan {plan.name} is available.")
    return _back(request, found)


def _deployments(request: HttpRequest) -> Any:
    return Deployment.objects.filter(provider__tenant=tenant_context(request).tenant).select_related("provider")


@require_POST
@tenant_view(Perm.CATALOG_PUBLISH)
def route_set(request: HttpRequest, api_slug: str, version: str) -> HttpResponse:
    found = _api(request, api_slug)
    target = _version(found, version)
    form = RouteForm(request.POST, deployments=_deployments(request))  # another tenant's deployment: not a choice
    if not form.is_valid():
        messages.error(request, _errors(form))
        return _back(request, found)
    deployment = form.cleaned_data["deployment"]
    services.route_add(
        version=target,
        deployment=deployment,
        weight=form.cleaned_data["weight"],
        fallback_order=form.cleaned_data["fallback_order"],
        actor=Actor.from_request(request),
    )
    role = (
        "a primary" if form.cleaned_data["fallback_order"] == 0 else f"fallback {form.cleaned_data['fallback_order']}"
    )
    messages.success(request, f"{target.version} is served by {deployment.name} as {role}.")
    return _back(request, found)


def _providers_page(request: HttpRequest) -> HttpResponse:
    return redirect("tenants:providers", tenant_slug=tenant_context(request).tenant.slug)


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.CATALOG_VIEW, post=Perm.PROVIDERS_MANAGE)
def providers(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    form = ProviderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            provider = services.provider_create(
                tenant=ctx.tenant,
                name=data["name"],
                kind=data["kind"],
                api_base=data["api_base"],
                credentials={"api_key": data["api_key"]} if data["api_key"] else {},
                actor=Actor.from_request(request),
            )
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Provider {provider.name} added. Now add a deployment of one of its models.")
            return _providers_page(request)
    found = Provider.objects.for_tenant(ctx.tenant).prefetch_related("deployments__routes__version__api")
    return render_tenant_page(
        request,
        "gateway/providers.html",
        {"providers": found, "form": form, "deployment_form": DeploymentForm()},
        status=400 if form.errors else 200,
    )


@require_POST
@tenant_view(Perm.PROVIDERS_MANAGE)
def deployment_create(request: HttpRequest, provider_id: int) -> HttpResponse:
    provider = get_for_tenant_or_404(Provider, tenant=tenant_context(request).tenant, pk=provider_id)
    form = DeploymentForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return _providers_page(request)
    try:
        deployment = services.deployment_create(
            provider=provider, actor=Actor.from_request(request), **form.fields_for_service()
        )
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Deployment {deployment.name} added. Route an API version to it on the API's page.")
    return _providers_page(request)


# --- policies (policy as code) -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@tenant_view(Perm.TENANT_VIEW, post=Perm.POLICIES_MANAGE)
def policies(request: HttpRequest) -> HttpResponse:
    """The tenant's plans and policies as one YAML document: edit it, see the diff, then confirm; every applied
    version is listed and can be restored (loaded into the editor, then applied like any edit)."""
    tenant = tenant_context(request).tenant
    versions = list(selectors.policy_document_versions(tenant=tenant)[:50])
    current = policy_documents.to_yaml(
        selectors.policy_document_of(tenant=tenant), versions[0].number if versions else None
    )
    changes: list[str] | None = None
    status = 200
    if request.method == "POST":
        form = PolicyDocumentForm(request.POST)
        if form.is_valid():
            confirm, text, note = form.confirmed(), form.cleaned_data["document"], form.cleaned_data["note"]
            try:
                document = policy_documents.parse(text)
                result = services.policy_document_apply(
                    tenant=tenant, document=document, actor=Actor.from_request(request), dry_run=not confirm, note=note
                )
            except (DomainError, policy_documents.DocumentError) as error:
                form.add_error("document", getattr(error, "message", str(error)))
                status = 400
            else:
                if confirm and result.version is not None:
                    messages.success(
                        request, f"Applied as version {result.version.number}: {len(result.changes)} change(s)."
                    )
                    return redirect("tenants:policies", tenant_slug=tenant.slug)
                if not result.changes:
                    messages.info(request, "This document changes nothing.")
                changes = result.changes
                previewed = PolicyDocumentForm.digest(text) if changes else ""
                form = PolicyDocumentForm(initial={"document": text, "note": note, "previewed": previewed})
        else:
            status = 400
    else:
        restore = request.GET.get("version", "")
        chosen = next((v for v in versions if str(v.number) == restore), None)
        text = policy_documents.to_yaml(chosen.document, chosen.number) if chosen else current
        note = f"restore version {chosen.number}" if chosen else ""
        form = PolicyDocumentForm(initial={"document": text, "note": note})
    return render_tenant_page(
        request,
        "gateway/policies.html",
        {"form": form, "changes": changes, "versions": versions, "restoring": request.GET.get("version")},
        status=status,
    )

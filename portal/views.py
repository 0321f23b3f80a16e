"""Pages and probes of the portal."""

from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from gateway import selectors as catalog_selectors
from gateway.markdown import render_markdown
from gateway.models import AiApi, ApiVersion
from portal.selectors import readiness_report
from tenants import selectors as tenant_selectors
from tenants.permissions import Perm, role_has


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/landing.html")


@never_cache
@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so a database outage does not restart us."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database (and Redis, when configured) answer. 503 names what is down."""
    report = readiness_report()
    if report.is_ready:
        return JsonResponse({"status": "ok", "checks": report.checks})
    return JsonResponse(
        {"status": "unavailable", "failing": report.failing, "checks": report.checks},
        status=503,
    )


# --- the catalog -----------------------------------------------------------------------------------------------

CHAT_RESPONSE_EXAMPLE = {
    "id": "chatcmpl-…",
    "object": "chat.completion",
    "model": "<model>",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "…"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
}
EMBEDDINGS_RESPONSE_EXAMPLE = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0123, -0.0456, "…"]}],
    "model": "<model>",
    "usage": {"prompt_tokens": 5, "total_tokens": 5},
}


def _reference(api: AiApi, version: ApiVersion, base_url: str) -> dict[str, str]:
    """Generated reference docs of one version: endpoint, request and response, curl and Python samples."""
    if api.kind == AiApi.Kind.PROMPT:
        path = f"/v1/apis/{api.tenant.slug}/{api.slug}/{version.version}"
        example_vars = {name: f"<{name}>" for name in (version.variables_schema.get("properties") or {})}
        body: dict[str, object] = {"variables": example_vars, "stream": False}
        response = CHAT_RESPONSE_EXAMPLE
        python = (
            "import httpx\n\n"
            f'reply = httpx.post(\n    "{base_url}{path}",\n'
            '    headers={"Authorization": "Bearer $GATEHOUSE_API_KEY"},\n'
            f'    json={json.dumps(body)},\n)\nprint(reply.json()["choices"][0]["message"]["content"])'
        )
    elif api.kind == AiApi.Kind.EMBEDDINGS:
        path = "/v1/embeddings"
        body = {"model": version.model_alias, "input": "The quick brown fox"}
        response = EMBEDDINGS_RESPONSE_EXAMPLE
        python = (
            f'from openai import OpenAI\n\nclient = OpenAI(base_url="{base_url}/v1", api_key="$GATEHOUSE_API_KEY")\n'
            f'result = client.embeddings.create(model="{version.model_alias}", input="The quick brown fox")\n'
            "print(len(result.data[0].embedding))"
        )
    else:
        path = "/v1/chat/completions"
        body = {"model": version.model_alias, "messages": [{"role": "user", "content": "Hello!"}]}
        response = CHAT_RESPONSE_EXAMPLE
        python = (
            f'from openai import OpenAI\n\nclient = OpenAI(base_url="{base_url}/v1", api_key="$GATEHOUSE_API_KEY")\n'
            f'reply = client.chat.completions.create(\n    model="{version.model_alias}",\n'
            '    messages=[{"role": "user", "content": "Hello!"}],\n)\nprint(reply.choices[0].message.content)'
        )
    curl = (
        f"curl {base_url}{path} \\\n  -H 'Authorization: Bearer $GATEHOUSE_API_KEY' \\\n"
        f"  -H 'Content-Type: application/json' \\\n  -d '{json.dumps(body)}'"
    )
    return {
        "endpoint": f"POST {base_url}{path}",
        "request": json.dumps(body, indent=2),
        "response": json.dumps(response, indent=2).replace('"<model>"', json.dumps(version.model_alias or "…")),
        "variables_schema": json.dumps(version.variables_schema, indent=2) if version.variables_schema else "",
        "curl": curl,
        "python": python.replace("$GATEHOUSE_API_KEY", "gh_…your key…"),
    }


@require_GET
def catalog(request: HttpRequest) -> HttpResponse:
    query, kind = request.GET.get("q", "").strip()[:100], request.GET.get("kind", "")
    if kind not in AiApi.Kind.values:
        kind = ""
    user = request.user if request.user.is_authenticated else None
    apis = catalog_selectors.catalog_for(user=user, query=query, kind=kind)
    page = Paginator(apis, 24).get_page(request.GET.get("page"))
    return render(request, "portal/catalog.html", {"page": page, "q": query, "kind": kind, "kinds": AiApi.Kind.choices})


@require_GET
def catalog_detail(request: HttpRequest, publisher_slug: str, api_slug: str) -> HttpResponse:
    user = request.user if request.user.is_authenticated else None
    api = catalog_selectors.api_for_viewer(user=user, publisher_slug=publisher_slug, api_slug=api_slug)
    if api is None:
        raise Http404("No such API.")
    versions = catalog_selectors.serving_versions(api=api)
    wanted = request.GET.get("version")
    version = next((v for v in versions if v.version == wanted), versions[0] if versions else None)
    base_url = request.build_absolute_uri("/").rstrip("/")
    subscribe_tenants = []
    if user is not None:
        subscribe_tenants = [
            m.tenant
            for m in tenant_selectors.memberships_of_user(user=user)
            if role_has(m.role, Perm.SUBSCRIPTIONS_REQUEST)
        ]
    return render(
        request,
        "portal/catalog_detail.html",
        {
            "api": api,
            "description": render_markdown(api.description),
            "versions": versions,
            "version": version,
            "reference": _reference(api, version, base_url) if version else None,
            "plans": catalog_selectors.active_plans(api=api),
            "subscribe_tenants": subscribe_tenants,
        },
    )


@require_GET
def policies_schema(request: HttpRequest) -> JsonResponse:
    """The published JSON schema of policy documents (policy as code): editors and CI can validate against it."""
    from gateway.policy_documents import DOCUMENT_SCHEMA

    response = JsonResponse(DOCUMENT_SCHEMA, json_dumps_params={"indent": 2})
    response["Cache-Control"] = "public, max-age=3600"
    return response

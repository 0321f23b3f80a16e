"""Pages and probes of the portal."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.selectors import readiness_report


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

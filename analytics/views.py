"""Pages of analytics under /t/<slug>/: usage dashboard, call log, cost reports, statements, revenue, alerts, live.

Thin: forms validate, selectors read (from rollups), services write.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from analytics import live, selectors, services
from analytics.forms import AlertRuleForm
from analytics.metrics import render as render_metrics
from analytics.selectors import Period
from analytics.templatetags.money import exact_usd
from portal.csv_export import csv_response
from tenants.access import TenantContext, render_tenant_page, tenant_context, tenant_view
from tenants.models import Tenant
from tenants.permissions import Perm
from tenants.services import Actor


def _range(request: HttpRequest, tenant: Tenant) -> tuple[Period, dict[str, str]]:
    """The date range picker: ``from`` and ``to`` local dates (inclusive); bad or missing values: the last week."""

    def day(name: str) -> date | None:
        try:
            return date.fromisoformat(request.GET.get(name, ""))
        except ValueError:
            return None

    period = selectors.range_period(tenant, day("from"), day("to"))
    zone = ZoneInfo(tenant.timezone)
    first, last = period.start.astimezone(zone).date(), (period.end.astimezone(zone) - timedelta(days=1)).date()
    return period, {"from": first.isoformat(), "to": last.isoformat()}


def _month_choices(scope: selectors.UsageScope, current: tuple[int, int]) -> list[str]:
    months = {current, *selectors.months_with_usage(scope)}
    return [f"{y:04d}-{m:02d}" for y, m in sorted(months, reverse=True)]


def _app_filter(request: HttpRequest, scope: selectors.UsageScope) -> selectors.UsageScope:
    slug = request.GET.get("application", "")
    return selectors.narrowed_to_application(scope, slug) if slug else scope


def _chart_data(points: list[selectors.UsageFigures], with_costs: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "labels": [p.label for p in points],
        "requests": [p.requests for p in points],
        "errors": [p.errors for p in points],
        "p50": [p.latency_p50_ms for p in points],
        "p95": [p.latency_p95_ms for p in points],
        "tokens": [p.total_tokens for p in points],
    }
    if with_costs:
        data["spend"] = [p.cost_micros / 1_000_000 for p in points]
    return data


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_USAGE)
def usage(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    period, picked = _range(request, ctx.tenant)
    scope = _app_filter(request, selectors.usage_scope_for(ctx))
    with_costs = ctx.can(Perm.ANALYTICS_VIEW_COSTS)
    by = request.GET.get("by", "application")
    if by not in ("application", "key", "api", "model"):
        by = "application"
    points = selectors.usage_series(scope, period)
    totals, breakdowns = selectors.usage_summary(scope, period, [by])
    return render_tenant_page(
        request,
        "analytics/usage.html",
        {
            "period": period,
            "picked": picked,
            "application": request.GET.get("application", ""),
            "applications": selectors.call_filter_choices(selectors.usage_scope_for(ctx), period)["application"],
            "totals": totals,
            "breakdown": breakdowns[by],
            "by": by,
            "with_costs": with_costs,
            "chart": _chart_data(points, with_costs),
            "hourly": period.end - period.start <= selectors.HOURLY_UP_TO,
        },
    )


# --- call log -----------------------------------------------------------------------------------------------


@dataclass
class _Page:
    """Newer / older pages without a total: counting a big call log is the slow query this page must not run."""

    object_list: list[Any]
    number: int
    has_next: bool

    SIZE = 50

    @classmethod
    def of(cls, rows: Any, number: str | None) -> _Page:
        digits = number or ""
        page = int(digits) if digits.isdigit() and 0 < int(digits) < 10_000 else 1
        found = list(rows[(page - 1) * cls.SIZE : page * cls.SIZE + 1])
        return cls(object_list=found[: cls.SIZE], number=page, has_next=len(found) > cls.SIZE)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_USAGE)
def calls(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    scope = selectors.usage_scope_for(ctx)
    filters = {name: request.GET.get(name, "").strip()[:100] for name in selectors.CALL_FILTERS}
    rows = selectors.calls_filtered(scope, filters)
    page = _Page.of(rows, request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    template = "analytics/_call_rows.html" if request.htmx else "analytics/calls.html"  # type: ignore[attr-defined]
    choices_period = selectors.range_period(ctx.tenant, None, None, default_days=31)
    return render_tenant_page(
        request,
        template,
        {
            "page": page,
            "filters": filters,
            "query": query,
            "choices": selectors.call_filter_choices(scope, choices_period),
            "with_costs": ctx.can(Perm.ANALYTICS_VIEW_COSTS),
        },
    )


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_USAGE)
def call_detail(request: HttpRequest, event_id: str) -> HttpResponse:
    ctx = tenant_context(request)
    call = selectors.call_for(selectors.usage_scope_for(ctx), event_id)
    if call is None:
        raise Http404("No such call.")
    # Prompts are the most sensitive thing here, masked or not: shown to those who may read the audit log.
    payload = selectors.payload_for(ctx.tenant, event_id) if ctx.can(Perm.AUDIT_VIEW) else None
    return render_tenant_page(
        request,
        "analytics/call.html",
        {"call": call, "payload": payload, "with_costs": ctx.can(Perm.ANALYTICS_VIEW_COSTS)},
    )


# --- cost reports, statements, revenue ----------------------------------------------------------------------


def _report(ctx: TenantContext, request: HttpRequest) -> tuple[selectors.UsageScope, Period, tuple[int, int]]:
    scope = selectors.usage_scope_for(ctx, costs=True)
    year, month = selectors.month_or_now(ctx.tenant, request.GET.get("month", ""))
    return scope, selectors.month_period(ctx.tenant, year, month), (year, month)


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_USAGE)
def cost_report(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    scope, period, (year, month) = _report(ctx, request)
    lines = selectors.cost_report(scope, period)
    return render_tenant_page(
        request,
        "analytics/costs.html",
        {
            "period": period,
            "month": f"{year:04d}-{month:02d}",
            "year_num": year,
            "month_num": month,
            "months": _month_choices(scope, (year, month)),
            "lines": lines,
            "total": sum(line.cost_micros for line in lines),
            "budget": selectors.budget_status(scope, timezone.now()),
            "whole_tenant": scope.application_ids is None,
        },
    )


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_USAGE)
def cost_report_csv(request: HttpRequest) -> StreamingHttpResponse:
    ctx = tenant_context(request)
    scope, _, (year, month) = _report(ctx, request)
    lines = selectors.cost_report(scope, selectors.month_period(ctx.tenant, year, month))
    header = ["month", "consumer", "application", "api", "model", "requests", "prompt_tokens",
              "completion_tokens", "cost_usd", "cost_micros"]  # fmt: skip
    month_label = f"{year:04d}-{month:02d}"
    rows = (
        [month_label, line.consumer, line.application, line.api, line.model, line.requests, line.prompt_tokens,
         line.completion_tokens, exact_usd(line.cost_micros), line.cost_micros]
        for line in lines
    )  # fmt: skip
    return csv_response(f"{ctx.tenant.slug}-costs-{month_label}.csv", header, rows)


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_COSTS)
def statement(request: HttpRequest, year: int, month: int) -> HttpResponse | StreamingHttpResponse:
    ctx = tenant_context(request)
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        raise Http404("No such month.")
    result = selectors.statement_for(ctx.tenant, selectors.month_period(ctx.tenant, year, month))
    if request.GET.get("format") == "csv":
        header = ["application", "api", "model", "requests", "tokens", "cost_usd", "markup_percent", "markup_usd",
                  "total_usd"]  # fmt: skip
        rows = (
            [line.application, line.api, line.model, line.requests, line.tokens, exact_usd(line.cost_micros),
             line.markup_basis_points / 100, exact_usd(line.markup_micros), exact_usd(line.total_micros)]
            for line in result.lines
        )  # fmt: skip
        return csv_response(f"{ctx.tenant.slug}-statement-{year:04d}-{month:02d}.csv", header, rows)
    return render_tenant_page(
        request,
        "analytics/statement.html",
        {"statement": result, "month": f"{year:04d}-{month:02d}", "issued": timezone.now()},
    )


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_COSTS)
def revenue(request: HttpRequest) -> HttpResponse:
    """The publisher's side: who calls its APIs, how much, and what it earns (cost + its markup)."""
    ctx = tenant_context(request)
    year, month = selectors.month_or_now(ctx.tenant, request.GET.get("month", ""))
    period = selectors.month_period(ctx.tenant, year, month)
    scope = selectors.usage_scope_for(ctx, as_publisher=True)
    totals, breakdowns = selectors.usage_summary(scope, period, ["consumer", "api"])
    consumers, apis = breakdowns["consumer"], breakdowns["api"]
    basis_points = ctx.tenant.markup_basis_points
    for row in [*consumers, *apis]:
        row.extra["markup_micros"] = selectors.markup_of(row.cost_micros, basis_points)
    return render_tenant_page(
        request,
        "analytics/revenue.html",
        {
            "period": period,
            "month": f"{year:04d}-{month:02d}",
            "months": _month_choices(scope, (year, month)),
            "consumers": consumers,
            "apis": apis,
            "totals": totals,
            "markup_percent": basis_points / 100,
            "markup_micros": sum(row.extra["markup_micros"] for row in apis),
        },
    )


# --- alerts -------------------------------------------------------------------------------------------------


@tenant_view(Perm.ANALYTICS_VIEW_USAGE, post=Perm.ALERTS_MANAGE)
def alerts(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    form = AlertRuleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        rule, secret = services.alert_rule_create(tenant=ctx.tenant, actor=Actor.from_request(request), **form.rule())
        messages.success(request, f"Alert rule “{rule.name}” created.")
        if secret:
            messages.info(request, f"Webhook signing secret (shown once, keep it safe): {secret}")
        return redirect("tenants:alerts", tenant_slug=ctx.tenant.slug)
    page = Paginator(selectors.alert_history(ctx.tenant), 25).get_page(request.GET.get("page"))
    return render_tenant_page(
        request,
        "analytics/alerts.html",
        {"form": form, "rules": selectors.alert_rules_of(ctx.tenant), "page": page},
        status=400 if form.is_bound else 200,
    )


@require_POST
@tenant_view(Perm.ALERTS_MANAGE)
def alert_rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    ctx = tenant_context(request)
    rule = selectors.alert_rule_for(ctx.tenant, rule_id)
    services.alert_rule_delete(rule=rule, actor=Actor.from_request(request))
    messages.success(request, f"Alert rule “{rule.name}” deleted.")
    return redirect("tenants:alerts", tenant_slug=ctx.tenant.slug)


# --- live dashboard -----------------------------------------------------------------------------------------


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_USAGE)
def live_dashboard(request: HttpRequest) -> HttpResponse:
    ctx = tenant_context(request)
    return render_tenant_page(
        request,
        "analytics/live.html",
        {
            "socket_path": f"/ws/t/{ctx.tenant.slug}/live/",
            "poll_url": reverse("tenants:live-json", kwargs={"tenant_slug": ctx.tenant.slug}),
            "first": live.figures_for(ctx.tenant, with_costs=ctx.can(Perm.ANALYTICS_VIEW_COSTS)),
        },
    )


@require_GET
@tenant_view(Perm.ANALYTICS_VIEW_USAGE)
def live_json(request: HttpRequest) -> JsonResponse:
    """What the live page polls when its websocket is down."""
    ctx = tenant_context(request)
    return JsonResponse(live.figures_for(ctx.tenant, with_costs=ctx.can(Perm.ANALYTICS_VIEW_COSTS)))


# --- /metrics -----------------------------------------------------------------------------------------------


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics for the whole deployment, for a scraper holding ``GATEHOUSE_METRICS_TOKEN``."""
    if not settings.METRICS_TOKEN:
        raise Http404("Metrics are turned off (set GATEHOUSE_METRICS_TOKEN).")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode()):
        response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = render_metrics(live.metrics_snapshot())
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")

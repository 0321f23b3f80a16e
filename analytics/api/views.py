"""The analytics management API: usage, cost reports, statements, alert rules and alert history (OpenAPI)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import selectors, services
from analytics.api.serializers import (
    AlertOutput,
    AlertRuleCreatedOutput,
    AlertRuleInput,
    AlertRuleOutput,
    CostReportOutput,
    MonthQuery,
    RangeQuery,
    StatementOutput,
    UsageOutput,
)
from tenants.api.access import TenantAPIView
from tenants.permissions import Perm
from tenants.services import Actor


def _period(period: selectors.Period) -> dict[str, Any]:
    return {"start": period.start, "end": period.end, "label": period.label}


def _figures(figures: selectors.UsageFigures, with_costs: bool) -> dict[str, Any]:
    data = {k: v for k, v in dataclasses.asdict(figures).items() if k != "extra"}
    if not with_costs:
        data.pop("cost_micros")
    return data


class UsageApi(TenantAPIView):
    permissions = {"GET": Perm.ANALYTICS_VIEW_USAGE}

    @extend_schema(parameters=[RangeQuery], responses=UsageOutput, operation_id="usage_retrieve")
    def get(self, request: Request, tenant_slug: str) -> Response:
        query = RangeQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        ctx, wanted = self.tenant_ctx, query.validated_data
        period = selectors.range_period(ctx.tenant, wanted.get("since"), wanted.get("until"))
        scope = selectors.usage_scope_for(ctx)
        if wanted.get("application"):
            scope = selectors.narrowed_to_application(scope, wanted["application"])
        costs = ctx.can(Perm.ANALYTICS_VIEW_COSTS)
        totals, breakdowns = selectors.usage_summary(scope, period, [wanted["by"]])
        body = {
            "period": _period(period),
            "totals": _figures(totals, costs),
            "series": [_figures(p, costs) for p in selectors.usage_series(scope, period)],
            "breakdown": [_figures(r, costs) for r in breakdowns[wanted["by"]]],
        }
        return Response(UsageOutput(body).data)


class CostReportApi(TenantAPIView):
    permissions = {"GET": Perm.ANALYTICS_VIEW_USAGE}

    @extend_schema(parameters=[MonthQuery], responses=CostReportOutput, operation_id="cost_report_retrieve")
    def get(self, request: Request, tenant_slug: str) -> Response:
        query = MonthQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        ctx = self.tenant_ctx
        scope = selectors.usage_scope_for(ctx, costs=True)
        year, month = selectors.month_or_now(ctx.tenant, query.validated_data.get("month", ""))
        period = selectors.month_period(ctx.tenant, year, month)
        lines = selectors.cost_report(scope, period)
        budget = None
        if scope.application_ids is None:
            state = selectors.budget_status(scope, timezone.now())
            budget = {**dataclasses.asdict(state), "will_exceed": state.will_exceed}
        body = {
            "period": _period(period),
            "lines": [dataclasses.asdict(line) for line in lines],
            "total_micros": sum(line.cost_micros for line in lines),
            "budget": budget,
        }
        return Response(CostReportOutput(body).data)


class StatementApi(TenantAPIView):
    permissions = {"GET": Perm.ANALYTICS_VIEW_COSTS}

    @extend_schema(responses=StatementOutput, operation_id="statement_retrieve")
    def get(self, request: Request, tenant_slug: str, year: int, month: int) -> Response:
        if not (2000 <= year <= 2100 and 1 <= month <= 12):
            raise NotFound("No such month.")
        statement = selectors.statement_for(
            self.tenant_ctx.tenant, selectors.month_period(self.tenant_ctx.tenant, year, month)
        )
        body = {
            "period": _period(statement.period),
            "lines": [{**dataclasses.asdict(line), "total_micros": line.total_micros} for line in statement.lines],
            "cost_micros": statement.cost_micros,
            "markup_micros": statement.markup_micros,
            "total_micros": statement.total_micros,
        }
        return Response(StatementOutput(body).data)


class AlertRuleListApi(TenantAPIView):
    permissions = {"GET": Perm.ANALYTICS_VIEW_USAGE, "POST": Perm.ALERTS_MANAGE}

    @extend_schema(responses=AlertRuleOutput(many=True), operation_id="alert_rules_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return Response(AlertRuleOutput(selectors.alert_rules_of(self.tenant_ctx.tenant), many=True).data)

    @extend_schema(request=AlertRuleInput, responses={201: AlertRuleCreatedOutput}, operation_id="alert_rules_create")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = AlertRuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        rule, secret = services.alert_rule_create(
            tenant=self.tenant_ctx.tenant, actor=Actor.from_request(request), **data.validated_data
        )
        body = {**AlertRuleOutput(rule).data, "webhook_secret": secret}
        return Response(AlertRuleCreatedOutput(body).data, status=status.HTTP_201_CREATED)


class AlertRuleDetailApi(TenantAPIView):
    permissions = {"DELETE": Perm.ALERTS_MANAGE}

    @extend_schema(responses={204: None}, operation_id="alert_rules_destroy")
    def delete(self, request: Request, tenant_slug: str, rule_id: int) -> Response:
        rule = selectors.alert_rule_for(self.tenant_ctx.tenant, rule_id)
        services.alert_rule_delete(rule=rule, actor=Actor.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertListApi(TenantAPIView):
    permissions = {"GET": Perm.ANALYTICS_VIEW_USAGE}

    @extend_schema(responses=AlertOutput(many=True), operation_id="alerts_list")
    def get(self, request: Request, tenant_slug: str) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.alert_history(self.tenant_ctx.tenant), request, view=self)
        return paginator.get_paginated_response(AlertOutput(page, many=True).data)

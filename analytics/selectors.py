"""Reads of analytics: usage, cost reports, statements and budgets — served from rollups, never raw scans.

Periods are calendar periods in the tenant's time zone. A period is covered by whole UTC-day rollups where it
can be and by hourly rollups at its edges (``_covering``), so a month of a million calls reads a few thousand
rollup rows. Sums are exact (integers, micro-USD); latency percentiles over many rows come from the merged
sketch (analytics/sketch.py: within 12.5 %, never optimistic). Tenant offsets that are not whole hours (e.g.
India) are covered to the hour.

Who sees what (``UsageScope``): members with ``analytics.view_costs`` see the whole tenant; everyone else with
``analytics.view_usage`` sees what their role shows and, in cost reports, only the applications they own.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from analytics import sketch
from analytics.models import AlertEvent, AlertKind, AlertRule, CallPayload, UsageEvent, UsageRollup
from tenants.access import TenantContext
from tenants.models import Tenant
from tenants.permissions import Perm

HOUR, DAY = UsageRollup.Granularity.HOUR, UsageRollup.Granularity.DAY
SUMS = ("requests", "errors", "cache_hits", "prompt_tokens", "completion_tokens", "cost_micros")
BREAKDOWNS = {
    "application": "application_slug",
    "key": "key_public_id",
    "api": "api_label",
    "model": "model",
    "consumer": "tenant__slug",
}
# A series switches from hourly to daily points past this span.
HOURLY_UP_TO = timedelta(days=3)


@dataclass(frozen=True)
class UsageScope:
    """Whose usage a reader may see: a consumer tenant's own calls, or (publisher side) the calls to its APIs.

    ``application_ids`` None means all of them."""

    tenant: Tenant
    application_ids: frozenset[int] | None = None
    as_publisher: bool = False

    def rollups(self) -> QuerySet[UsageRollup]:
        if self.as_publisher:
            rows = UsageRollup.all_tenants.filter(publisher_id=self.tenant.pk)
        else:
            rows = UsageRollup.objects.for_tenant(self.tenant)
        if self.application_ids is not None:
            rows = rows.filter(application_id__in=self.application_ids)
        return rows

    def calls(self) -> QuerySet[UsageEvent]:
        if self.as_publisher:
            rows = UsageEvent.all_tenants.filter(publisher=self.tenant)
        else:
            rows = UsageEvent.objects.for_tenant(self.tenant)
        if self.application_ids is not None:
            rows = rows.filter(application_id__in=self.application_ids)
        return rows


def usage_scope_for(ctx: TenantContext, *, costs: bool = False, as_publisher: bool = False) -> UsageScope:
    """The scope a member reads. ``costs``: a cost report, which a member without ``analytics.view_costs`` sees
    for the applications they own only."""
    if not costs or ctx.can(Perm.ANALYTICS_VIEW_COSTS):
        return UsageScope(tenant=ctx.tenant, as_publisher=as_publisher)
    from subscriptions.models import Application

    owned = Application.objects.for_tenant(ctx.tenant).filter(owner=ctx.membership.user_id)
    return UsageScope(tenant=ctx.tenant, application_ids=frozenset(owned.values_list("pk", flat=True)))


# --- periods ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, with how to name it."""

    start: datetime
    end: datetime
    label: str

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400


def month_period(tenant: Tenant, year: int, month: int) -> Period:
    zone = ZoneInfo(tenant.timezone)
    start = datetime(year, month, 1, tzinfo=zone)
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return Period(start.astimezone(UTC), following.astimezone(UTC), f"{calendar.month_name[month]} {year}")


def days_period(tenant: Tenant, first: date, last: date) -> Period:
    """Whole local days ``first`` … ``last`` (inclusive)."""
    zone = ZoneInfo(tenant.timezone)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    end = datetime(last.year, last.month, last.day, tzinfo=zone) + timedelta(days=1)
    return Period(start.astimezone(UTC), end.astimezone(UTC), f"{first:%d %b %Y} - {last:%d %b %Y}")


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _floor_day(moment: datetime) -> datetime:
    return _floor_hour(moment).replace(hour=0)


def _ceil_day(moment: datetime) -> datetime:
    day = _floor_day(moment)
    return day if day == moment else day + timedelta(days=1)


def _covering(period: Period) -> Q:
    """Rollup rows that cover the period exactly once: whole UTC days as days, the edges as hours."""
    start, end = _floor_hour(period.start), _floor_hour(period.end)
    first_day, last_day = _ceil_day(start), _floor_day(end)
    if first_day >= last_day:
        return Q(granularity=HOUR, bucket_start__gte=start, bucket_start__lt=end)
    return (
        Q(granularity=DAY, bucket_start__gte=first_day, bucket_start__lt=last_day)
        | Q(granularity=HOUR, bucket_start__gte=start, bucket_start__lt=first_day)
        | Q(granularity=HOUR, bucket_start__gte=last_day, bucket_start__lt=end)
    )


# --- usage --------------------------------------------------------------------------------------------------


@dataclass
class UsageFigures:
    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micros: int = 0
    latency_p50_ms: int = 0
    latency_p95_ms: int = 0
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def _sums() -> dict[str, Any]:
    return {name: Coalesce(Sum(name), 0) for name in SUMS}


def _figures(values: dict[str, Any], histograms: Iterable[sketch.Histogram], label: str = "") -> UsageFigures:
    merged = sketch.merge(histograms)
    sums: dict[str, Any] = {name: int(values.get(name) or 0) for name in SUMS}
    return UsageFigures(
        **sums,
        latency_p50_ms=sketch.quantile(merged, 0.5),
        latency_p95_ms=sketch.quantile(merged, 0.95),
        label=label,
    )


def usage_summary(
    scope: UsageScope, period: Period, breakdowns: Sequence[str] = (), *, limit: int = 50
) -> tuple[UsageFigures, dict[str, list[UsageFigures]]]:
    """The period's totals and its breakdowns (by application, key, API, model or consumer), biggest spenders
    first. Sums come from the database; percentiles from one pass over the covering rows' histograms, shared by
    the totals and every breakdown (that pass is what a month of a busy tenant costs)."""
    rows = scope.rollups().filter(_covering(period))
    columns = [BREAKDOWNS[by] for by in breakdowns]
    sums = {
        by: list(rows.values(column).annotate(**_sums()).order_by("-cost_micros", "-requests", column)[:limit])
        for by, column in zip(breakdowns, columns, strict=True)
    }
    everything: sketch.Histogram = {}
    per_value: list[dict[Any, sketch.Histogram]] = [{} for _ in columns]
    for *values, histogram in rows.values_list(*columns, "latency_histogram").iterator(chunk_size=5000):
        sketch.add(everything, histogram)
        for index, value in enumerate(values):
            sketch.add(per_value[index].setdefault(value, {}), histogram)
    totals = _figures(rows.aggregate(**_sums()), [everything])
    broken = {
        by: [_figures(row, [per_value[index].get(row[column], {})], label=row[column] or "—") for row in sums[by]]
        for index, (by, column) in enumerate(zip(breakdowns, columns, strict=True))
    }
    return totals, broken


def usage_series(scope: UsageScope, period: Period) -> list[UsageFigures]:
    """One point per hour (spans up to three days) or per UTC day, each labelled with its ISO start; buckets
    without calls are there too (zeros), so a chart's gaps are real."""
    hourly = period.end - period.start <= HOURLY_UP_TO
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    first = _floor_hour(period.start) if hourly else _floor_day(period.start)
    rows = scope.rollups().filter(
        granularity=HOUR if hourly else DAY, bucket_start__gte=first, bucket_start__lt=period.end
    )
    sums = {row.pop("bucket_start"): row for row in rows.values("bucket_start").annotate(**_sums())}
    histograms: dict[datetime, list[sketch.Histogram]] = {}
    for bucket, histogram in rows.values_list("bucket_start", "latency_histogram"):
        histograms.setdefault(bucket, []).append(histogram)
    points = []
    moment = first
    while moment < period.end:
        points.append(_figures(sums.get(moment, {}), histograms.get(moment, []), label=moment.isoformat()))
        moment += step
    return points


# --- cost reports and statements ----------------------------------------------------------------------------

REPORT_COLUMNS = ("tenant__slug", "application_slug", "api_label", "model")


@dataclass(frozen=True)
class CostLine:
    consumer: str
    application: str
    api: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int


def cost_report(scope: UsageScope, period: Period) -> list[CostLine]:
    """Cost by consumer tenant x application x API x model for the period (a month, usually), exact to the
    micro-USD."""
    rows = (
        scope.rollups()
        .filter(_covering(period))
        .values(*REPORT_COLUMNS)
        .annotate(
            requests_=Coalesce(Sum("requests"), 0),
            prompt=Coalesce(Sum("prompt_tokens"), 0),
            completion=Coalesce(Sum("completion_tokens"), 0),
            cost=Coalesce(Sum("cost_micros"), 0),
        )
        .order_by(*REPORT_COLUMNS)
    )
    return [
        CostLine(
            consumer=row["tenant__slug"],
            application=row["application_slug"],
            api=row["api_label"],
            model=row["model"],
            requests=row["requests_"],
            prompt_tokens=row["prompt"],
            completion_tokens=row["completion"],
            cost_micros=row["cost"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class StatementLine:
    application: str
    api: str
    model: str
    requests: int
    tokens: int
    cost_micros: int
    markup_basis_points: int
    markup_micros: int

    @property
    def total_micros(self) -> int:
        return self.cost_micros + self.markup_micros


@dataclass(frozen=True)
class Statement:
    tenant: Tenant
    period: Period
    lines: list[StatementLine]

    @property
    def cost_micros(self) -> int:
        return sum(line.cost_micros for line in self.lines)

    @property
    def markup_micros(self) -> int:
        return sum(line.markup_micros for line in self.lines)

    @property
    def total_micros(self) -> int:
        return self.cost_micros + self.markup_micros

    def by_application(self) -> list[tuple[str, list[StatementLine], int]]:
        groups: dict[str, list[StatementLine]] = {}
        for line in self.lines:
            groups.setdefault(line.application, []).append(line)
        return [(app, lines, sum(line.total_micros for line in lines)) for app, lines in groups.items()]


def markup_of(cost_micros: int, basis_points: int) -> int:
    """The markup on a line, rounded half up to the micro-USD (one rounding per line, shown on the line)."""
    return (cost_micros * basis_points + 5_000) // 10_000


def statement_for(tenant: Tenant, period: Period) -> Statement:
    """The consumer tenant's chargeback statement: one line per application x API x model, each publisher's
    markup applied to the cost of calls to its APIs."""
    rows = (
        UsageRollup.objects.for_tenant(tenant)
        .filter(_covering(period))
        .values("application_slug", "api_label", "model", "publisher_id")
        .annotate(
            requests_=Coalesce(Sum("requests"), 0),
            tokens=Coalesce(Sum(F("prompt_tokens") + F("completion_tokens")), 0),
            cost=Coalesce(Sum("cost_micros"), 0),
        )
        .order_by("application_slug", "api_label", "model")
    )
    rows = list(rows)
    markups = dict(
        Tenant.objects.filter(pk__in={row["publisher_id"] for row in rows}).values_list("pk", "markup_basis_points")
    )
    lines = []
    for row in rows:
        basis_points = markups.get(row["publisher_id"], 0)
        lines.append(
            StatementLine(
                application=row["application_slug"],
                api=row["api_label"] or "—",
                model=row["model"] or "—",
                requests=row["requests_"],
                tokens=row["tokens"],
                cost_micros=row["cost"],
                markup_basis_points=basis_points,
                markup_micros=markup_of(row["cost"], basis_points),
            )
        )
    return Statement(tenant=tenant, period=period, lines=lines)


def months_with_usage(scope: UsageScope, *, limit: int = 24) -> list[tuple[int, int]]:
    """(year, month) pairs, newest first, in which the scope has rollups (UTC months, for the month picker)."""
    starts = scope.rollups().filter(granularity=DAY).dates("bucket_start", "month", order="DESC")[:limit]
    return [(d.year, d.month) for d in starts]


# --- budgets ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetStatus:
    spent_micros: int
    forecast_micros: int
    budget_micros: int | None
    period: Period

    @property
    def percent_used(self) -> float | None:
        return 100 * self.spent_micros / self.budget_micros if self.budget_micros else None

    @property
    def percent_forecast(self) -> float | None:
        return 100 * self.forecast_micros / self.budget_micros if self.budget_micros else None

    @property
    def will_exceed(self) -> bool:
        return bool(self.budget_micros) and self.forecast_micros > (self.budget_micros or 0)


def tenant_monthly_budget(tenant: Tenant) -> int | None:
    """The consumer tenant's own monthly cost quota (its consumer-level policy), if it set one."""
    from gateway.models import Policy

    policy = Policy.objects.filter(level=Policy.Level.CONSUMER, tenant=tenant).first()
    quota = (policy.rules if policy else {}).get("quota") or {}
    if quota.get("cost_micros") and quota.get("period", "month") == "month":
        return int(quota["cost_micros"])
    return None


def _spend(scope: UsageScope, period: Period) -> int:
    return int(scope.rollups().filter(_covering(period)).aggregate(cost=Coalesce(Sum("cost_micros"), 0))["cost"])


def budget_status(scope: UsageScope, now: datetime, *, budget_micros: int | None = None) -> BudgetStatus:
    """Month-to-date spend and a forecast to month end: what is spent, plus the average day of the last seven
    (or of the month so far, if younger) for each day left."""
    local = now.astimezone(ZoneInfo(scope.tenant.timezone))
    month = month_period(scope.tenant, local.year, local.month)
    spent = _spend(scope, Period(month.start, now, month.label))
    recent_start = max(month.start, now - timedelta(days=7))
    elapsed_days = max((now - recent_start).total_seconds() / 86400, 1 / 24)
    recent = _spend(scope, Period(recent_start, now, ""))
    days_left = max((month.end - now).total_seconds() / 86400, 0)
    forecast = spent + round(recent / elapsed_days * days_left)
    if budget_micros is None and not scope.as_publisher and scope.application_ids is None:
        budget_micros = tenant_monthly_budget(scope.tenant)
    return BudgetStatus(spent_micros=spent, forecast_micros=forecast, budget_micros=budget_micros, period=month)


# --- call log -----------------------------------------------------------------------------------------------

CALL_FILTERS = ("application", "key", "model", "status", "request_id", "since", "until")


def calls_filtered(scope: UsageScope, filters: dict[str, str]) -> QuerySet[UsageEvent]:
    """The call log, newest first, narrowed by the explorer's filters (unknown values simply match nothing)."""
    calls = scope.calls()
    if filters.get("application"):
        calls = calls.filter(application_slug=filters["application"])
    if filters.get("key"):
        calls = calls.filter(key_public_id=filters["key"])
    if filters.get("model"):
        calls = calls.filter(model=filters["model"])
    if filters.get("request_id"):
        calls = calls.filter(request_id=filters["request_id"])
    status = filters.get("status", "")
    if status == "ok":
        calls = calls.filter(status__lt=400)
    elif status == "error":
        calls = calls.filter(status__gte=400)
    elif status.isdigit():
        calls = calls.filter(status=int(status))
    zone = ZoneInfo(scope.tenant.timezone)
    for name, lookup, shift in (("since", "occurred_at__gte", 0), ("until", "occurred_at__lt", 1)):
        try:
            day = date.fromisoformat(filters.get(name, ""))
        except ValueError:
            continue
        start = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(days=shift)
        calls = calls.filter(**{lookup: start})
    return calls.order_by("-occurred_at", "-id")


def call_for(scope: UsageScope, event_id: str) -> UsageEvent | None:
    return scope.calls().filter(event_id=event_id).first()


def payload_for(tenant: Tenant, event_id: str) -> CallPayload | None:
    """The consumer tenant's logged (masked) payload of a call, if a policy logged it and it has not expired."""
    return CallPayload.objects.for_tenant(tenant).filter(event_id=event_id, expires_at__gte=datetime.now(UTC)).first()


def call_filter_choices(scope: UsageScope, period: Period) -> dict[str, list[str]]:
    """Values the explorer offers in its drop-downs: what the rollups of the period saw."""
    rows = scope.rollups().filter(_covering(period))
    return {
        "application": sorted(set(rows.values_list("application_slug", flat=True))),
        "model": sorted(set(rows.values_list("model", flat=True)) - {""}),
    }


# --- alerts -------------------------------------------------------------------------------------------------


def alert_rules_of(tenant: Tenant) -> QuerySet[AlertRule]:
    return AlertRule.objects.for_tenant(tenant).annotate(fired=Count("events"))


def alert_history(tenant: Tenant) -> QuerySet[AlertEvent]:
    return AlertEvent.objects.for_tenant(tenant).select_related("rule").prefetch_related("deliveries")


def alert_rule_for(tenant: Tenant, rule_id: int) -> AlertRule:
    """The tenant's rule, or the same 404 for a missing one and another tenant's."""
    from tenants.scoping import get_for_tenant_or_404

    return get_for_tenant_or_404(AlertRule, tenant=tenant, pk=rule_id)


@dataclass(frozen=True)
class Condition:
    """A rule's condition that holds now: ``key`` names it and its window, so it is raised once."""

    key: str
    message: str
    details: dict[str, Any]


def _window(now: datetime, minutes: int) -> tuple[datetime, datetime]:
    """The last complete window of ``minutes``, aligned to the epoch (so every worker sees the same one)."""
    seconds = minutes * 60
    end = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)
    return end - timedelta(seconds=seconds), end


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M")


def alert_conditions(rule: AlertRule, now: datetime) -> list[Condition]:
    """What of this rule holds at ``now`` (empty: nothing to say). Quota rules are raised by the gateway."""
    scope = UsageScope(tenant=rule.tenant)
    if rule.kind in (AlertKind.ERROR_RATE, AlertKind.LATENCY_P95):
        return _window_condition(rule, scope, now)
    if rule.kind == AlertKind.BUDGET_FORECAST:
        return _forecast_condition(rule, scope, now)
    if rule.kind == AlertKind.ANOMALY:
        return _anomaly_conditions(rule, scope, now)
    return []


def _window_condition(rule: AlertRule, scope: UsageScope, now: datetime) -> list[Condition]:
    """Error rate or exact latency p95 over the last complete window, from the raw call log (a window is small
    and the (tenant, occurred_at) index finds it)."""
    start, end = _window(now, rule.window_minutes)
    calls = scope.calls().filter(occurred_at__gte=start, occurred_at__lt=end)
    count = calls.count()
    if count < rule.min_requests:
        return []
    details: dict[str, Any] = {"window_start": start.isoformat(), "window_end": end.isoformat(), "calls": count}
    if rule.kind == AlertKind.ERROR_RATE:
        errors = calls.filter(status__gte=400).count()
        rate = 100 * errors / count
        if rate < rule.threshold:
            return []
        message = (
            f"Error rate {rate:.1f} % over {rule.window_minutes} min ({errors} of {count} calls) "
            f"is at or above {rule.threshold:g} %."
        )
        details |= {"errors": errors, "error_rate_percent": round(rate, 2)}
    else:
        latencies = sorted(calls.values_list("latency_ms", flat=True))
        p95 = latencies[max(0, -(-95 * len(latencies) // 100) - 1)]
        if p95 < rule.threshold:
            return []
        message = (
            f"Latency p95 {p95} ms over {rule.window_minutes} min ({count} calls) is at or above {rule.threshold:g} ms."
        )
        details |= {"latency_p95_ms": p95}
    return [Condition(key=_stamp(start), message=message, details=details)]


def _forecast_condition(rule: AlertRule, scope: UsageScope, now: datetime) -> list[Condition]:
    status = budget_status(scope, now, budget_micros=rule.budget_micros or None)
    if not status.will_exceed:
        return []
    local = now.astimezone(ZoneInfo(rule.tenant.timezone))
    budget = (status.budget_micros or 0) / 1_000_000
    message = (
        f"Spend is forecast to reach ${status.forecast_micros / 1_000_000:,.2f} by the end of {status.period.label}, "
        f"over the budget of ${budget:,.2f} (${status.spent_micros / 1_000_000:,.2f} so far)."
    )
    details = {"spent_micros": status.spent_micros, "forecast_micros": status.forecast_micros,
               "budget_micros": status.budget_micros}  # fmt: skip
    return [Condition(key=f"{local:%Y-%m}", message=message, details=details)]


ANOMALY_BASELINE_HOURS = 24


def _anomaly_conditions(rule: AlertRule, scope: UsageScope, now: datetime) -> list[Condition]:
    """Keys whose last complete hour is ``threshold`` standard deviations above their own previous 24 hours
    (hours without calls count as zero). The spread is floored (one request, or 10 % of the mean) so a key that
    was perfectly steady does not alarm on one extra call."""
    hour = _floor_hour(now) - timedelta(hours=1)
    column = "cost_micros" if rule.metric == AlertRule.Metric.SPEND else "requests"
    rows = (
        scope.rollups()
        .filter(granularity=HOUR, bucket_start__gte=hour - timedelta(hours=ANOMALY_BASELINE_HOURS),
                bucket_start__lte=hour)
        .values("key_public_id", "bucket_start")
        .annotate(amount=Coalesce(Sum(column), 0), calls=Coalesce(Sum("requests"), 0))
    )  # fmt: skip
    history: dict[str, dict[datetime, tuple[int, int]]] = {}
    for row in rows:
        history.setdefault(row["key_public_id"], {})[row["bucket_start"]] = (row["amount"], row["calls"])
    conditions = []
    for key, hours in sorted(history.items()):
        current, calls = hours.get(hour, (0, 0))
        if calls < rule.min_requests:
            continue
        baseline = [hours.get(hour - timedelta(hours=n), (0, 0))[0] for n in range(1, ANOMALY_BASELINE_HOURS + 1)]
        mean = sum(baseline) / len(baseline)
        spread = (sum((x - mean) ** 2 for x in baseline) / len(baseline)) ** 0.5
        spread = max(spread, 0.1 * mean, 1.0)
        z = (current - mean) / spread
        if z < rule.threshold:
            continue
        what = f"${current / 1_000_000:,.4f} spent" if column == "cost_micros" else f"{current} requests"
        message = (
            f"Key {key}: {what} in the hour from {hour:%H:%M} UTC, {z:.1f} standard deviations above "
            f"its previous 24 hours (mean {mean:.1f})."
        )
        details = {"key": key, "hour": hour.isoformat(), "value": current, "mean": round(mean, 3),
                   "z_score": round(z, 2), "metric": rule.metric}  # fmt: skip
        conditions.append(Condition(key=f"{key}:{_stamp(hour)}", message=message, details=details))
    return conditions


def today_of(tenant: Tenant) -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(tenant.timezone)).date()


MAX_RANGE_DAYS = 400


def range_period(tenant: Tenant, first: date | None, last: date | None, *, default_days: int = 7) -> Period:
    """A date range picked by a reader: whole local days, the last ``default_days`` when unsaid, at most
    ``MAX_RANGE_DAYS`` long, either order accepted."""
    last = last or today_of(tenant)
    first = first or last - timedelta(days=default_days - 1)
    if first > last:
        first, last = last, first
    return days_period(tenant, max(first, last - timedelta(days=MAX_RANGE_DAYS)), last)


def month_or_now(tenant: Tenant, value: str) -> tuple[int, int]:
    """``YYYY-MM`` as (year, month); anything else is the tenant's current month."""
    try:
        year, month = (int(part) for part in value.split("-"))
        if 2000 <= year <= 2100 and 1 <= month <= 12:
            return year, month
    except ValueError:
        pass
    today = today_of(tenant)
    return today.year, today.month


def narrowed_to_application(scope: UsageScope, slug: str) -> UsageScope:
    """The scope, narrowed to one of its applications (by slug); an unknown slug narrows to nothing."""
    from subscriptions.models import Application

    ids = set(Application.objects.for_tenant(scope.tenant).filter(slug=slug).values_list("pk", flat=True))
    if scope.application_ids is not None:
        ids &= scope.application_ids
    return UsageScope(tenant=scope.tenant, application_ids=frozenset(ids), as_publisher=scope.as_publisher)

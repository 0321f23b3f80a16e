"""/metrics in Prometheus' text format, from the counters every gateway process adds to (analytics/live.py).

Because the counters live in one Redis hash, any web process answers for the whole deployment (no per-process
scraping, no multiprocess directory). Embedded mode has one process, and its counters are in memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from analytics import live
from tenants.models import Tenant

# counter field prefix → (metric name, help, label names)
COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "requests": ("gatehouse_requests_total", "Proxied calls by consumer tenant, model and HTTP status.",
                 ("tenant", "model", "status")),
    "prompt_tokens": ("gatehouse_prompt_tokens_total", "Prompt tokens by consumer tenant and model.",
                      ("tenant", "model")),
    "completion_tokens": ("gatehouse_completion_tokens_total", "Completion tokens by consumer tenant and model.",
                          ("tenant", "model")),
    "cost_micros": ("gatehouse_cost_micro_usd_total", "Cost in micro-USD by consumer tenant and model.",
                    ("tenant", "model")),
    "cache_hits": ("gatehouse_cache_hits_total", "Calls answered from the response cache.", ("tenant", "model")),
    "upstream_errors": ("gatehouse_upstream_errors_total", "Calls that failed upstream (5xx), by provider and "
                        "deployment.", ("provider", "deployment")),
    "rate_limited": ("gatehouse_rate_limited_total", "Calls refused with 429, by consumer tenant and code.",
                     ("tenant", "code")),
    "policy_decisions": ("gatehouse_policy_decisions_total", "What policies did to calls (flag, block, mask…).",
                         ("policy", "decision")),
}  # fmt: skip
HISTOGRAM = "gatehouse_request_duration_seconds"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))


def render(counters: dict[str, int]) -> str:
    parsed = [(field.split("|")[0], field.split("|")[1:], value) for field, value in sorted(counters.items())]
    by_tenant = {kind for kind, (_, _, names) in COUNTERS.items() if names[0] == "tenant"}
    tenant_ids = {values[0] for kind, values, _ in parsed if kind in by_tenant and values and values[0].isdigit()}
    slugs = {str(pk): slug for pk, slug in Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", "slug")}
    series: dict[str, list[tuple[str, int]]] = defaultdict(list)
    buckets: dict[str, dict[str, int]] = defaultdict(dict)
    counts: dict[str, int] = {}
    sums: dict[str, int] = {}
    alerts = 0
    for kind, values, value in parsed:
        if kind in COUNTERS:
            names = COUNTERS[kind][2]
            if len(values) != len(names):
                continue
            if names[0] == "tenant":
                values[0] = slugs.get(values[0], values[0] or "unknown")
            series[kind].append((_labels(names, values), value))
        elif kind == "duration_bucket" and len(values) == 2:
            buckets[values[0]][values[1]] = value
        elif kind == "duration_count" and values:
            counts[values[0]] = value
        elif kind == "duration_sum_ms" and values:
            sums[values[0]] = value
        elif kind == "alerts_total":
            alerts = value
    lines: list[str] = []
    for kind, (name, help_text, _) in COUNTERS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines += [f"{name}{{{labels}}} {value}" for labels, value in series.get(kind, [])]
    lines += [
        f"# HELP {HISTOGRAM} Time from a call's arrival to its last byte, by model.",
        f"# TYPE {HISTOGRAM} histogram",
    ]
    for model in sorted(counts):
        cumulative = 0
        for bound in live.LATENCY_BUCKETS:
            cumulative += buckets[model].get(str(bound), 0)
            lines.append(f'{HISTOGRAM}_bucket{{model="{_escape(model)}",le="{bound:g}"}} {cumulative}')
        lines.append(f'{HISTOGRAM}_bucket{{model="{_escape(model)}",le="+Inf"}} {counts[model]}')
        lines.append(f'{HISTOGRAM}_sum{{model="{_escape(model)}"}} {sums.get(model, 0) / 1000:.3f}')
        lines.append(f'{HISTOGRAM}_count{{model="{_escape(model)}"}} {counts[model]}')
    lines += [
        "# HELP gatehouse_alerts_total Quota alerts raised by the gateway.",
        "# TYPE gatehouse_alerts_total counter",
        f"gatehouse_alerts_total {alerts}",
    ]
    return "\n".join(lines) + "\n"

"""A mergeable latency sketch: counts per logarithmic bucket, so percentiles of many rollups can be combined.

Each rollup row keeps its own exact p50/p95 (computed from the raw rows of its bucket). A view that combines
rows — a whole tenant's hour, a month of one model — cannot merge exact percentiles, so rows also carry this
histogram: bucket ``i`` counts latencies in ``(BOUNDS[i-1], BOUNDS[i]]`` ms, each bound 1.25x the previous,
so a percentile read from merged histograms is within 12.5 % of the truth (we report the bucket's upper
bound, never an optimistic value). Stored sparse (``{"index": count}``) so quiet rows stay small.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

RATIO = 1.25
# 1 ms … ~10 minutes; anything slower lands in the last bucket.
BOUNDS: tuple[int, ...] = tuple(sorted({math.ceil(RATIO**i) for i in range(61)}))

Histogram = dict[str, int]


def bucket_of(latency_ms: int) -> int:
    return min(bisect.bisect_left(BOUNDS, latency_ms), len(BOUNDS) - 1)


def histogram_of(latencies: Iterable[int]) -> Histogram:
    counts: dict[str, int] = {}
    for latency in latencies:
        key = str(bucket_of(latency))
        counts[key] = counts.get(key, 0) + 1
    return counts


def add(into: Histogram, histogram: Histogram) -> None:
    """Add ``histogram``'s counts into ``into`` (in place: merging many rows without a dict per row)."""
    for key, count in histogram.items():
        into[key] = into.get(key, 0) + count


def merge(histograms: Iterable[Histogram]) -> Histogram:
    total: dict[str, int] = {}
    for histogram in histograms:
        for key, count in histogram.items():
            total[key] = total.get(key, 0) + count
    return total


def quantile(histogram: Histogram, q: float) -> int:
    """The upper bound of the bucket holding the q-quantile (nearest rank); 0 for an empty histogram."""
    n = sum(histogram.values())
    if not n:
        return 0
    rank = max(1, math.ceil(q * n))
    seen = 0
    for key in sorted(histogram, key=int):
        seen += histogram[key]
        if seen >= rank:
            return BOUNDS[int(key)]
    return BOUNDS[-1]

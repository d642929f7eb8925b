"""The dashboard's metrics: per model, queries per second and latency quantiles over 15 minutes.

A :class:`LatencyRing` keeps, for each model, :data:`BUCKETS` time buckets of
:data:`BUCKET_S` seconds (90 x 10 s = the last 15 minutes), and in each bucket a fixed
histogram of end-to-end latencies: :data:`BINS_PER_DECADE` log-spaced bins per decade from
:data:`LOW_S` (0.1 ms) to :data:`HIGH_S` (100 s), plus one bin below and one above. A quantile
is read from the histogram by interpolating inside the bin that holds the wanted rank, so it is
within one bin of the true value: a factor of ``10 ** (1 / 20)`` (12 %).

Everything is bounded and allocated up front: a model's series is three flat ``array``\\ s
(:data:`BUCKETS` x :data:`NBINS` counts of 4 bytes, about 44 KB), at most :data:`MAX_SERIES`
models are tracked (the one updated least recently is dropped for a new one), and recording a
query is a bisection and two increments. Nothing leaves the process: the dashboard reads it
(:mod:`~clipper_deploy.frontend.dashboard`).
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from collections.abc import Callable
from typing import Any

BUCKET_S = 10
BUCKETS = 90
LOW_S = 1e-4
HIGH_S = 100.0
BINS_PER_DECADE = 20
#: Bin edges, ``LOW_S`` .. ``HIGH_S``; bin ``i`` holds ``EDGES[i-1] <= x < EDGES[i]``, bin 0
#: everything below ``LOW_S``, the last bin everything from ``HIGH_S`` up.
EDGES: tuple[float, ...] = tuple(
    LOW_S * 10 ** (i / BINS_PER_DECADE)
    for i in range(round(math.log10(HIGH_S / LOW_S) * BINS_PER_DECADE) + 1)
)
NBINS = len(EDGES) + 1
MAX_SERIES = 64


def bin_of(latency_s: float) -> int:
    """The histogram bin of one latency."""
    return bisect.bisect_right(EDGES, latency_s)


def bin_range(index: int) -> tuple[float, float]:
    """The ``[low, high)`` latency range of bin ``index`` (0 .. LOW_S for the lowest bin,
    HIGH_S .. HIGH_S for the highest: it reports its edge)."""
    if index <= 0:
        return 0.0, EDGES[0]
    if index >= len(EDGES):
        return EDGES[-1], EDGES[-1]
    return EDGES[index - 1], EDGES[index]


def quantile(counts: Any, q: float, offset: int = 0) -> float | None:
    """The ``q``-quantile (0..1) of the histogram ``counts[offset : offset + NBINS]``, or
    ``None`` when it is empty. The rank is numpy's (``q * (n - 1)``, 0-based); inside its bin
    the value is interpolated on a log scale (linearly in the lowest bin)."""
    total = 0
    for i in range(offset, offset + NBINS):
        total += counts[i]
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for i in range(NBINS):
        c = counts[offset + i]
        if c and seen + c > rank:
            low, high = bin_range(i)
            fraction = min(1.0, (rank - seen + 0.5) / c)  # its items spread over the bin
            if low <= 0.0:
                return high * fraction
            return low * (high / low) ** fraction
        seen += c
    return bin_range(NBINS - 1)[1]  # pragma: no cover - rank < total always finds a bin


class Series:
    """The buckets of one model: counts, errors and latency histograms."""

    __slots__ = ("errors", "histograms", "last_used", "queries", "stamps")

    def __init__(self) -> None:
        self.stamps = array("q", [-1] * BUCKETS)  # which bucket (time // BUCKET_S) a slot holds
        self.queries = array("I", bytes(4 * BUCKETS))
        self.errors = array("I", bytes(4 * BUCKETS))
        self.histograms = array("I", bytes(4 * BUCKETS * NBINS))
        self.last_used = 0.0

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (fixed)."""
        return sum(a.itemsize * len(a) for a in (self.stamps, self.queries, self.errors)) + (
            self.histograms.itemsize * len(self.histograms)
        )

    def slot(self, epoch: int) -> int:
        """The slot of bucket ``epoch``, cleared first if it held an older bucket."""
        slot = epoch % BUCKETS
        if self.stamps[slot] != epoch:
            self.stamps[slot] = epoch
            self.queries[slot] = 0
            self.errors[slot] = 0
            start = slot * NBINS
            self.histograms[start : start + NBINS] = array("I", bytes(4 * NBINS))
        return slot


class LatencyRing:
    """Queries per second and latency quantiles of every model, for the last 15 minutes."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self.series: dict[str, Series] = {}

    def record(self, model: str, latency_s: float, ok: bool = True) -> None:
        """Count one query of ``model`` that took ``latency_s`` (``ok``: answered 200)."""
        now = self.now()
        s = self.series.get(model)
        if s is None:
            if len(self.series) >= MAX_SERIES:
                oldest = min(self.series, key=lambda name: self.series[name].last_used)
                del self.series[oldest]
            s = self.series[model] = Series()
        s.last_used = now
        slot = s.slot(int(now // BUCKET_S))
        s.queries[slot] += 1
        if not ok:
            s.errors[slot] += 1
            return
        s.histograms[slot * NBINS + bin_of(latency_s)] += 1

    def forget(self, model: str) -> None:
        """Drop ``model``'s series."""
        self.series.pop(model, None)

    @property
    def nbytes(self) -> int:
        """Bytes held by every series' arrays."""
        return sum(s.nbytes for s in self.series.values())

    def snapshot(self, model: str) -> dict[str, Any] | None:
        """``model``'s last :data:`BUCKETS` buckets, oldest first, and the whole window.

        ``t`` are bucket start times (epoch seconds); ``qps`` counts per second (the current,
        unfinished bucket over the seconds it has run); ``p50_ms``/``p99_ms`` are ``None`` for
        a bucket without answered queries; ``errors`` counts non-200 answers.
        """
        s = self.series.get(model)
        if s is None:
            return None
        now = self.now()
        newest = int(now // BUCKET_S)
        merged = array("I", bytes(4 * NBINS))
        out: dict[str, Any] = {"t": [], "qps": [], "p50_ms": [], "p99_ms": [], "errors": []}
        total = errors = 0
        for epoch in range(newest - BUCKETS + 1, newest + 1):
            slot = epoch % BUCKETS
            out["t"].append(epoch * BUCKET_S)
            if s.stamps[slot] != epoch:
                out["qps"].append(0.0)
                out["p50_ms"].append(None)
                out["p99_ms"].append(None)
                out["errors"].append(0)
                continue
            seconds = BUCKET_S if epoch < newest else max(1.0, now - epoch * BUCKET_S)
            count = s.queries[slot]
            total += count
            errors += s.errors[slot]
            offset = slot * NBINS
            for i in range(NBINS):
                merged[i] += s.histograms[offset + i]
            out["qps"].append(round(count / seconds, 3))
            out["p50_ms"].append(_ms(quantile(s.histograms, 0.5, offset)))
            out["p99_ms"].append(_ms(quantile(s.histograms, 0.99, offset)))
            out["errors"].append(s.errors[slot])
        span = (BUCKETS - 1) * BUCKET_S + max(1.0, now - newest * BUCKET_S)
        out["window"] = {
            "seconds": round(span, 1),
            "queries": total,
            "errors": errors,
            "qps": round(total / span, 3),
            "p50_ms": _ms(quantile(merged, 0.5)),
            "p99_ms": _ms(quantile(merged, 0.99)),
        }
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)

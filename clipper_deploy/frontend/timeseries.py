"""The dashboard's metrics: per model, queries per second and latency quantiles over 15 minutes.

A :class:`LatencyRing` keeps, for each model, :data:`BUCKETS` time buckets of
:data:`BUCKET_S` seconds (90 x 10 s = the last 15 minutes), and in each bucket a fixed
histogram of end-to-end latencies: :data:`BINS_PER_DECADE` log-spaced bins per decade from
:data:`LOW_S` (0.1 ms) to :data:`HIGH_S` (100 s), plus one bin below and one above. A quantile
is read from the histogram by interpolating inside the bin that holds the wanted rank, so it is
within one bin of the true value: a factor of ``10 ** (1 / 20)`` (12 %).

Everything is bounded and allocated up front: a model's series is flat ``array``\\ s (the
histograms are :data:`BUCKETS` x :data:`NBINS` counts of 4 bytes, about 44 KB) plus the
cached rows of its finished buckets (at most :data:`BUCKETS`), at most :data:`MAX_SERIES`
models are tracked (the one updated least recently is dropped for a new one), and recording a
query is a bisection and a few increments (about 1 µs). Nothing leaves the process: the
dashboard reads it (:mod:`~clipper_deploy.frontend.dashboard`).
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import time
from array import array
from collections.abc import Callable, Sequence
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

#: One bucket as the dashboard shows it: start time, queries/s, p50 ms, p99 ms, errors,
#: default outputs.
Row = tuple[int, float, float | None, float | None, int, int]


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


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q``-quantile (0..1) of the histogram ``counts`` (:data:`NBINS` bins), or ``None``
    when it is empty. The rank is numpy's (``q * (n - 1)``, 0-based); inside its bin the value
    is interpolated on a log scale (linearly in the lowest bin)."""
    return quantiles(counts, (q,))[0]


def quantiles(counts: Sequence[int], qs: Sequence[float]) -> list[float | None]:
    """Several quantiles of one histogram (see :func:`quantile`)."""
    cumulative = list(itertools.accumulate(counts))
    total = cumulative[-1]
    if total == 0:
        return [None] * len(qs)
    out: list[float | None] = []
    for q in qs:
        rank = q * (total - 1)
        i = bisect.bisect_right(cumulative, rank)  # the first bin holding more than rank items
        seen = cumulative[i - 1] if i else 0
        fraction = min(1.0, (rank - seen + 0.5) / counts[i])  # its items spread over the bin
        low, high = bin_range(i)
        out.append(high * fraction if low <= 0.0 else low * (high / low) ** fraction)
    return out


class Series:
    """The buckets of one model: counts, errors, default outputs and latency histograms."""

    __slots__ = (
        "_done",
        "_done_at",
        "_rows",
        "defaults",
        "errors",
        "histograms",
        "last_used",
        "queries",
        "stamps",
    )

    def __init__(self) -> None:
        self.stamps = array("q", [-1] * BUCKETS)  # which bucket (time // BUCKET_S) a slot holds
        self.queries = array("I", bytes(4 * BUCKETS))
        self.errors = array("I", bytes(4 * BUCKETS))
        self.defaults = array("I", bytes(4 * BUCKETS))
        self.histograms = array("I", bytes(4 * BUCKETS * NBINS))
        self.last_used = 0.0
        #: Finished buckets no longer change: each one's row is computed once, and their
        #: merged histogram once per new bucket (``_done_at``), not on every read.
        self._rows: dict[int, Row] = {}
        self._done: tuple[list[Row], list[int]] = ([], [0] * NBINS)
        self._done_at = -1

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (fixed)."""
        return sum(
            a.itemsize * len(a) for a in (self.stamps, self.queries, self.errors, self.defaults)
        ) + (self.histograms.itemsize * len(self.histograms))

    def slot(self, epoch: int) -> int:
        """The slot of bucket ``epoch``, cleared first if it held an older bucket."""
        slot = epoch % BUCKETS
        if self.stamps[slot] != epoch:
            self.stamps[slot] = epoch
            self.queries[slot] = 0
            self.errors[slot] = 0
            self.defaults[slot] = 0
            start = slot * NBINS
            self.histograms[start : start + NBINS] = array("I", bytes(4 * NBINS))
        return slot

    def histogram(self, slot: int) -> array:
        start = slot * NBINS
        return self.histograms[start : start + NBINS]

    def row(self, epoch: int, seconds: float) -> Row:
        """Bucket ``epoch`` as a :data:`Row`."""
        slot = epoch % BUCKETS
        if self.stamps[slot] != epoch:
            return (epoch * BUCKET_S, 0.0, None, None, 0, 0)
        p50, p99 = quantiles(self.histogram(slot), (0.5, 0.99))
        qps = round(self.queries[slot] / seconds, 3)
        errors, defaults = self.errors[slot], self.defaults[slot]
        return (epoch * BUCKET_S, qps, _ms(p50), _ms(p99), errors, defaults)

    def finished(self, newest: int) -> tuple[list[Row], list[int]]:
        """The rows of the :data:`BUCKETS` - 1 finished buckets before ``newest`` and their
        merged histogram (cached until ``newest`` changes)."""
        if self._done_at != newest:
            first = newest - BUCKETS + 1
            known = {e: r for e, r in self._rows.items() if first <= e < newest}
            rows = []
            merged = [0] * NBINS
            for epoch in range(first, newest):
                row = known.get(epoch)
                if row is None:
                    row = known[epoch] = self.row(epoch, BUCKET_S)
                rows.append(row)
                slot = epoch % BUCKETS
                if self.stamps[slot] == epoch and self.queries[slot]:
                    merged = list(map(operator.add, merged, self.histogram(slot)))
            self._rows, self._done, self._done_at = known, (rows, merged), newest
        return self._done

    def totals(self, newest: int) -> tuple[int, int, int]:
        """Queries, errors and default outputs in the window ending with bucket ``newest``."""
        queries = errors = defaults = 0
        for epoch in range(newest - BUCKETS + 1, newest + 1):
            slot = epoch % BUCKETS
            if self.stamps[slot] == epoch:
                queries += self.queries[slot]
                errors += self.errors[slot]
                defaults += self.defaults[slot]
        return queries, errors, defaults


class LatencyRing:
    """Queries per second and latency quantiles of every model, for the last 15 minutes."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self.series: dict[str, Series] = {}

    def record(self, model: str, latency_s: float, ok: bool = True, default: bool = False) -> None:
        """Count one request of ``model`` that took ``latency_s`` (``ok``: answered 200;
        ``default``: the answer holds a default output). Errors have no latency recorded."""
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
        if default:
            s.defaults[slot] += 1
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
        a bucket without answered queries; ``errors`` counts non-200 answers, ``defaults``
        answers holding a default output (no replica, SLO missed, overload). Finished buckets
        are computed once; a read costs the current bucket and one merge.
        """
        s = self.series.get(model)
        if s is None:
            return None
        now = self.now()
        newest = int(now // BUCKET_S)
        rows, merged = s.finished(newest)
        running = max(1.0, now - newest * BUCKET_S)
        rows = [*rows, s.row(newest, running)]
        slot = newest % BUCKETS
        if s.stamps[slot] == newest:
            merged = list(map(operator.add, merged, s.histogram(slot)))
        p50, p99 = quantiles(merged, (0.5, 0.99))
        queries, errors, defaults = s.totals(newest)
        span = (BUCKETS - 1) * BUCKET_S + running
        columns = list(zip(*rows, strict=True))
        return {
            "t": list(columns[0]),
            "qps": list(columns[1]),
            "p50_ms": list(columns[2]),
            "p99_ms": list(columns[3]),
            "errors": list(columns[4]),
            "defaults": list(columns[5]),
            "window": {
                "seconds": round(span, 1),
                "queries": queries,
                "errors": errors,
                "defaults": defaults,
                "qps": round(queries / span, 3),
                "p50_ms": _ms(p50),
                "p99_ms": _ms(p99),
            },
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)

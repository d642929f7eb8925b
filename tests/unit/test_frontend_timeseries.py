"""The dashboard's metrics ring: quantiles against numpy, buckets in time, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from clipper_deploy.frontend import timeseries as ts
from clipper_deploy.frontend.timeseries import (
    BUCKET_S,
    BUCKETS,
    EDGES,
    MAX_SERIES,
    NBINS,
    LatencyRing,
    bin_of,
    bin_range,
    quantile,
)

BIN_RATIO = 10 ** (1 / ts.BINS_PER_DECADE)


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def histogram(values: np.ndarray) -> list[int]:
    counts = [0] * NBINS
    for v in values:
        counts[bin_of(float(v))] += 1
    return counts


class TestBins:
    def test_edges_span_a_tenth_of_a_millisecond_to_100_s(self) -> None:
        assert EDGES[0] == pytest.approx(1e-4) and EDGES[-1] == pytest.approx(100.0)
        assert NBINS == len(EDGES) + 1 == 122

    def test_a_value_falls_in_the_bin_whose_range_holds_it(self) -> None:
        for v in (0.0, 5e-5, 1e-4, 0.00123, 0.05, 1.0, 99.9, 100.0, 1e6):
            low, high = bin_range(bin_of(v))
            assert low <= v and (v < high or high == EDGES[-1])


class TestQuantiles:
    @pytest.mark.parametrize(
        "name, values",
        [
            ("lognormal", np.random.default_rng(1).lognormal(np.log(0.01), 0.8, 20_000)),
            ("uniform", np.random.default_rng(2).uniform(0.001, 0.2, 20_000)),
            ("bimodal", np.concatenate([np.full(8_000, 0.004), np.full(2_000, 0.35)])),
        ],
    )
    @pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
    def test_within_one_bin_of_numpy(self, name: str, values: np.ndarray, q: float) -> None:
        estimate = quantile(histogram(values), q)
        exact = float(np.quantile(values, q))
        assert estimate is not None
        assert exact / BIN_RATIO <= estimate <= exact * BIN_RATIO, (name, q, estimate, exact)

    @pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.75, 0.99, 1.0])
    def test_in_the_bin_of_numpys_lower_order_statistic(self, q: float) -> None:
        values = np.array([0.0002, 0.003, 0.003, 0.004, 0.09, 0.5, 2.0, 7.5, 150.0])
        estimate = quantile(histogram(values), q)
        low, high = bin_range(bin_of(float(np.quantile(values, q, method="lower"))))
        assert estimate is not None and low <= estimate <= high

    def test_empty_histogram_has_no_quantile(self) -> None:
        assert quantile([0] * NBINS, 0.5) is None


class TestRing:
    def test_buckets_count_queries_per_second_and_quantiles(self) -> None:
        clock = Clock(1_700_000_000.0)
        ring = LatencyRing(now=clock)
        latencies = np.random.default_rng(3).lognormal(np.log(0.02), 0.5, 500)
        for v in latencies:
            ring.record("m", float(v))
        ring.record("m", 0.5, ok=False)
        ring.record("m", 0.02, default=True)
        clock.t += BUCKET_S  # the bucket is complete now
        snap = ring.snapshot("m")
        assert snap is not None
        assert len(snap["t"]) == BUCKETS and snap["t"][-1] - snap["t"][0] == (BUCKETS - 1) * 10
        assert snap["qps"][-2] == pytest.approx(502 / BUCKET_S)
        assert snap["errors"][-2] == 1 and snap["defaults"][-2] == 1
        p99 = snap["p99_ms"][-2] / 1000
        assert np.quantile(latencies, 0.99) / BIN_RATIO <= p99
        assert p99 <= np.quantile(latencies, 0.99) * BIN_RATIO
        assert snap["p50_ms"][-1] is None and snap["qps"][-1] == 0.0
        assert snap["window"]["queries"] == 502 and snap["window"]["errors"] == 1
        assert snap["window"]["defaults"] == 1

    def test_buckets_older_than_15_minutes_are_forgotten(self) -> None:
        clock = Clock()
        ring = LatencyRing(now=clock)
        ring.record("m", 0.01)
        clock.t += BUCKETS * BUCKET_S
        ring.record("m", 0.02)  # lands in the slot the first one used
        snap = ring.snapshot("m")
        assert snap is not None and snap["window"]["queries"] == 1
        assert sum(1 for p in snap["p50_ms"] if p is not None) == 1

    def test_unknown_model_has_no_snapshot(self) -> None:
        assert LatencyRing().snapshot("nope") is None

    def test_memory_is_fixed_per_model_and_the_models_are_bounded(self) -> None:
        clock = Clock()
        ring = LatencyRing(now=clock)
        ring.record("m", 0.01)
        one = ring.nbytes
        assert one < 50_000
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for i in range(200_000):
            clock.t += 0.05
            ring.record("m", 0.001 + (i % 1000) / 1000)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        assert ring.nbytes == one and grown < 20_000
        for i in range(MAX_SERIES * 3):
            clock.t += 1
            ring.record(f"model-{i}", 0.01)
        assert len(ring.series) == MAX_SERIES
        assert ring.nbytes == MAX_SERIES * one
        assert f"model-{MAX_SERIES * 3 - 1}" in ring.series and "m" not in ring.series

    def test_reads_between_records_give_what_one_read_at_the_end_gives(self) -> None:
        rng = np.random.default_rng(5)
        steps = [(float(rng.uniform(0, 3)), float(rng.lognormal(-4, 1))) for _ in range(2000)]
        watched_clock, fresh_clock = Clock(), Clock()
        watched, fresh = LatencyRing(now=watched_clock), LatencyRing(now=fresh_clock)
        for i, (dt, latency) in enumerate(steps):
            for clock, ring in ((watched_clock, watched), (fresh_clock, fresh)):
                clock.t += dt
                ring.record("m", latency, ok=i % 50 != 0, default=i % 30 == 0)
            if i % 7 == 0:
                watched.snapshot("m")  # fills the caches of finished buckets
        assert watched.snapshot("m") == fresh.snapshot("m")

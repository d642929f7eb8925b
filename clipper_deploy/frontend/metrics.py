"""The frontend's Prometheus metrics, served at ``GET /metrics`` on the query port.

Per application: requests by HTTP status, end-to-end latency, default outputs by reason.
Per model version and replica: batch sizes, batch round-trip latency, queries served, connected
replicas, queries waiting, replicas taken out of rotation. On the replica port: connections
refused before they registered, by reason. Children are cached so the query path
pays one dictionary lookup per metric.

The page names models and replicas, so it needs the admin token unless the frontend runs with
``--metrics-open`` (inventory: ``clipper_metrics_open=true``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """All metric families of one frontend, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "clipper_requests",
            "Prediction requests by application and HTTP status.",
            ["app", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "clipper_request_latency_seconds",
            "End-to-end prediction latency per application.",
            ["app"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.defaults = Counter(
            "clipper_default_outputs",
            "Queries answered with the default output, by reason.",
            ["app", "reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "clipper_batch_size",
            "Queries per batch sent to a replica.",
            ["model", "version", "replica"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_latency = Histogram(
            "clipper_batch_latency_seconds",
            "Round trip of one batch to a replica.",
            ["model", "version", "replica"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.replica_queries = Counter(
            "clipper_replica_queries",
            "Queries answered by a replica.",
            ["model", "version", "replica"],
            registry=r,
        )
        self.replicas = Gauge(
            "clipper_connected_replicas",
            "Replicas connected per model version.",
            ["model", "version"],
            registry=r,
        )
        self.queued = Gauge(
            "clipper_queued_queries",
            "Queries waiting for a replica per model version (when a batch was last sent).",
            ["model", "version"],
            registry=r,
        )
        self.evictions = Counter(
            "clipper_replica_evictions",
            "Replicas taken out of rotation for not answering a batch in time.",
            ["model", "version"],
            registry=r,
        )
        self.refusals = Counter(
            "clipper_replica_refusals",
            "Connections to the replica port refused before registration, by reason "
            "(unknown_model, input_type, no_proof, bad_proof, duplicate_id, bad_hello, "
            "oversized, timeout, busy).",
            ["reason"],
            registry=r,
        )
        self._children: dict[tuple[str, tuple[str, ...]], object] = {}

    def child(self, family: str, *labels: str):
        """Return the (cached) child of metric ``family`` for ``labels``."""
        key = (family, labels)
        c = self._children.get(key)
        if c is None:
            c = getattr(self, family).labels(*labels)
            self._children[key] = c
        return c

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

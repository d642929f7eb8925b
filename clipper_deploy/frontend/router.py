"""Route queries to replicas: per-model-version queues, batching and load balancing.

Every model version has a :class:`ModelQueue` holding its pending queries and the replicas
connected for it. A replica carries at most one batch at a time; whenever a query arrives or a
replica comes back idle, :meth:`ModelQueue.dispatch` hands the oldest pending queries, up to that
replica's AIMD budget, to the replica idle the longest (so load spreads over every connected
replica). Everything runs on the event loop: no locks, and a version switch is one assignment.

A query always ends, one of three ways: the replica's output; the app's default output when the
SLO timer fires first, or when no replica is connected (at submit time or when the last one goes
away); or the default output with the function's error when the replica failed that query.

Everything is bounded:

- **Admission.** A query is queued only while its model version has fewer than ``max_queue``
  queries waiting and it can expect an answer within its SLO: a replica is idle, nothing waits
  (for a single query), or the queries ahead of it at the rate the replicas have been
  answering (each replica's batch budget over its recent batch round trip), plus two batch
  round trips (the one in flight, its own), fit in the SLO.
  Otherwise it gets the default output at once, with an explanation (Clipper's answer to a
  query it cannot serve in time), and the reason ``queue_full`` or ``overloaded`` in the
  metrics. Shedding at once keeps the admitted queries within their SLO under overload, where a
  long queue would make every one of them wait out its SLO.
- **Batch deadline.** A replica that has not answered a batch within ``batch_timeout_s`` (at
  least twice the SLO) is taken out of rotation and disconnected: its batch's queries get the
  default output (they are not re-sent, as the input may be what hangs the function), the
  frontend never waits on it again, and the replica registers anew once its function returns
  (or once its own watchdog restarts it).
- **Packing.** Values are range-checked before they are queued; should packing a batch fail
  anyway, only the queries that cannot be packed fail, and the replica's connection is never
  touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clipper_deploy.frontend.batching import AIMDController
from clipper_deploy.frontend.metrics import Metrics
from clipper_deploy.frontend.protocol import (
    INPUT_TYPE_DTYPES,
    BatchResult,
    encode_blob_batch,
    encode_numeric_batch,
    proof_matches,
)
from clipper_deploy.frontend.store import App, Store

log = logging.getLogger(__name__)

SLO_EXPLANATION = "Failed to retrieve a prediction response within the specified latency SLO"
DEPARTED_KEEP_S = 300.0
#: Weight of the newest batch in a replica's average batch round trip.
LATENCY_EWMA_WEIGHT = 0.2
DEFAULT_MAX_QUEUE = 2000
DEFAULT_BATCH_TIMEOUT_S = 5.0

#: What a query's future resolves to: (is_default, output, explanation, reason).
Outcome = tuple[bool, Any, str | None, str | None]

ModelKey = tuple[str, str]


class Pending:
    """One query waiting for its output."""

    __slots__ = ("future", "timer", "value")

    def __init__(self, value: Any, future: asyncio.Future[Outcome]) -> None:
        self.value = value
        self.future = future
        self.timer: asyncio.TimerHandle | None = None

    def resolve(self, output: Any) -> None:
        """Answer with the model's output (unless the query already ended)."""
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_result((False, output, None, None))

    def default(self, explanation: str, reason: str) -> None:
        """Answer with the app's default output, saying why."""
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_result((True, None, explanation, reason))

    def expire(self) -> None:
        """The SLO timer fired."""
        self.timer = None
        if not self.future.done():
            self.future.set_result((True, None, SLO_EXPLANATION, "slo"))


class ReplicaLink:
    """The frontend's view of one connected replica."""

    def __init__(
        self,
        model_name: str,
        model_version: str,
        input_type: str,
        replica_id: str,
        peer: str,
        send: Callable[[bytes], None],
        close: Callable[[], None],
        controller: AIMDController,
    ) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.input_type = input_type
        self.replica_id = replica_id
        self.peer = peer
        self.send = send
        self.close = close
        self.controller = controller
        self.key: ModelKey = (model_name, model_version)
        self.numeric = input_type in INPUT_TYPE_DTYPES
        self.connected_since = time.time()
        self.last_heartbeat = self.connected_since
        self.last_seen = time.monotonic()
        self.disconnected_at: float | None = None
        self.batches_served = 0
        self.queries_served = 0
        self.failed_queries = 0
        self.batch_id = 0
        self.sent_at = 0.0
        self.in_flight: list[Pending] | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.drop_reason: str | None = None
        self.avg_latency: float | None = None

    @property
    def state(self) -> str:
        """``idle``, ``busy`` (a batch in flight) or ``disconnected``."""
        if self.disconnected_at is not None:
            return "disconnected"
        return "busy" if self.in_flight is not None else "idle"

    def encode(self, batch_id: int, values: list[Any]) -> bytes:
        """The ``BATCH`` frame of ``values`` (raises if a value cannot be packed)."""
        if self.numeric:
            return encode_numeric_batch(batch_id, self.input_type, values)
        return encode_blob_batch(batch_id, values)

    def pack(self, items: list[Pending]) -> tuple[bytes | None, list[Pending]]:
        """Encode ``items`` as one frame; queries that cannot be packed get the default output.

        Returns the frame (``None`` if nothing could be packed) and the queries it carries.
        Validation makes a failure here a bug, so it costs only the queries concerned.
        """
        batch_id = (self.batch_id + 1) & 0xFFFFFFFF
        try:
            return self.encode(batch_id, [p.value for p in items]), items
        except Exception as exc:
            log.error(
                "packing a batch of %d for replica %s failed (%s); answering the queries that "
                "cannot be packed with the default output",
                len(items),
                self.replica_id,
                exc,
            )
        good: list[Pending] = []
        for p in items:
            try:
                self.encode(batch_id, [p.value])
            except Exception as exc:
                p.default(f"The frontend could not pack this query for the replica: {exc}", "pack")
            else:
                good.append(p)
        if not good:
            return None, []
        return self.encode(batch_id, [p.value for p in good]), good

    def send_batch(self, items: list[Pending], data: bytes) -> None:
        """Write the packed frame ``data`` (carrying ``items``) to the replica."""
        self.batch_id = (self.batch_id + 1) & 0xFFFFFFFF
        self.in_flight = items
        self.sent_at = time.monotonic()
        self.send(data)

    def describe(self, current_version: str | None) -> dict[str, Any]:
        """The ``get_all_containers`` entry for this replica."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "replica_id": self.replica_id,
            "input_type": self.input_type,
            "peer": self.peer,
            "connected_since": self.connected_since,
            "last_heartbeat": self.last_heartbeat,
            "batches_served": self.batches_served,
            "queries_served": self.queries_served,
            "failed_queries": self.failed_queries,
            "batch_size_limit": self.controller.batch_size,
            "state": self.state,
            "is_current_version": current_version == self.model_version,
            "disconnected_at": self.disconnected_at,
            "drop_reason": self.drop_reason,
        }


class ModelQueue:
    """Pending queries of one model version and the replicas that serve it."""

    def __init__(
        self,
        key: ModelKey,
        metrics: Metrics,
        max_queue: int = DEFAULT_MAX_QUEUE,
        batch_timeout_s: float = DEFAULT_BATCH_TIMEOUT_S,
    ) -> None:
        self.key = key
        self.metrics = metrics
        self.pending: deque[Pending] = deque()
        self.replicas: dict[str, ReplicaLink] = {}
        self.idle: deque[ReplicaLink] = deque()
        self.slo_s = 0.1
        self.max_queue = max_queue
        self.batch_timeout_s = batch_timeout_s

    @property
    def name(self) -> str:
        return f"{self.key[0]}:{self.key[1]}"

    def refuse(self, count: int) -> tuple[str, str] | None:
        """Why ``count`` more queries may not be queued now (explanation, reason), or ``None``."""
        pending = self.pending
        while pending and pending[0].future.done():
            pending.popleft()
        if len(pending) + count > self.max_queue:
            return (
                f"The queue of model {self.name} is full ({len(pending)} queries waiting, at "
                f"most {self.max_queue}: --max-queue); the frontend is overloaded, add "
                "replicas or send fewer queries",
                "queue_full",
            )
        if self.idle or (not pending and count == 1):  # no queue: it waits one batch at most
            return None
        rate = 0.0
        round_trip = 0.0
        for link in self.replicas.values():
            if link.avg_latency:
                rate += link.controller.batch_size / link.avg_latency
                round_trip = max(round_trip, link.avg_latency)
        if rate > 0:
            wait = (len(pending) + count) / rate + 2 * round_trip
            if wait > self.slo_s:
                return (
                    f"Model {self.name} is overloaded: {len(pending)} queries are waiting and "
                    f"its replicas answer about {rate:.0f} per second, so this one would wait "
                    f"about {wait * 1000:.0f} ms, more than the {self.slo_s * 1000:.0f} ms "
                    "latency SLO; add replicas or send fewer queries",
                    "overloaded",
                )
        return None

    def submit(self, item: Pending) -> None:
        """Queue one query and dispatch if a replica is idle."""
        self.pending.append(item)
        if self.idle:
            self.dispatch()

    def submit_many(self, items: list[Pending]) -> None:
        """Queue several queries (one request's ``input_batch``), then dispatch once."""
        self.pending.extend(items)
        if self.idle:
            self.dispatch()

    def dispatch(self) -> None:
        """Send pending queries to idle replicas, one batch each."""
        pending = self.pending
        self.metrics.child("queued", *self.key).set(len(pending))
        while pending and self.idle:
            link = self.idle.popleft()
            limit = link.controller.batch_size
            items: list[Pending] = []
            while pending and len(items) < limit:
                item = pending.popleft()
                if not item.future.done():
                    items.append(item)
            if not items:
                self.idle.appendleft(link)
                return
            data, items = link.pack(items)
            if data is None:
                self.idle.appendleft(link)
                continue
            try:
                link.send_batch(items, data)
            except Exception as exc:  # a broken transport: put the queries back, drop it
                log.warning("sending a batch to replica %s failed: %s", link.replica_id, exc)
                link.in_flight = None
                pending.extendleft(reversed(items))
                link.drop_reason = f"sending a batch failed: {exc}"
                link.close()
                continue
            self.arm_deadline(link, items[0].future.get_loop())

    def batch_deadline_s(self) -> float:
        """How long a replica may take for one batch before it is taken out of rotation."""
        return max(self.batch_timeout_s, 2 * self.slo_s)

    def arm_deadline(self, link: ReplicaLink, loop: asyncio.AbstractEventLoop) -> None:
        """Start the timer that takes ``link`` out of rotation if its batch never returns."""
        if link.deadline is not None:
            link.deadline.cancel()
        link.deadline = loop.call_later(
            self.batch_deadline_s(), self.batch_overdue, link, link.batch_id
        )

    def batch_overdue(self, link: ReplicaLink, batch_id: int) -> None:
        """``link`` did not answer batch ``batch_id`` in time: default its queries, drop it."""
        link.deadline = None
        items = link.in_flight
        if items is None or link.batch_id != batch_id or link.disconnected_at is not None:
            return
        waited = time.monotonic() - link.sent_at
        reason = (
            f"no answer to a batch of {len(items)} within {waited:.1f} s (limit "
            f"{self.batch_deadline_s():g} s: --batch-timeout, at least twice the SLO)"
        )
        log.warning(
            "replica %s of %s: %s; taking it out of rotation and closing its connection",
            link.replica_id,
            self.name,
            reason,
        )
        link.in_flight = None
        for item in items:
            item.default(
                f"Replica {link.replica_id} of model {self.name} gave {reason}; it was taken "
                "out of rotation",
                "replica_timeout",
            )
        link.drop_reason = reason
        self.metrics.child("evictions", *self.key).inc()
        link.close()

    def attach(self, link: ReplicaLink) -> None:
        """Start sending batches to a newly registered replica."""
        link.controller.retarget(self.slo_s)
        self.replicas[link.replica_id] = link
        self.idle.append(link)
        self.metrics.child("replicas", *self.key).set(len(self.replicas))
        self.dispatch()

    def detach(self, link: ReplicaLink) -> None:
        """Forget a replica that went away; its unfinished batch goes back to the queue."""
        if self.replicas.get(link.replica_id) is link:
            del self.replicas[link.replica_id]
        with contextlib.suppress(ValueError):
            self.idle.remove(link)
        self.metrics.child("replicas", *self.key).set(len(self.replicas))
        if link.deadline is not None:
            link.deadline.cancel()
            link.deadline = None
        if link.in_flight:
            self.pending.extendleft(reversed(link.in_flight))
            link.in_flight = None
        if not self.replicas:
            self.fail_all(
                f"No connected replica of model {self.key[0]}:{self.key[1]} to answer the query",
                "no_replica",
            )
        else:
            self.dispatch()

    def fail_all(self, explanation: str, reason: str) -> None:
        """Answer every pending query with the default output."""
        while self.pending:
            self.pending.popleft().default(explanation, reason)

    def on_result(self, link: ReplicaLink, result: BatchResult) -> None:
        """Deliver a replica's ``RESULT`` and give the replica its next batch."""
        items = link.in_flight
        if items is None or result.batch_id != link.batch_id:
            log.warning("replica %s sent a result for no batch in flight", link.replica_id)
            return
        link.in_flight = None
        if link.deadline is not None:
            link.deadline.cancel()
            link.deadline = None
        latency = time.monotonic() - link.sent_at
        size = len(items)
        link.controller.observe(size, latency)
        if link.avg_latency is None:
            link.avg_latency = latency
        else:
            link.avg_latency += LATENCY_EWMA_WEIGHT * (latency - link.avg_latency)
        link.batches_served += 1
        labels = (*self.key, link.replica_id)
        self.metrics.child("batch_size", *labels).observe(size)
        self.metrics.child("batch_latency", *labels).observe(latency)
        failed = 0
        if result.error is None and not result.errors:
            outputs = result.outputs or []
            for i, item in enumerate(items):
                if i < len(outputs):
                    item.resolve(outputs[i])
                else:
                    failed += 1
                    item.default("The replica returned fewer outputs than inputs", "model_error")
        else:
            for i, item in enumerate(items):
                ok, value = result.outcome(i)
                if ok:
                    item.resolve(value)
                else:
                    failed += 1
                    item.default(f"The model failed on this query: {value}", "model_error")
        link.queries_served += size - failed
        link.failed_queries += failed
        self.metrics.child("replica_queries", *labels).inc(size - failed)
        if link.disconnected_at is None:
            self.idle.append(link)
            if self.pending:
                self.dispatch()


@dataclass
class Route:
    """Where an app's queries go right now, or why they cannot go anywhere."""

    queue: ModelQueue | None
    explanation: str | None = None
    reason: str | None = None


class Router:
    """All model queues and replicas of one frontend."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        max_queue: int = DEFAULT_MAX_QUEUE,
        batch_timeout_s: float = DEFAULT_BATCH_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.max_queue = max_queue
        self.batch_timeout_s = batch_timeout_s
        self.queues: dict[ModelKey, ModelQueue] = {}
        self.departed: dict[tuple[str, str, str], ReplicaLink] = {}

    def queue(self, key: ModelKey) -> ModelQueue:
        """The queue of model version ``key`` (created on first use)."""
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = ModelQueue(
                key, self.metrics, self.max_queue, self.batch_timeout_s
            )
            q.slo_s = self.slo_for(key[0])
        return q

    def slo_for(self, model_name: str) -> float:
        """The tightest SLO among the apps linked to ``model_name`` (0.1 s if none)."""
        slos = [a.slo_s for a in self.store.apps_linked_to(model_name)]
        return min(slos) if slos else 0.1

    def refresh_slos(self) -> None:
        """Re-aim every replica's batching controller after apps or links changed."""
        for key, q in self.queues.items():
            q.slo_s = self.slo_for(key[0])
            for link in q.replicas.values():
                link.controller.retarget(q.slo_s)

    def route(self, app: App) -> Route:
        """Find the queue that serves ``app`` now: its linked model's current version."""
        model = app.linked_model
        if model is None:
            return Route(None, f"No model is linked to application {app.name}", "no_model")
        version = self.store.current_versions.get(model)
        if version is None:
            return Route(None, f"Model {model} has no current version", "no_model")
        q = self.queues.get((model, version))
        if q is None or not q.replicas:
            return Route(
                None,
                f"No connected replica of model {model}:{version} to answer the query",
                "no_replica",
            )
        return Route(q)

    def check_hello(self, hello: Mapping[str, str], nonce: bytes) -> tuple[str, str] | None:
        """Why a replica may not register, as ``(reason, cause)`` (see
        :data:`~clipper_deploy.frontend.replica_server.REFUSAL_REASONS`), or ``None`` if it
        may: its model version is registered with this input type, its proof matches the key
        of its replica id over ``nonce``, and no replica with that id is connected."""
        name, version, rid = hello["model_name"], hello["model_version"], hello["replica_id"]
        model = self.store.models.get((name, version))
        if model is None:
            return (
                "unknown_model",
                f"model {name}:{version} is not registered with this frontend (deploy it with "
                "clipper-deploy; check CLIPPER_MODEL_NAME and CLIPPER_MODEL_VERSION)",
            )
        if model.input_type != hello["input_type"]:
            return (
                "input_type",
                f"model {name} is registered with {model.input_type} input, "
                f"but this replica serves {hello['input_type']} input",
            )
        if not hello.get("proof"):
            return (
                "no_proof",
                "the replica proved no key (no readable key file at CLIPPER_REPLICA_KEY_FILE); "
                "deploy it with clipper-deploy, which writes each replica's key",
            )
        secret = self.store.secrets.get((name, version))
        if secret is None or not proof_matches(secret, nonce, name, version, rid, hello["proof"]):
            return (
                "bad_proof",
                f"the proof does not match the key of replica {rid} of {name}:{version} (a key "
                "of another version, replica id or frontend state); deploy it again with "
                "clipper-deploy",
            )
        q = self.queues.get((name, version))
        live = q.replicas.get(rid) if q is not None else None
        if live is not None:
            return (
                "duplicate_id",
                f"replica {rid} of {name}:{version} is already connected (from {live.peer}); "
                "the connected one keeps serving, and this one may register once it is gone",
            )
        return None

    def attach(self, link: ReplicaLink) -> None:
        """Register a replica (:meth:`check_hello` made sure its id is not connected)."""
        q = self.queue(link.key)
        if link.replica_id in q.replicas:
            raise ValueError(f"replica {link.replica_id} is already connected")
        self.departed.pop((*link.key, link.replica_id), None)
        q.attach(link)

    def detach(self, link: ReplicaLink) -> None:
        """Forget a replica whose connection ended."""
        if link.disconnected_at is None:
            link.disconnected_at = time.time()
        q = self.queues.get(link.key)
        if q is not None and q.replicas.get(link.replica_id) is link:
            q.detach(link)
            self.departed[(*link.key, link.replica_id)] = link

    def links(self) -> list[ReplicaLink]:
        """Every connected replica."""
        return [link for q in self.queues.values() for link in q.replicas.values()]

    def containers(self) -> list[dict[str, Any]]:
        """``get_all_containers``: connected replicas, then recently departed ones."""
        now = time.time()
        for k, link in list(self.departed.items()):
            if link.disconnected_at is not None and now - link.disconnected_at > DEPARTED_KEEP_S:
                del self.departed[k]
        current = self.store.current_versions
        out = [link.describe(current.get(link.model_name)) for link in self.links()]
        out += [link.describe(current.get(link.model_name)) for link in self.departed.values()]
        return out

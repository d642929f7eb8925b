"""Dispatch, load balancing and failure handling of model queues, with fake replicas."""

from __future__ import annotations

import asyncio

import pytest

from clipper_deploy.frontend.batching import AIMDController
from clipper_deploy.frontend.metrics import Metrics
from clipper_deploy.frontend.protocol import BatchResult
from clipper_deploy.frontend.router import ModelQueue, Pending, ReplicaLink


def link(replica_id: str, batch_size: int = 8) -> ReplicaLink:
    sent: list[bytes] = []
    r = ReplicaLink(
        "m",
        "1",
        "doubles",
        replica_id,
        "peer",
        sent.append,
        lambda: None,
        AIMDController(0.04, initial=batch_size),
    )
    r.sent = sent  # type: ignore[attr-defined]
    return r


def answer(queue: ModelQueue, r: ReplicaLink) -> None:
    n = len(r.in_flight or [])
    queue.on_result(r, BatchResult(r.batch_id, [r.replica_id] * n, {}, None))


@pytest.fixture
def queue() -> ModelQueue:
    return ModelQueue(("m", "1"), Metrics())


_LOOP: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True, scope="module")
def event_loop_for_futures():
    """Futures need a loop; a fresh one, whatever earlier tests did to the default."""
    loop = asyncio.new_event_loop()
    _LOOP.append(loop)
    yield loop
    _LOOP.remove(loop)
    loop.close()


def submit(queue: ModelQueue, n: int) -> list[Pending]:
    loop = _LOOP[-1]
    items = [Pending([1.0], loop.create_future()) for _ in range(n)]
    for p in items:
        queue.submit(p)
    return items


class TestDispatch:
    def test_an_idle_replica_gets_a_query_at_once(self, queue):
        r = link("a")
        queue.attach(r)
        (p,) = submit(queue, 1)
        assert len(r.sent) == 1 and r.in_flight == [p]

    def test_queries_arriving_meanwhile_ride_in_the_next_batch(self, queue):
        r = link("a", batch_size=5)
        queue.attach(r)
        items = submit(queue, 8)
        answer(queue, r)
        assert r.in_flight == items[1:6]
        assert items[0].future.result() == (False, "a", None, None)

    def test_spreads_over_idle_replicas(self, queue):
        a, b = link("a", 1), link("b", 1)
        queue.attach(a)
        queue.attach(b)
        submit(queue, 2)
        assert len(a.sent) == 1 and len(b.sent) == 1

    def test_a_lost_replicas_batch_goes_to_another(self, queue):
        a, b = link("a", 4), link("b", 4)
        queue.attach(a)
        queue.attach(b)
        items = submit(queue, 2)  # one to a, one to b
        submit(queue, 2)
        queue.detach(a)
        answer(queue, b)
        assert items[1].future.result()[1] == "b"
        assert b.in_flight and items[0] in b.in_flight

    def test_losing_the_last_replica_answers_default(self, queue):
        a = link("a", 1)
        queue.attach(a)
        items = submit(queue, 3)
        queue.detach(a)
        for p in items:
            is_default, _, explanation, reason = p.future.result()
            assert is_default and reason == "no_replica" and "No connected replica" in explanation

    def test_a_failed_query_answers_default_with_the_error(self, queue):
        a = link("a")
        queue.attach(a)
        (p,) = submit(queue, 1)
        queue.on_result(a, BatchResult(a.batch_id, None, {}, "boom"))
        assert p.future.result() == (
            True,
            None,
            "The model failed on this query: boom",
            "model_error",
        )


class TestAdmission:
    def test_a_full_queue_refuses(self):
        q = ModelQueue(("m", "1"), Metrics(), max_queue=3)
        submit(q, 3)
        explanation, reason = q.refuse(1)
        assert reason == "queue_full" and "--max-queue" in explanation
        assert q.refuse(0) is None

    def test_answered_queries_free_their_place(self):
        q = ModelQueue(("m", "1"), Metrics(), max_queue=2)
        items = submit(q, 2)
        for p in items:
            p.expire()
        assert q.refuse(2) is None

    def test_refuses_when_the_expected_wait_exceeds_the_slo(self):
        q = ModelQueue(("m", "1"), Metrics())
        q.slo_s = 0.1
        r = link("a", batch_size=10)
        q.attach(r)
        submit(q, 1)
        r.sent_at -= 0.02  # the batch took 20 ms: about 500 queries per second
        answer(q, r)
        assert r.avg_latency and r.avg_latency >= 0.02
        assert q.refuse(1000) is None  # an idle replica takes the next queries at once
        submit(q, 1)  # now in flight
        submit(q, 28)  # waiting: 29 / 500 s + 2 x 20 ms = 98 ms, within 100 ms
        assert q.refuse(1) is None
        submit(q, 2)  # 31 / 500 s + 40 ms = 102 ms
        explanation, reason = q.refuse(1)
        assert reason == "overloaded" and "100 ms latency SLO" in explanation

    def test_a_large_input_batch_is_weighed_even_with_nothing_waiting(self):
        q = ModelQueue(("m", "1"), Metrics())
        q.slo_s = 0.1
        r = link("a", batch_size=10)
        q.attach(r)
        submit(q, 1)
        r.sent_at -= 0.02
        answer(q, r)
        submit(q, 1)  # in flight; nothing waits
        assert q.refuse(1) is None
        assert q.refuse(40)[1] == "overloaded"  # 40 / 500 s + 40 ms = 120 ms

    def test_without_figures_yet_only_the_cap_applies(self):
        q = ModelQueue(("m", "1"), Metrics(), max_queue=100)
        r = link("a", batch_size=1)
        q.attach(r)
        submit(q, 99)  # one in flight, 98 waiting
        assert q.refuse(2) is None
        assert q.refuse(3)[1] == "queue_full"


class TestBatchDeadline:
    def test_an_overdue_batch_defaults_and_drops_the_replica(self, queue):
        closed = []
        a = link("a")
        a.close = lambda: closed.append("a")
        queue.attach(a)
        (p,) = submit(queue, 1)
        assert a.deadline is not None
        queue.batch_overdue(a, a.batch_id)
        is_default, _, explanation, reason = p.future.result()
        assert is_default and reason == "replica_timeout"
        assert "taken out of rotation" in explanation
        assert closed == ["a"] and a.in_flight is None and "no answer" in a.drop_reason

    def test_an_answered_batch_cancels_its_deadline(self, queue):
        a = link("a")
        queue.attach(a)
        submit(queue, 1)
        timer = a.deadline
        answer(queue, a)
        assert a.deadline is None and timer.cancelled()

    def test_deadline_is_at_least_twice_the_slo(self):
        q = ModelQueue(("m", "1"), Metrics(), batch_timeout_s=1.0)
        q.slo_s = 3.0
        assert q.batch_deadline_s() == 6.0


class TestPacking:
    def test_a_value_that_cannot_be_packed_fails_alone_and_keeps_the_replica(self, queue):
        closed = []
        a = link("a")
        a.close = lambda: closed.append("a")
        queue.attach(a)
        loop = _LOOP[-1]
        bad = Pending([10**400], loop.create_future())  # validation would refuse it
        good = Pending([1.0], loop.create_future())
        queue.submit_many([bad, good])
        assert bad.future.result()[3] == "pack"
        assert a.in_flight == [good] and closed == []

"""A bounded, steady-rate query load for rollout tests and benchmarks.

``SteadyLoad(url, body, rate=50, max_seconds=60)`` sends ``POST url`` with ``body`` at a
fixed rate from a few threads until stopped or ``max_seconds`` pass (never longer), and
records each answer's time, latency, output and whether it failed or was a default output::

    with SteadyLoad(f"{query_url}/example/predict", {"input": [1.0, 2.0]}, rate=50) as load:
        ...  # roll out
    assert load.failed == [] and load.defaults == []
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    """One query: when it was sent (monotonic s), its latency (s), and what came back."""

    sent: float
    latency: float
    status: int
    output: Any = None
    default: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and not self.default


class SteadyLoad:
    """Send queries at ``rate`` per second for at most ``max_seconds`` (bounded in time and
    count); a context manager that starts on entry and stops on exit."""

    def __init__(
        self,
        url: str,
        body: Any,
        *,
        rate: float = 50.0,
        threads: int = 4,
        max_seconds: float = 120.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.body = json.dumps(body).encode()
        self.interval = 1.0 / rate
        self.max_requests = int(rate * max_seconds) + 1
        self.deadline = time.monotonic() + max_seconds
        self.timeout = timeout
        self.answers: list[Answer] = []
        self._next = time.monotonic()
        self._sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> SteadyLoad:
        self._next = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _slot(self) -> float | None:
        """The next send time, or None when the load is over."""
        with self._lock:
            if self._stop.is_set() or self._sent >= self.max_requests:
                return None
            slot = max(self._next, time.monotonic() - 1.0)  # no burst after a stall
            self._next = slot + self.interval
            self._sent += 1
        if slot > self.deadline:
            return None
        return slot

    def _run(self) -> None:
        while (slot := self._slot()) is not None:
            delay = slot - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            self._record(self._query())

    def _query(self) -> Answer:
        sent = time.monotonic()
        request = urllib.request.Request(
            self.url, data=self.body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                doc = json.loads(response.read())
                status = response.status
        except urllib.error.HTTPError as exc:
            return Answer(sent, time.monotonic() - sent, exc.code, error=exc.read().decode())
        except (OSError, ValueError) as exc:
            return Answer(sent, time.monotonic() - sent, 0, error=f"{type(exc).__name__}: {exc}")
        return Answer(
            sent,
            time.monotonic() - sent,
            status,
            output=doc.get("output"),
            default=bool(doc.get("default")),
            error=None if status == 200 else json.dumps(doc),
        )

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    # ------------------------------------------------------------------ results

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.snapshot() if a.status != 200 or a.error]

    @property
    def defaults(self) -> list[Answer]:
        return [a for a in self.snapshot() if a.status == 200 and a.default]

    def outputs(self) -> list[Any]:
        return [a.output for a in self.snapshot() if a.ok]

    def between(self, start: float, end: float) -> list[Answer]:
        """Answers to queries sent in ``[start, end)`` (monotonic seconds)."""
        return [a for a in self.snapshot() if start <= a.sent < end]


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``values`` (nearest rank); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")

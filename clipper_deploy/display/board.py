"""The state a progress view shows, folded from progress events (pure, thread-safe).

A :class:`Board` keeps, for the running operation: its phases with their times, the current
rollout batch, and per host the step it is on (since when), the bytes of its transfer and their
rate, the build's step and last output line, and each replica's state with its latest log line.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from clipper_deploy.orchestration.progress import (
    BuildOutput,
    Event,
    OperationFinished,
    OperationStarted,
    PhaseFinished,
    PhaseStarted,
    ReplicaState,
    RolloutBatch,
    Transfer,
)


@dataclass
class PhaseTime:
    """One phase: when it started (wall clock), its seconds once over, whether it succeeded."""

    name: str
    started: float
    seconds: float | None = None
    ok: bool = True


@dataclass
class TransferState:
    what: str
    sent: int
    total: int
    first_at: float
    first_sent: int
    at: float
    via: str | None = None

    @property
    def rate(self) -> float | None:
        """Bytes per second since the first report (None before a second one)."""
        elapsed = self.at - self.first_at
        return (self.sent - self.first_sent) / elapsed if elapsed > 0 else None


@dataclass
class HostState:
    """What one host is doing."""

    name: str
    step: PhaseTime | None = None
    subject: str = ""
    transfer: TransferState | None = None
    build_step: str = ""
    build_line: str = ""
    replicas: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Board:
    """Everything a view shows of one operation; :meth:`apply` folds in an event."""

    action: str = ""
    subject: str = ""
    started: float | None = None
    seconds: float | None = None
    ok: bool = True
    phases: list[PhaseTime] = field(default_factory=list)
    batch: RolloutBatch | None = None
    hosts: dict[str, HostState] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def host(self, name: str) -> HostState:
        if name not in self.hosts:
            self.hosts[name] = HostState(name)
        return self.hosts[name]

    def apply(self, event: Event) -> None:
        with self.lock:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, OperationStarted):
            if self.started is None:  # an operation inside another keeps the outer's title
                self.action, self.subject, self.started = event.action, event.subject, event.at
        elif isinstance(event, OperationFinished):
            if event.action == self.action and event.subject == self.subject:
                self.seconds, self.ok = event.seconds, event.ok
        elif isinstance(event, PhaseStarted):
            if event.host is None:
                self.phases.append(PhaseTime(event.phase, event.at))
            else:
                host = self.host(event.host)
                host.step, host.subject = PhaseTime(event.phase, event.at), event.subject
                if event.phase not in ("ship-base", "upload"):
                    host.transfer = None
        elif isinstance(event, PhaseFinished):
            if event.host is None:
                running = [p for p in self.phases if p.name == event.phase and p.seconds is None]
                timed = running[-1] if running else None
                if timed is not None:
                    timed.seconds, timed.ok = event.seconds, event.ok
            else:
                step = self.host(event.host).step
                if step is not None and step.name == event.phase:
                    step.seconds, step.ok = event.seconds, event.ok
        elif isinstance(event, Transfer):
            host = self.host(event.host)
            old = host.transfer
            if old is None or old.what != event.what or event.sent < old.sent:
                host.transfer = TransferState(
                    event.what, event.sent, event.total, event.at, event.sent, event.at, event.via
                )
            else:
                old.sent, old.total, old.at = event.sent, event.total, event.at
        elif isinstance(event, BuildOutput):
            host = self.host(event.host)
            host.build_step, host.build_line = event.step, event.line
        elif isinstance(event, ReplicaState):
            self.host(event.host).replicas[event.container] = (event.state, event.line)
        elif isinstance(event, RolloutBatch):
            self.batch = event

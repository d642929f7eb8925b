"""Progress events: what a long operation is doing, as data, for whoever shows it.

The executor (:mod:`.apply`), the readiness wait, the rollout loop and the facade emit
these events to one sink, a plain ``Callable[[Event], None]`` (:data:`Emit`); the views in
:mod:`clipper_deploy.display` turn them into a live terminal display or plain timestamped
lines. Emitting is cheap and never fails the operation: a sink that raises is the view's bug,
and :func:`safe` drops its error.

==================  =========================================================================
event               emitted by
==================  =========================================================================
OperationStarted    the facade, when a deploy/rollout/rollback/stop starts (nested ones too)
OperationFinished   ... when it ends (``ok`` False when it raised), with its seconds
PhaseStarted        an operation-wide phase (``host`` None: package, register, hosts, wait,
                    switch, retire) or one host step (``host`` set: a :data:`~.steps.KINDS`)
PhaseFinished       ... its end, with seconds and whether it succeeded
Transfer            bytes sent of ``total`` to ``host`` (base image, bundle); ``via`` names
                    the host it came from when not the client (fan-out)
BuildOutput         a line of ``docker build`` on ``host``; ``step`` is the current step
                    (``3/7 RUN ...``)
ReplicaState        a replica's state: starting -> loading -> serving (or crashed), with
                    its container's latest log line
RolloutBatch        a rollout batch begins: ``index`` of ``count``, its hosts
==================  =========================================================================

Other parts plug in by emitting these (a fan-out sends ``Transfer(host, what, sent, total,
via=source)``; a replica handshake can report ``ReplicaState(..., state="authenticating")``:
views show any state word as it is).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

REPLICA_STATES = ("starting", "loading", "serving", "crashed")
"""The replica states the deploy itself reports, in order (views accept any word)."""


@dataclass(frozen=True)
class Event:
    """Base of every event; ``at`` is the wall-clock time it happened (``time.time()``)."""

    at: float = field(default_factory=time.time, kw_only=True, compare=False)


@dataclass(frozen=True)
class OperationStarted(Event):
    action: str
    subject: str


@dataclass(frozen=True)
class OperationFinished(Event):
    action: str
    subject: str
    ok: bool
    seconds: float


@dataclass(frozen=True)
class PhaseStarted(Event):
    phase: str
    host: str | None = None
    subject: str = ""


@dataclass(frozen=True)
class PhaseFinished(Event):
    phase: str
    host: str | None = None
    seconds: float = 0.0
    ok: bool = True


@dataclass(frozen=True)
class Transfer(Event):
    host: str
    what: str
    sent: int
    total: int
    via: str | None = None


@dataclass(frozen=True)
class BuildOutput(Event):
    host: str
    step: str
    line: str


@dataclass(frozen=True)
class ReplicaState(Event):
    host: str
    container: str
    state: str
    line: str = ""


@dataclass(frozen=True)
class RolloutBatch(Event):
    index: int
    count: int
    hosts: tuple[str, ...]


Emit = Callable[[Event], None]
"""Where events go."""


def ignore(event: Event) -> None:
    """The sink of a library user who asked for no progress view."""


def safe(emit: Emit) -> Emit:
    """``emit`` that never raises into the operation."""

    def guarded(event: Event) -> None:
        with contextlib.suppress(Exception):
            emit(event)

    return guarded


@contextlib.contextmanager
def operation(emit: Emit, action: str, subject: str) -> Iterator[None]:
    """Emit :class:`OperationStarted`, then :class:`OperationFinished` when the block ends."""
    started = time.monotonic()
    emit(OperationStarted(action, subject))
    ok = False
    try:
        yield
        ok = True
    finally:
        emit(OperationFinished(action, subject, ok, time.monotonic() - started))


@contextlib.contextmanager
def phase(emit: Emit, name: str, host: str | None = None, subject: str = "") -> Iterator[None]:
    """Emit :class:`PhaseStarted`, then :class:`PhaseFinished` (``ok`` False if it raised)."""
    started = time.monotonic()
    emit(PhaseStarted(name, host, subject))
    ok = False
    try:
        yield
        ok = True
    finally:
        emit(PhaseFinished(name, host, time.monotonic() - started, ok))


class TransferMeter:
    """A ``(sent, total)`` callback for a transfer to ``host`` that emits :class:`Transfer`
    at most every ``interval`` seconds, and always the first and the last (sent == total)."""

    def __init__(
        self, emit: Emit, host: str, what: str, *, via: str | None = None, interval: float = 0.2
    ) -> None:
        self.emit, self.host, self.what, self.via = emit, host, what, via
        self.interval = interval
        self._last = -1.0

    def __call__(self, sent: int, total: int) -> None:
        now = time.monotonic()
        if sent < total and self._last >= 0 and now - self._last < self.interval:
            return
        self._last = now
        self.emit(Transfer(self.host, self.what, sent, total, self.via))


_CLASSIC_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")
_BUILDKIT_STEP = re.compile(r"^#\d+ \[(?:[\w.-]+ )?(\d+/\d+)\] (.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def build_step(line: str) -> str | None:
    """``3/7 RUN ...`` when ``line`` starts a build step (the classic builder's ``Step 3/7 :
    RUN ...`` or BuildKit's plain ``#8 [3/7] RUN ...``), else None."""
    match = _CLASSIC_STEP.match(line) or _BUILDKIT_STEP.match(line)
    return f"{match.group(1)} {match.group(2).strip()}" if match else None


BUILDER_NOTICE = (
    "DEPRECATED: The legacy builder is deprecated",
    "Install the buildx component to build images with BuildKit",
    "https://docs.docker.com/go/buildx/",
)
"""Lines Docker's classic builder prints on every build (not the build's own output)."""


def builder_notice(line: str) -> bool:
    """True for a line of Docker's notice that the classic builder is deprecated."""
    return line.strip().startswith(BUILDER_NOTICE)


def clean_line(text: str) -> str:
    """``text`` without colour codes or control characters, stripped."""
    return _ANSI.sub("", text).strip()


class BuildWatcher:
    """A text stream for ``docker build``'s output (Invoke's ``out_stream``) that emits a
    :class:`BuildOutput` for each complete non-blank line, with the step it belongs to."""

    def __init__(self, emit: Emit, host: str) -> None:
        self.emit, self.host = emit, host
        self.step = ""
        self._buffer = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text.replace("\r", "\n")
            *lines, self._buffer = self._buffer.split("\n")
            for raw in lines:
                line = clean_line(raw)
                if not line or builder_notice(line):
                    continue
                self.step = build_step(line) or self.step
                self.emit(BuildOutput(self.host, self.step, line))
        return len(text)

    def flush(self) -> None:
        pass


__all__ = [
    "REPLICA_STATES",
    "BuildOutput",
    "BuildWatcher",
    "Emit",
    "Event",
    "OperationFinished",
    "OperationStarted",
    "PhaseFinished",
    "PhaseStarted",
    "ReplicaState",
    "RolloutBatch",
    "Transfer",
    "TransferMeter",
    "build_step",
    "builder_notice",
    "clean_line",
    "ignore",
    "operation",
    "phase",
    "safe",
]

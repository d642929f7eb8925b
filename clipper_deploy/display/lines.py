"""The line view: progress events and lines as plain timestamped text, for CI, pipes and logs.

::

    11:02:03 deploy example_model:1: started
    11:02:03 package: started
    11:02:06 package: 3.1 s
    11:02:06 [h1] ship-base clipper-deploy/base:bookworm-...
    11:02:07 [h1] base image: 12.0 of 168.0 MiB (7%, 9.1 MiB/s)
    11:02:12 [h1] build: step 2/3 RUN tar -xzf ...
    11:02:14 [h1] cd-example_model-1-0 loading: Loading provided Python prediction function

Nothing but printable text and newlines is written: no colour codes, no carriage returns, no
cursor movement. A transfer is reported at most every :data:`TRANSFER_EVERY` seconds (and when
it ends), a build once per step (cut at :data:`STEP_CHARS`), a replica when its state or log
line changes; a host step's start, and its end when it failed.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import TextIO

from clipper_deploy.orchestration.progress import (
    BuildOutput,
    Event,
    OperationFinished,
    OperationStarted,
    PhaseFinished,
    PhaseStarted,
    ReplicaState,
    Transfer,
)

TRANSFER_EVERY = 5.0
"""Seconds between two lines about the same transfer."""
LONG_STEPS = ("ship-base", "upload", "build", "load", "wait")
"""Host steps whose start and end get a line (the others are said by the progress lines)."""
STEP_CHARS = 120
"""Longest build step shown (a ``RUN`` line can be a screenful)."""
SAID_STATES = ("starting", "serving")
"""Replica states the progress lines already say (``started X``, ``X serving``)."""

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MiB = 2**20


def printable(text: str) -> str:
    """``text`` without control characters (escape sequences, carriage returns, tabs...)."""
    return _CONTROL.sub(" ", _ESCAPE.sub("", text))


def shorten(text: str, most: int = STEP_CHARS) -> str:
    """``text`` cut to ``most`` characters with ``…``."""
    return text if len(text) <= most else text[: most - 1] + "…"


def stamp(at: float) -> str:
    """The local time of day, ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(at))


class LineView:
    """A progress view that writes one timestamped line per event worth a line to
    ``stream`` (default standard output); :meth:`say` writes a progress line the same way."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self._transfers: dict[tuple[str, str], tuple[float, int, float]] = {}
        self._steps: dict[str, str] = {}
        self._replicas: dict[tuple[str, str], tuple[str, str]] = {}

    def say(self, text: str) -> None:
        self._write(time.time(), text)

    def __call__(self, event: Event) -> None:
        with self._lock:
            line = self.line(event)
        if line is not None:
            self._write(event.at, line)

    def line(self, event: Event) -> str | None:
        """The line for ``event``, or None when it is not worth one (see the module)."""
        if isinstance(event, OperationStarted):
            return f"{event.action} {event.subject}: started"
        if isinstance(event, OperationFinished):
            how = "done in" if event.ok else "failed after"
            return f"{event.action} {event.subject}: {how} {event.seconds:.1f} s"
        if isinstance(event, PhaseStarted):
            if event.host is None:
                return f"{event.phase}: started"
            if event.phase in LONG_STEPS:
                return f"[{event.host}] {event.phase} {event.subject}".rstrip()
            return None
        if isinstance(event, PhaseFinished):
            how = "" if event.ok else "failed after "
            if event.host is None:
                return f"{event.phase}: {how}{event.seconds:.1f} s"
            if not event.ok:  # a success is said by the progress lines (built in, Copied)
                return f"[{event.host}] {event.phase}: {how}{event.seconds:.1f} s"
            return None
        if isinstance(event, Transfer):
            return self._transfer_line(event)
        if isinstance(event, BuildOutput):
            if not event.step or self._steps.get(event.host) == event.step:
                return None
            self._steps[event.host] = event.step
            return f"[{event.host}] build: step {shorten(event.step)}"
        if isinstance(event, ReplicaState):
            key = (event.host, event.container)
            if self._replicas.get(key) == (event.state, event.line):
                return None
            self._replicas[key] = (event.state, event.line)
            if event.state in SAID_STATES:
                return None
            said = f": {event.line}" if event.line else ""
            return f"[{event.host}] {event.container} {event.state}{said}"
        return None

    def _transfer_line(self, event: Transfer) -> str | None:
        key = (event.host, event.what)
        first = self._transfers.get(key)
        if first is None or event.sent < first[1]:
            self._transfers[key] = (event.at, event.sent, event.at)
            first = self._transfers[key]
        elif event.sent < event.total and event.at - first[2] < TRANSFER_EVERY:
            return None
        else:
            self._transfers[key] = (first[0], first[1], event.at)
        elapsed = event.at - first[0]
        rate = f", {(event.sent - first[1]) / elapsed / MiB:.1f} MiB/s" if elapsed > 0 else ""
        percent = 100 * event.sent // event.total if event.total else 100
        via = f" from {event.via}" if event.via else ""
        return (
            f"[{event.host}] {event.what}{via}: {event.sent / MiB:.1f} of "
            f"{event.total / MiB:.1f} MiB ({percent}%{rate})"
        )

    def _write(self, at: float, text: str) -> None:
        prefix = stamp(at)
        lines = [printable(line).rstrip() for line in str(text).replace("\r\n", "\n").split("\n")]
        with self._lock:
            self.stream.write("".join(f"{prefix} {line}\n" for line in lines))
            self.stream.flush()

"""End the process when one prediction is stuck, so the container's restart policy brings it back.

A prediction function that hangs (an endless loop on one input, a deadlock, a stuck read) keeps
the replica's heartbeat thread alive, so nothing else notices. :class:`Watchdog` is a daemon
thread that checks, a few times per limit, how long the current batch has been running; past
``limit_s`` (``CLIPPER_PREDICT_TIMEOUT_S``, default 15 s) it logs one line and ends the process
with :data:`EXIT_STUCK`. Docker's restart policy (``--restart unless-stopped``) then starts the
container again, which reloads the function and registers anew. The frontend has already taken
the replica out of rotation by then (its own batch deadline, default 5 s).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

EXIT_STUCK = 3
DEFAULT_PREDICT_TIMEOUT_S = 15.0


class Watchdog:
    """Watches the batch in progress; ends the process when it runs past ``limit_s``."""

    def __init__(
        self,
        limit_s: float,
        log: Callable[[str], None],
        exit: Callable[[int], None] = os._exit,
    ) -> None:
        self.limit_s = limit_s
        self.log = log
        self.exit = exit
        self.started: float | None = None
        self.count = 0
        self.thread: threading.Thread | None = None

    def start(self) -> Watchdog:
        """Start watching (no-op when ``limit_s`` is 0: the watchdog is off)."""
        if self.limit_s > 0 and self.thread is None:
            self.thread = threading.Thread(target=self.run, name="watchdog", daemon=True)
            self.thread.start()
        return self

    def begin(self, count: int) -> None:
        """A batch of ``count`` inputs starts now."""
        self.count = count
        self.started = time.monotonic()

    def end(self) -> None:
        """The batch finished (returned or raised)."""
        self.started = None

    def run(self) -> None:
        """Check the running batch every quarter of the limit (at most every second)."""
        every = min(1.0, self.limit_s / 4)
        while True:
            time.sleep(every)
            started = self.started
            if started is None:
                continue
            running = time.monotonic() - started
            if running > self.limit_s:
                self.log(
                    f"Prediction stuck: a batch of {self.count} input(s) has run for "
                    f"{running:.1f} s, over the {self.limit_s:g} s limit "
                    "(CLIPPER_PREDICT_TIMEOUT_S); exiting so that the container restarts"
                )
                self.exit(EXIT_STUCK)
                return

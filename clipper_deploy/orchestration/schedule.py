"""Scheduled redeploys: run a job at each tick of a cron expression, for as long as it takes.

A playbook names a factory and a ``schedule``; a long-lived scheduler redeploys at each
tick::

    schedule: "0 3 * * *"     # every night at 03:00

``schedule`` is a standard five-field cron expression (minute, hour, day of month, month,
day of week; ``*/15``, ``1-5``, ``mon-fri``, ``jan``... as in cron) or one of ``@hourly``,
``@daily``, ``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``, ``@annually``, read by
croniter. Six- and seven-field forms (seconds, years) are refused: tools disagree on where
the seconds go. Ticks are in the time zone of the clock's datetimes (the machine's local
time by default).

How :class:`Scheduler` runs, tick by tick:

* The first run is at the first tick after the scheduler starts, or, when ``last_run`` is
  given (the time of the last run before a restart, e.g. read from the audit log), at the
  first tick after ``last_run``, which is immediately if ticks were missed while it was down.
* **No pile-up.** Ticks missed while the scheduler was down, while the machine slept, or
  while a slow run was still going are not made up one by one: they collapse into a single
  run (started as soon as possible), after which the scheduler waits for the next tick in
  the future. With ``*/5`` and a run from 10:00 to 10:12, the 10:05 and 10:10 ticks are
  skipped (and logged as such) and the next run is at 10:15.
* **Failures do not stop it.** A job that raises is logged with its traceback, passed to
  ``on_error``, and the scheduler waits for the next tick. Only ``KeyboardInterrupt`` /
  ``SystemExit`` (and the like) end it, as does ``max_runs`` or ``stop_event``.
* Every run is logged when it starts and when it ends (result, duration, exception), through
  the ``log`` callable, and returned as a :class:`ScheduledRun` by :meth:`Scheduler.run`.
* Waiting re-reads the clock at least every ``max_sleep`` seconds (60 by default), so a
  clock that jumps (NTP, suspend) is noticed; a ``stop_event`` ends the wait at once.

Everything time-related is injected (``clock``, ``sleep``), so tests run in milliseconds
with a fake clock.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import CroniterBadDateError, CroniterError, croniter

from clipper_deploy.errors import ClipperDeployError

__all__ = [
    "KEPT_RUNS",
    "MAX_COUNTED_TICKS",
    "ScheduleError",
    "ScheduledRun",
    "Scheduler",
    "check_cron",
    "missed_ticks",
    "next_run",
]

_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
_HINT = (
    "use five fields (minute hour day-of-month month day-of-week), e.g. '*/15 * * * *' or "
    "'0 3 * * mon-fri', or one of " + ", ".join(_MACROS)
)
#: Ticks counted at most by :func:`missed_ticks`: counting walks tick by tick (~0.15 ms each),
#: and a scheduler down for a month on ``* * * * *`` missed 43,200.
MAX_COUNTED_TICKS = 100
#: Runs remembered (and returned) by one :meth:`Scheduler.run`.
KEPT_RUNS = 1000

_log = logging.getLogger(__name__)


class ScheduleError(ClipperDeployError, ValueError):
    """A ``schedule`` that is not a usable cron expression; the message names it."""


def check_cron(cron: str) -> str:
    """``cron`` stripped, when croniter accepts it as five fields or a macro.

    Raises :class:`ScheduleError` naming the expression and what is accepted.
    """
    if not isinstance(cron, str) or not cron.strip():
        raise ScheduleError(f"schedule {cron!r} is empty; {_HINT}")
    text = " ".join(cron.split())
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            raise ScheduleError(f"schedule {cron!r} is not a known macro; {_HINT}")
    elif len(text.split()) != 5:
        raise ScheduleError(f"schedule {cron!r} has {len(text.split())} fields, not 5; {_HINT}")
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(
            f"schedule {cron!r} is not a valid cron expression ({exc}); {_HINT}"
        ) from None
    return text


def next_run(cron: str, after: datetime) -> datetime:
    """The first tick of ``cron`` strictly after ``after``, in ``after``'s time zone.

    Raises :class:`ScheduleError` for an invalid expression, or one that never fires
    (``0 0 30 2 *``: February 30th).
    """
    text = check_cron(cron)
    try:
        return croniter(text, after).get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(f"schedule {cron!r} never fires after {after.isoformat()}") from None
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"schedule {cron!r} is not a valid cron expression ({exc})") from None


def missed_ticks(cron: str, after: datetime, until: datetime) -> int:
    """How many ticks of ``cron`` fall in ``(after, until]``, counting at most 100."""
    text = check_cron(cron)
    count = 0
    ticks = croniter(text, after)
    while count < MAX_COUNTED_TICKS:
        try:
            tick = ticks.get_next(datetime)
        except CroniterBadDateError:
            break
        if tick > until:
            break
        count += 1
    return count


@dataclass
class ScheduledRun:
    """One run of a scheduled job.

    ``number`` counts from 1 per :meth:`Scheduler.run`; ``due`` is the tick it ran for,
    ``started`` / ``finished`` the clock's times; ``missed`` how many later ticks passed
    (while waiting to start or while running) and were skipped instead of run (counted up to
    :data:`MAX_COUNTED_TICKS`);
    ``error`` / ``traceback`` are set when the job raised.
    """

    number: int
    due: datetime
    started: datetime
    finished: datetime | None = None
    ok: bool | None = None
    error: BaseException | None = None
    traceback: str | None = None
    missed: int = 0

    @property
    def result(self) -> str:
        """``ok``, ``failed``, or ``running``: the word the audit log uses."""
        return "running" if self.ok is None else ("ok" if self.ok else "failed")

    @property
    def duration(self) -> float | None:
        """Seconds the job ran, by the scheduler's clock."""
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


class Scheduler:
    """Runs ``job()`` at each tick of ``cron`` (see the module docs for the rules).

    ``clock`` returns the current time as a datetime (default: local time, time-zone aware);
    ``sleep(seconds)`` waits (default: ``time.sleep``, or ``stop_event.wait`` when
    :meth:`run` gets a stop event, so that stopping is immediate); ``on_error(exc, run)`` is
    called after a failed run; ``log(message)`` receives one line per start, end and skip
    (default: this module's logger, at INFO, and WARNING for failures). ``last_run`` is the
    time of the last run before this scheduler started, to catch up once after downtime.

    Raises :class:`ScheduleError` at construction for an invalid expression.
    """

    def __init__(
        self,
        cron: str,
        job: Callable[[], object],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        sleep: Callable[[float], None] | None = None,
        on_error: Callable[[BaseException, ScheduledRun], None] | None = None,
        log: Callable[[str], None] | None = None,
        last_run: datetime | None = None,
        max_sleep: float = 60.0,
        name: str | None = None,
    ) -> None:
        self.cron = check_cron(cron)
        self.job = job
        self.clock = clock
        self.sleep = sleep
        self.on_error = on_error
        self.log = log
        self.last_run = last_run
        if max_sleep <= 0:
            raise ValueError(f"max_sleep must be positive, not {max_sleep!r}")
        self.max_sleep = max_sleep
        #: How the job is named in log lines.
        self.name = name or getattr(job, "__name__", None) or "job"
        next_run(self.cron, clock())  # fails now for a schedule that never fires

    def run(
        self, max_runs: int | None = None, stop_event: threading.Event | None = None
    ) -> list[ScheduledRun]:
        """Run the job at each tick until ``max_runs`` runs are done or ``stop_event`` is set.

        Without either, runs until interrupted. Returns the runs made, oldest first (the last
        :data:`KEPT_RUNS` of them, so that a scheduler running for years stays small).
        """
        if max_runs is not None and max_runs < 0:
            raise ValueError(f"max_runs must be >= 0, not {max_runs!r}")
        runs: deque[ScheduledRun] = deque(maxlen=KEPT_RUNS)
        count = 0
        due = next_run(self.cron, self.last_run if self.last_run is not None else self.clock())
        self._say(f"{self.name}: schedule {self.cron!r}, first run at {_show(due)}")
        while max_runs is None or count < max_runs:
            if not self._wait_until(due, stop_event):
                self._say(f"{self.name}: scheduler stopped")
                break
            count += 1
            run = self._run_once(count, due)
            runs.append(run)
            self.last_run = run.started
            finished = run.finished or run.started
            # Every tick up to the end of this run is covered by it: wait for a future one.
            due = next_run(self.cron, max(finished, due))
            run.missed = missed_ticks(self.cron, run.due, finished)
            if run.missed:
                many = "at least " if run.missed >= MAX_COUNTED_TICKS else ""
                self._say(
                    f"{self.name}: skipped {many}{run.missed} missed "
                    f"tick{'s' if run.missed != 1 else ''} after {_show(run.due)} "
                    f"(no pile-up); next run at {_show(due)}"
                )
            else:
                self._say(f"{self.name}: next run at {_show(due)}")
        return list(runs)

    def _run_once(self, number: int, due: datetime) -> ScheduledRun:
        run = ScheduledRun(number=number, due=due, started=self.clock())
        late = (run.started - due).total_seconds()
        lateness = f", {late:.0f} s late" if late >= 1 else ""
        self._say(f"{self.name}: run {number} for {_show(due)} started{lateness}")
        try:
            self.job()
        except Exception as exc:
            run.finished, run.ok, run.error = self.clock(), False, exc
            run.traceback = "".join(traceback.format_exception(exc))
            self._say(
                f"{self.name}: run {number} failed after {run.duration:.1f} s: "
                f"{type(exc).__name__}: {exc}\n{run.traceback.rstrip()}",
                failed=True,
            )
            if self.on_error is not None:
                try:
                    self.on_error(exc, run)
                except Exception as hook_exc:
                    self._say(
                        f"{self.name}: on_error raised {type(hook_exc).__name__}: {hook_exc} "
                        "(ignored; the scheduler goes on)",
                        failed=True,
                    )
        else:
            run.finished, run.ok = self.clock(), True
            self._say(f"{self.name}: run {number} finished ok in {run.duration:.1f} s")
        return run

    def _wait_until(self, due: datetime, stop_event: threading.Event | None) -> bool:
        """Wait until the clock reaches ``due``; False if ``stop_event`` was set first."""
        while True:
            if stop_event is not None and stop_event.is_set():
                return False
            remaining = (due - self.clock()).total_seconds()
            if remaining <= 0:
                return True
            pause = min(remaining, self.max_sleep)
            if self.sleep is not None:
                self.sleep(pause)
            elif stop_event is not None:
                stop_event.wait(pause)
            else:
                time.sleep(pause)

    def _say(self, message: str, *, failed: bool = False) -> None:
        if self.log is not None:
            self.log(message)
        elif failed:
            _log.warning("%s", message)
        else:
            _log.info("%s", message)


def _show(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def schedule_redeploys(
    playbook: Any,
    redeploy: Callable[[], Any],
    audit_log: Any,
    *,
    say: Callable[[str], None] = print,
    max_runs: int | None = None,
    stop_event: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> list[ScheduledRun]:
    """Run ``redeploy`` at every tick of ``playbook.schedule`` (cron), until ``stop_event``
    is set or ``max_runs`` ran. A failed run is logged and audited, the current version keeps
    serving, and the next tick runs; ticks missed while down (the last run is read from
    ``audit_log``) give one catch-up run, not a pile."""
    if not playbook.schedule:
        raise ScheduleError(f"{playbook.path}: no `schedule` (a cron expression) to follow")
    last = [e for e in audit_log.read(playbook.model) if e.get("action") == "scheduled-redeploy"]
    last_run = datetime.fromisoformat(last[-1]["time"].replace("Z", "+00:00")) if last else None
    kwargs: dict[str, Any] = {"sleep": sleep}
    if clock is not None:
        kwargs["clock"] = clock
    scheduler = Scheduler(
        playbook.schedule,
        redeploy,
        log=say,
        last_run=last_run,
        name=f"redeploy {playbook.model}",
        **kwargs,
    )
    return scheduler.run(max_runs=max_runs, stop_event=stop_event)

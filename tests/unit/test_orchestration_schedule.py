"""Scheduled runs: cron ticks, failures that do not stop the loop, and no pile-up of missed runs.

Time is a fake clock that only moves when the scheduler sleeps or a job says it took a while,
so hours of schedule run in milliseconds.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from clipper_deploy.orchestration.schedule import (
    MAX_COUNTED_TICKS,
    ScheduledRun,
    ScheduleError,
    Scheduler,
    check_cron,
    missed_ticks,
    next_run,
)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2024, 5, 1, hour, minute, second, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when slept on or advanced."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Recorder:
    """A job that records when it ran and can take time or fail on chosen runs."""

    def __init__(self, clock: FakeClock, takes: timedelta = timedelta(0), fail_on=()):
        self.clock = clock
        self.takes = takes
        self.fail_on = set(fail_on)
        self.started: list[datetime] = []

    def __call__(self) -> None:
        self.started.append(self.clock())
        self.clock.now += self.takes
        if len(self.started) in self.fail_on:
            raise RuntimeError(f"boom {len(self.started)}")


def scheduler(cron: str, clock: FakeClock, job, **kwargs) -> tuple[Scheduler, list[str]]:
    lines: list[str] = []
    return Scheduler(cron, job, clock=clock, sleep=clock.sleep, log=lines.append, **kwargs), lines


class TestNextRun:
    def test_the_first_tick_after_a_time(self):
        assert next_run("*/5 * * * *", at(10, 2)) == at(10, 5)

    def test_strictly_after_a_tick(self):
        assert next_run("*/5 * * * *", at(10, 5)) == at(10, 10)

    def test_keeps_the_time_zone(self):
        paris = timezone(timedelta(hours=2))
        after = datetime(2024, 5, 1, 2, 30, tzinfo=paris)
        assert next_run("0 3 * * *", after) == datetime(2024, 5, 1, 3, 0, tzinfo=paris)

    def test_names_and_macros(self):
        assert next_run("0 9 * * mon-fri", at(10, 0)) == datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
        assert next_run("@hourly", at(10, 2)) == at(11, 0)

    @pytest.mark.parametrize(
        "bad",
        ["61 * * * *", "abc", "* * *", "0 0 * * * *", "0 0 * * * * 2024", "", "   ", "@reboot"],
    )
    def test_invalid_expressions_are_errors_naming_them(self, bad):
        with pytest.raises(ScheduleError) as caught:
            next_run(bad, at(10, 0))
        assert repr(bad) in str(caught.value)
        assert "five fields" in str(caught.value)

    def test_an_expression_that_never_fires_is_an_error(self):
        with pytest.raises(ScheduleError, match=r"'0 0 30 2 \*' never fires"):
            next_run("0 0 30 2 *", at(10, 0))

    def test_check_cron_normalises_spaces(self):
        assert check_cron("  */5   *  * * * ") == "*/5 * * * *"


class TestMissedTicks:
    def test_counts_ticks_in_the_half_open_interval(self):
        assert missed_ticks("*/5 * * * *", at(10, 0), at(10, 15)) == 3
        assert missed_ticks("*/5 * * * *", at(10, 0), at(10, 14)) == 2

    def test_stops_counting_at_the_cap(self):
        assert missed_ticks("* * * * *", at(0, 0), at(23, 0)) == MAX_COUNTED_TICKS


class TestScheduler:
    def test_runs_at_each_tick(self):
        clock = FakeClock(at(10, 0, 30))
        job = Recorder(clock)
        sched, _ = scheduler("*/5 * * * *", clock, job)
        runs = sched.run(max_runs=3)
        assert job.started == [at(10, 5), at(10, 10), at(10, 15)]
        assert [r.due for r in runs] == job.started
        assert [r.result for r in runs] == ["ok", "ok", "ok"]
        assert [r.number for r in runs] == [1, 2, 3]

    def test_sleeps_in_slices_of_at_most_max_sleep(self):
        clock = FakeClock(at(10, 0))
        sched, _ = scheduler("0 * * * *", clock, Recorder(clock), max_sleep=600)
        sched.run(max_runs=1)
        assert clock.sleeps == [600.0] * 6

    def test_max_runs_zero_does_nothing(self):
        clock = FakeClock(at(10, 0))
        job = Recorder(clock)
        sched, _ = scheduler("* * * * *", clock, job)
        assert sched.run(max_runs=0) == []
        assert job.started == [] and clock.sleeps == []

    def test_an_invalid_schedule_fails_at_construction(self):
        with pytest.raises(ScheduleError, match="'99 \\* \\* \\* \\*'"):
            Scheduler("99 * * * *", lambda: None)
        with pytest.raises(ScheduleError, match="never fires"):
            Scheduler("0 0 31 4 *", lambda: None)


class TestFailures:
    def test_a_failed_run_does_not_stop_the_scheduler(self):
        clock = FakeClock(at(10, 0))
        job = Recorder(clock, fail_on={1, 2})
        sched, _ = scheduler("*/5 * * * *", clock, job)
        runs = sched.run(max_runs=3)
        assert [r.result for r in runs] == ["failed", "failed", "ok"]
        assert isinstance(runs[0].error, RuntimeError)
        assert "RuntimeError: boom 1" in (runs[0].traceback or "")

    def test_a_failed_run_is_logged_with_its_traceback(self):
        clock = FakeClock(at(10, 0))
        sched, lines = scheduler("*/5 * * * *", clock, Recorder(clock, fail_on={1}), name="iris")
        sched.run(max_runs=1)
        failure = next(line for line in lines if "failed" in line)
        assert failure.startswith("iris: run 1 failed after 0.0 s: RuntimeError: boom 1")
        assert "Traceback (most recent call last)" in failure

    def test_on_error_gets_the_exception_and_the_run(self):
        clock = FakeClock(at(10, 0))
        seen: list[tuple[BaseException, ScheduledRun]] = []
        sched, _ = scheduler(
            "*/5 * * * *",
            clock,
            Recorder(clock, fail_on={2}),
            on_error=lambda exc, run: seen.append((exc, run)),
        )
        sched.run(max_runs=3)
        assert [(str(exc), run.number) for exc, run in seen] == [("boom 2", 2)]

    def test_an_on_error_hook_that_raises_does_not_stop_the_scheduler(self):
        clock = FakeClock(at(10, 0))

        def bad_hook(exc: BaseException, run: ScheduledRun) -> None:
            raise ValueError("hook broke")

        sched, lines = scheduler(
            "*/5 * * * *", clock, Recorder(clock, fail_on={1}), on_error=bad_hook
        )
        assert len(sched.run(max_runs=2)) == 2
        assert any("on_error raised ValueError: hook broke" in line for line in lines)

    def test_keyboard_interrupt_ends_the_scheduler(self):
        clock = FakeClock(at(10, 0))

        def interrupted() -> None:
            raise KeyboardInterrupt

        sched, _ = scheduler("*/5 * * * *", clock, interrupted)
        with pytest.raises(KeyboardInterrupt):
            sched.run(max_runs=3)


class TestNoPileUp:
    def test_ticks_missed_during_a_slow_run_are_skipped(self):
        clock = FakeClock(at(10, 0, 30))
        job = Recorder(clock, takes=timedelta(minutes=12))  # 10:05 -> 10:17
        sched, lines = scheduler("*/5 * * * *", clock, job)
        runs = sched.run(max_runs=2)
        assert job.started == [at(10, 5), at(10, 20)]
        assert runs[0].missed == 2  # 10:10 and 10:15
        assert "skipped 2 missed ticks after 2024-05-01 10:05:00+00:00 (no pile-up); " in (
            "\n".join(lines)
        )

    def test_a_run_ending_exactly_on_a_tick_skips_that_tick(self):
        clock = FakeClock(at(10, 0))
        job = Recorder(clock, takes=timedelta(minutes=5))
        sched, _ = scheduler("*/5 * * * *", clock, job)
        sched.run(max_runs=2)
        assert job.started == [at(10, 5), at(10, 15)]

    def test_after_downtime_runs_once_then_waits_for_the_next_tick(self):
        clock = FakeClock(at(10, 2))
        job = Recorder(clock, takes=timedelta(seconds=30))
        sched, lines = scheduler("*/5 * * * *", clock, job, last_run=at(8, 0))
        runs = sched.run(max_runs=2)
        assert job.started == [at(10, 2), at(10, 5)]
        assert runs[0].due == at(8, 5)
        assert runs[0].missed == 23  # 08:10 .. 10:00, all folded into one run
        assert lines[1].endswith("started, 7020 s late")

    def test_without_last_run_a_restart_waits_for_the_next_tick(self):
        clock = FakeClock(at(10, 2))
        job = Recorder(clock)
        sched, _ = scheduler("*/5 * * * *", clock, job)
        sched.run(max_runs=1)
        assert job.started == [at(10, 5)]

    def test_a_clock_jump_while_waiting_gives_one_run(self):
        clock = FakeClock(at(10, 0))
        job = Recorder(clock)
        jumped = []

        def suspend_once(seconds: float) -> None:
            if not jumped:
                jumped.append(True)
                clock.advance(hours=1, minutes=1)  # the machine slept
            else:
                clock.sleep(seconds)

        sched = Scheduler("*/5 * * * *", job, clock=clock, sleep=suspend_once, log=lambda _: None)
        runs = sched.run(max_runs=2)
        assert job.started == [at(11, 1), at(11, 5)]
        assert runs[0].missed == 11  # 10:10 .. 11:00

    def test_run_continues_from_the_last_run_when_called_again(self):
        clock = FakeClock(at(10, 0))
        job = Recorder(clock, takes=timedelta(minutes=1))
        sched, _ = scheduler("*/5 * * * *", clock, job)
        sched.run(max_runs=1)
        clock.advance(minutes=30)  # e.g. the caller paused between calls
        sched.run(max_runs=1)
        assert job.started == [at(10, 5), at(10, 36)]


class TestStopping:
    def test_a_set_stop_event_means_no_run(self):
        clock = FakeClock(at(10, 0))
        job = Recorder(clock)
        stop = threading.Event()
        stop.set()
        sched, lines = scheduler("*/5 * * * *", clock, job)
        assert sched.run(stop_event=stop) == []
        assert job.started == [] and lines[-1].endswith("scheduler stopped")

    def test_a_job_can_stop_the_scheduler(self):
        clock = FakeClock(at(10, 0))
        stop = threading.Event()
        job = Recorder(clock)

        def job_then_stop() -> None:
            job()
            if len(job.started) == 2:
                stop.set()

        sched, _ = scheduler("*/5 * * * *", clock, job_then_stop)
        assert len(sched.run(stop_event=stop)) == 2

    def test_the_stop_event_ends_a_real_wait_at_once(self):
        # Real clock and real waiting: the next tick is up to a minute away.
        stop = threading.Event()
        sched = Scheduler("* * * * *", lambda: None, log=lambda _: None)
        threading.Timer(0.05, stop.set).start()
        begin = time.monotonic()
        runs = sched.run(stop_event=stop)
        elapsed = time.monotonic() - begin
        if runs:  # the minute turned during the test
            pytest.skip("a tick fell inside the test")
        assert elapsed < 1.0


class TestLogging:
    def test_each_run_logs_its_start_and_end(self):
        clock = FakeClock(at(10, 0))
        sched, lines = scheduler("*/5 * * * *", clock, Recorder(clock), name="redeploy iris")
        sched.run(max_runs=1)
        assert lines == [
            "redeploy iris: schedule '*/5 * * * *', first run at 2024-05-01 10:05:00+00:00",
            "redeploy iris: run 1 for 2024-05-01 10:05:00+00:00 started",
            "redeploy iris: run 1 finished ok in 0.0 s",
            "redeploy iris: next run at 2024-05-01 10:10:00+00:00",
        ]

    def test_without_a_log_callable_lines_go_to_the_logger(self, caplog):
        clock = FakeClock(at(10, 0))
        sched = Scheduler(
            "*/5 * * * *", Recorder(clock, fail_on={1}), clock=clock, sleep=clock.sleep
        )
        with caplog.at_level(logging.INFO, logger="clipper_deploy.orchestration.schedule"):
            sched.run(max_runs=1)
        levels = {r.levelname for r in caplog.records if "failed" in r.getMessage()}
        assert levels == {"WARNING"}
        assert any("started" in r.getMessage() for r in caplog.records)

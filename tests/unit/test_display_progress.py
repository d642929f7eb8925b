"""Progress events and their two views: the live board (drawn at 80 and 120 columns) and the
plain timestamped lines (no control characters at all)."""

from __future__ import annotations

import io
import re

from rich.console import Console

from clipper_deploy.display import LineView, LiveView, view_for
from clipper_deploy.display.board import Board
from clipper_deploy.display.live import render_board
from clipper_deploy.orchestration.apply import build_failure_tail
from clipper_deploy.orchestration.progress import (
    BuildOutput,
    BuildWatcher,
    OperationFinished,
    OperationStarted,
    PhaseFinished,
    PhaseStarted,
    ReplicaState,
    RolloutBatch,
    Transfer,
    TransferMeter,
    build_step,
    operation,
    phase,
    safe,
)

MiB = 2**20
T0 = 1_764_590_000.0
CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")  # everything but newline


def a_deploy() -> list:
    """The events of a deploy to three hosts, caught mid-way."""
    return [
        OperationStarted("deploy", "example_model:1", at=T0),
        PhaseStarted("package", at=T0),
        PhaseFinished("package", seconds=3.1, at=T0 + 3.1),
        PhaseStarted("prepare", at=T0 + 3.1),
        PhaseStarted("ship-base", "h1", "clipper-deploy/base:bookworm", at=T0 + 3.2),
        Transfer("h1", "base image", 10 * MiB, 168 * MiB, at=T0 + 3.5),
        Transfer("h1", "base image", 70 * MiB, 168 * MiB, at=T0 + 5.5),
        PhaseStarted("build", "h2", "clipper-deploy/example_model:1", at=T0 + 3.2),
        BuildOutput("h2", "2/3 RUN tar -xzf /opt/env.tgz", "Step 2/3 : RUN tar", at=T0 + 4),
        BuildOutput("h2", "2/3 RUN tar -xzf /opt/env.tgz", "---> Running in 0a1b", at=T0 + 4.1),
        PhaseStarted("wait", "h3", at=T0 + 5),
        ReplicaState("h3", "cd-example_model-1-0", "loading", "Loading provided Python prediction"),
        RolloutBatch(2, 3, ("h2",), at=T0 + 5),
    ]


def drawn(events: list, width: int, now: float = T0 + 6) -> str:
    board = Board()
    for event in events:
        board.apply(event)
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render_board(board, now=now))
    return console.export_text()


class TestTheEvents:
    def test_build_steps_are_read_from_both_builders(self):
        assert build_step("Step 3/7 : RUN pip install x") == "3/7 RUN pip install x"
        assert build_step("#8 [3/7] RUN tar -x") == "3/7 RUN tar -x"
        assert build_step("#8 [stage-1 2/4] COPY a b") == "2/4 COPY a b"
        assert build_step(" ---> Running in 1234") is None

    def test_the_build_watcher_gives_each_line_with_its_step(self):
        seen: list = []
        watcher = BuildWatcher(seen.append, "h1")
        watcher.write("Step 1/2 : FROM base\n ---> abc\nStep 2/2 : RUN x")
        watcher.write("\n\x1b[31mcoloured\x1b[0m\r\n")
        assert [(e.step, e.line) for e in seen] == [
            ("1/2 FROM base", "Step 1/2 : FROM base"),
            ("1/2 FROM base", "---> abc"),
            ("2/2 RUN x", "Step 2/2 : RUN x"),
            ("2/2 RUN x", "coloured"),
        ]

    def test_dockers_deprecation_notice_is_not_the_builds_output(self):
        notice = (
            "DEPRECATED: The legacy builder is deprecated and will be removed in a future "
            "release.\n"
            "            Install the buildx component to build images with BuildKit:\n"
            "            https://docs.docker.com/go/buildx/\n"
        )
        seen: list = []
        BuildWatcher(seen.append, "h1").write(notice + "Step 1/1 : RUN exit 3\n")
        assert [e.line for e in seen] == ["Step 1/1 : RUN exit 3"]
        stdout = "Step 1/2 : FROM b\nStep 2/2 : RUN echo broken && exit 3\nbroken\n"
        stderr = (
            notice + "The command '/bin/sh -c echo broken && exit 3' returned a non-zero code: 3"
        )
        assert build_failure_tail(stdout + stderr).splitlines() == [
            "    Step 2/2 : RUN echo broken && exit 3",
            "    broken",
            "    The command '/bin/sh -c echo broken && exit 3' returned a non-zero code: 3",
        ]

    def test_a_transfer_meter_reports_the_first_and_last_and_few_between(self):
        seen: list = []
        meter = TransferMeter(seen.append, "h1", "bundle", interval=60)
        for sent in range(1, 101):
            meter(sent * MiB, 100 * MiB)
        assert [e.sent // MiB for e in seen] == [1, 100]

    def test_operation_and_phase_say_when_they_failed(self):
        seen: list = []
        try:
            with operation(seen.append, "deploy", "m:1"), phase(seen.append, "package"):
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        finished = [e for e in seen if isinstance(e, PhaseFinished | OperationFinished)]
        assert [type(e).__name__ for e in finished] == ["PhaseFinished", "OperationFinished"]
        assert not any(e.ok for e in finished)

    def test_a_broken_view_never_breaks_the_operation(self):
        def broken(event):
            raise ValueError("view bug")

        safe(broken)(PhaseStarted("package"))  # no exception


class TestTheLiveBoard:
    def test_shows_each_hosts_step_bytes_rate_build_step_and_replica(self):
        text = drawn(a_deploy(), 120)
        h1 = next(line for line in text.splitlines() if line.startswith("h1"))
        assert "ship-base" in h1 and "base image 70.0/168.0 MiB" in h1 and "30.0 MiB/s" in h1
        h2 = next(line for line in text.splitlines() if line.startswith("h2"))
        assert "build" in h2 and "2/3 RUN tar -xzf /opt/env.tgz" in h2 and "Running in" in h2
        h3 = next(line for line in text.splitlines() if line.startswith("h3"))
        assert "cd-example_model-1-0 loading: Loading provided Python prediction" in h3
        assert "package 3.1 s" in text and "prepare 2.9 s..." in text
        assert "batch 2/3: h2" in text

    def test_fits_80_columns_cutting_lines_never_wrapping_them(self):
        wide, narrow = drawn(a_deploy(), 120), drawn(a_deploy(), 80)
        assert len(narrow.splitlines()) == len(wide.splitlines())
        assert max(len(line) for line in narrow.splitlines()) <= 80
        h3 = next(line for line in narrow.splitlines() if line.startswith("h3"))
        assert h3.rstrip().endswith("…")

    def test_a_finished_operation_says_how_long_it_took(self):
        events = [*a_deploy(), OperationFinished("deploy", "example_model:1", True, 41.5)]
        assert "deploy example_model:1  41.5 s  done" in drawn(events, 80)

    def test_a_failed_host_step_and_a_crashed_replica_are_shown(self):
        events = [
            OperationStarted("deploy", "m:1", at=T0),
            PhaseStarted("wait", "h1", at=T0),
            ReplicaState("h1", "cd-m-1-0", "crashed", "ZeroDivisionError", at=T0 + 1),
            PhaseFinished("wait", "h1", 1.0, ok=False, at=T0 + 1),
        ]
        h1 = next(line for line in drawn(events, 80).splitlines() if line.startswith("h1"))
        assert "wait" in h1 and "1.0 s" in h1 and "cd-m-1-0 crashed: ZeroDivisionError" in h1

    def test_the_live_view_draws_on_a_terminal_and_stops_when_the_operation_ends(self):
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=80, color_system=None)
        view = LiveView(console)
        for event in a_deploy():
            view(event)
        view.say("[h1] started cd-example_model-1-0")
        view(OperationFinished("deploy", "example_model:1", True, 9.0))
        assert view._live is None
        assert "[h1] started cd-example_model-1-0" in out.getvalue()
        assert "deploy example_model:1" in out.getvalue()


class TestTheLines:
    def lines(self, events: list) -> str:
        out = io.StringIO()
        view = LineView(out)
        for event in events:
            view(event)
        view.say("\x1b[1mPublished\x1b[0m model\r to Clipper\twith a tab")
        return out.getvalue()

    def test_have_no_control_characters_at_all(self):
        text = self.lines(a_deploy())
        assert not CONTROL.search(text.encode())
        assert "\x1b" not in text and "\r" not in text

    def test_are_timestamped_and_say_what_the_board_shows(self):
        text = self.lines(a_deploy())
        lines = text.splitlines()
        assert all(re.match(r"^\d\d:\d\d:\d\d ", line) for line in lines)
        assert any(line.endswith("deploy example_model:1: started") for line in lines)
        assert any(line.endswith("package: 3.1 s") for line in lines)
        assert any("[h1] base image: 10.0 of 168.0 MiB (5%)" in line for line in lines)
        step = "[h2] build: step 2/3 RUN tar -xzf /opt/env.tgz"
        assert any(line.endswith(step) for line in lines)
        assert any("[h3] cd-example_model-1-0 loading: Loading provided" in line for line in lines)
        assert lines[-1].endswith(" Published model  to Clipper with a tab")

    def test_a_build_is_one_line_per_step_and_a_transfer_few_lines(self):
        events = [BuildOutput("h1", "1/2 FROM b", f"line {n}") for n in range(50)]
        events += [Transfer("h1", "bundle", n * MiB, 100 * MiB, at=T0 + n / 99) for n in range(101)]
        text = self.lines(events)
        assert text.count("build: step") == 1
        assert text.count("bundle:") == 2  # the first and the last (within 5 s)


class TestChoosingAView:
    def test_a_pipe_gets_lines_and_a_terminal_a_live_display(self):
        assert isinstance(view_for(Console(file=io.StringIO())), LineView)
        terminal = Console(file=io.StringIO(), force_terminal=True)
        assert isinstance(view_for(terminal), LiveView)

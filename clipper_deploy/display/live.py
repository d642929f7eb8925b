"""The live view: a rich display per host, redrawn in place while an operation runs.

::

    deploy example_model:1  12.4 s
    package 3.1 s  register 0.0 s  prepare 8.2 s...
     host  step       time    progress
     h1    ship-base  4.2 s   base image 120.0/168.0 MiB  31.2 MiB/s
     h2    build      2.1 s   2/3 RUN tar -xzf /tmp/env.tgz ...
     h3    wait       1.0 s   cd-example_model-1-0 loading: Loading provided Python ...

Every cell is one line (``no_wrap``, ellipsis): at 80 columns nothing wraps. Progress lines
(``say``) print above the display. Used in a terminal, and in a notebook with ipywidgets.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.text import Text

from clipper_deploy.display.board import Board, HostState, PhaseTime
from clipper_deploy.orchestration.progress import Event, OperationFinished, OperationStarted

MiB = 2**20


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.0f} min"


def mib(value: float) -> str:
    return f"{value / MiB:.1f}"


def phase_text(phase: PhaseTime, now: float) -> Text:
    """``name 3.1 s`` (over), ``name 3.1 s...`` (running), red when it failed."""
    if phase.seconds is None:
        return Text(f"{phase.name} {seconds(max(0.0, now - phase.started))}...", style="bold")
    return Text(f"{phase.name} {seconds(phase.seconds)}", style="" if phase.ok else "bold red")


def host_detail(host: HostState) -> Text:
    """What a host's row says about its current step: bytes and rate of a transfer, the
    build's step and last line, or each replica's state and latest log line."""
    step = host.step.name if host.step else ""
    if host.transfer is not None and step in ("ship-base", "upload"):
        t = host.transfer
        rate = f"  {mib(t.rate)} MiB/s" if t.rate else ""
        via = f" from {t.via}" if t.via else ""
        return Text(f"{t.what}{via} {mib(t.sent)}/{mib(t.total)} MiB{rate}")
    if step == "build" and host.build_line:
        text = Text(host.build_step or "build", style="bold")
        if host.build_line != host.build_step and not host.build_line.startswith("Step "):
            text.append(f"  {host.build_line}", style="dim")
        return text
    if host.replicas and step in ("start", "wait", ""):
        lines = Text()
        for n, (container, (state, line)) in enumerate(host.replicas.items()):
            if n:
                lines.append("\n")
            style = {"serving": "green", "crashed": "bold red"}.get(state, "yellow")
            lines.append(f"{container} ")
            lines.append(state, style=style)
            if line:
                lines.append(f": {line}", style="dim")
        return lines
    return Text(host.subject)


def render_board(board: Board, now: float | None = None) -> RenderableType:
    """The board as a rich renderable that fits the width it is drawn at: a title line, the
    phases, the batch, then a line per host (more for hosts with several replicas)."""
    return BoardView(board, now)


class BoardView:
    """A :class:`Board` drawn at the console's width, every line cut with an ellipsis."""

    def __init__(self, board: Board, now: float | None = None) -> None:
        self.board = board
        self.now = now

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        for line in self.lines(time.time() if self.now is None else self.now):
            line.no_wrap = True
            line.truncate(width, overflow="ellipsis")
            yield line

    def lines(self, now: float) -> list[Text]:
        board = self.board
        with board.lock:
            title = Text(f"{board.action} {board.subject}", style="bold")
            if board.started is not None:
                took = board.seconds if board.seconds is not None else now - board.started
                title.append(f"  {seconds(max(0.0, took))}")
                if board.seconds is not None:
                    title.append(*(("  done", "green") if board.ok else ("  failed", "red")))
            out = [title]
            if board.phases:
                phases = Text()
                for n, phase in enumerate(board.phases):
                    if n:
                        phases.append("  ")
                    phases.append_text(phase_text(phase, now))
                out.append(phases)
            if board.batch is not None:
                b = board.batch
                out.append(Text(f"batch {b.index}/{b.count}: {', '.join(b.hosts)}"))
            if board.hosts:
                hw = min(16, max(4, *(len(name) for name in board.hosts)))
                out.append(Text(f"{'host':<{hw}}  {'step':<9}  {'time':>7}  progress", "dim"))
                for host in board.hosts.values():
                    step, took, style = host.step, "", ""
                    if step is not None:
                        spent = step.seconds if step.seconds is not None else now - step.started
                        took, style = seconds(max(0.0, spent)), "" if step.ok else "bold red"
                    name = host.name if len(host.name) <= hw else host.name[: hw - 1] + "…"
                    row = Text(f"{name:<{hw}}  ")
                    row.append(f"{step.name if step else '':<9}", style=style)
                    row.append(f"  {took:>7}  ")
                    detail = host_detail(host).split("\n")
                    out.append(row + detail[0])
                    out += [Text(" " * (hw + 22)) + more for more in detail[1:]]
        return out


class LiveView:
    """A progress view for a terminal (or a notebook): call it with events, give its
    :meth:`say` the progress lines. The display runs from the first :class:`OperationStarted`
    until its matching :class:`OperationFinished` (operations inside it share it)."""

    def __init__(self, console: Console | None = None, refresh_per_second: float = 4) -> None:
        self.console = console or Console(highlight=False)
        self.refresh_per_second = refresh_per_second
        self.board = Board()
        self._depth = 0
        self._live: Live | None = None
        self._lock = threading.RLock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, OperationStarted):
                self._depth += 1
                if self._depth == 1:
                    self.board = Board()
                    self.board.apply(event)
                    self._start()
                    return
            self.board.apply(event)
            if isinstance(event, OperationFinished):
                self._depth = max(0, self._depth - 1)
                if self._depth == 0:
                    self._stop()

    def say(self, text: str) -> None:
        """Print a progress line above the display (as is: ``[h1]`` is not markup)."""
        self.console.print(text, markup=False, highlight=False)

    def _start(self) -> None:
        self._live = Live(
            get_renderable=lambda: render_board(self.board),
            console=self.console,
            refresh_per_second=self.refresh_per_second,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def _stop(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.refresh()
            live.stop()

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self._depth = 0
            self._stop()

"""What people see: progress views of running operations, and tables of the fleet.

A progress view takes the events of :mod:`clipper_deploy.orchestration.progress` (call it)
and the progress lines (its ``say``): :class:`~.live.LiveView` redraws a display per host
in place (a terminal, a notebook), :class:`~.lines.LineView` writes plain timestamped lines
(CI, pipes, logs). :func:`view_for` picks one for a console. :mod:`.tables` renders
``status``, ``audit`` and ``lock.status`` to fit the terminal's width.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from rich.console import Console

from clipper_deploy.display.lines import LineView
from clipper_deploy.display.live import LiveView


def live_possible(console: Console) -> bool:
    """True when ``console`` can redraw in place: a terminal that is not dumb, or a notebook
    with ipywidgets (rich draws its live display in a widget)."""
    if console.is_jupyter:
        return importlib.util.find_spec("ipywidgets") is not None
    return console.is_terminal and not console.is_dumb_terminal


def view_for(console: Console) -> Any:
    """A :class:`LiveView` on ``console`` when it can redraw in place, else a
    :class:`LineView` on its file."""
    return LiveView(console) if live_possible(console) else LineView(console.file)


def interactive_view() -> LiveView | None:
    """A :class:`LiveView` on standard output when it can redraw in place, else None (the
    library's default: then its progress lines alone are printed, as they always were)."""
    console = Console(file=sys.stdout, highlight=False)
    return LiveView(console) if live_possible(console) else None


__all__ = ["LineView", "LiveView", "interactive_view", "live_possible", "view_for"]

"""Where packaging messages go: a small printer, so that output is testable and replaceable.

The seed's lines (``Supplied environment details``, ``Serialized and supplied predict function``,
the conda warnings) are printed exactly; callers that want them elsewhere pass their own printer
or any ``Callable[[str], None]``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@runtime_checkable
class Printer(Protocol):
    """Receives the user-facing lines of a packaging run."""

    def line(self, text: str) -> None:
        """Show an ordinary progress line."""

    def warn(self, text: str) -> None:
        """Show a warning (something was skipped, but packaging goes on)."""


class ConsolePrinter:
    """Prints to the current ``sys.stdout`` (looked up on every call, so capsys sees it)."""

    def line(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)


@dataclass
class RecordingPrinter:
    """Keeps every line in ``lines`` (warnings too, and also in ``warnings``)."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.lines.append(text)

    def warn(self, text: str) -> None:
        self.lines.append(text)
        self.warnings.append(text)

    @property
    def text(self) -> str:
        """All lines joined with newlines."""
        return "\n".join(self.lines)


@dataclass
class _CallablePrinter:
    write: Callable[[str], None]

    def line(self, text: str) -> None:
        self.write(text)

    def warn(self, text: str) -> None:
        self.write(text)


def as_printer(printer: Printer | Callable[[str], None] | None) -> Printer:
    """Return ``printer`` as a :class:`Printer` (``None`` means the console)."""
    if printer is None:
        return ConsolePrinter()
    if isinstance(printer, Printer):
        return printer
    if callable(printer):
        return _CallablePrinter(printer)
    raise TypeError(f"printer must be a Printer or a callable taking a string, got {printer!r}")

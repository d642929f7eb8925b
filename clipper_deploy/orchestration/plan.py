"""Rollout plans: which hosts go in which batch, and when a failed batch stops the rollout.

A rollout updates hosts batch by batch, with Ansible's ``serial`` keyword and
``max_fail_percentage`` play keyword, so a playbook written for Ansible means the same here::

    serial: 2              # two hosts at a time
    serial: "25%"          # a quarter of the hosts at a time
    serial: [1, 2, "50%"]  # a canary, then 2, then half of the hosts per batch until done
    max_fail_percentage: 20

``serial``
    A whole number of hosts (``3`` or ``"3"``), a percentage of *all* the rollout's hosts
    (``"25%"``, decimals allowed), or a non-empty list of those. A list gives the sizes of the
    first batches in order and its last item repeats for the hosts that remain, as in Ansible.
    A percentage rounds down with a minimum of one host, as in Ansible (``"10%"`` of 5 hosts is
    1 host); it is computed exactly (Ansible uses floats, so ``"29%"`` of 100 hosts gives it 28
    hosts; here 29). A size larger than the hosts left takes all of them. ``None`` (no
    ``serial``) puts every host in one batch.

    Unlike Ansible, which quietly treats ``0``, negative sizes and ``"0%"`` as "all hosts at
    once", these are errors here, as are an empty list, nested lists, booleans, fractions of
    a host (``1.5``) and percentages outside 0-100% (:class:`PlanError` says which value and
    what is accepted).

``max_fail_percentage``
    Checked after each batch, against *that batch* (Ansible semantics): the rollout stops when
    the failed hosts are MORE than ``max_fail_percentage`` percent of the batch's hosts;
    exactly that percentage does not stop it (``failed / batch_size > pct / 100``, as in
    Ansible's linear strategy). As in Ansible, a batch in which every host failed always stops
    the rollout, even with ``max_fail_percentage: 100``. ``"20%"`` and ``"20"`` are accepted as
    in Ansible; values outside 0-100 are errors.

    When it is not set (``None``), this tool stops at the first failed host: the batch that
    saw it is finished, later batches do not start. This is stricter than Ansible, which then
    drops the failed hosts and carries on with the others unless the whole batch failed; a
    half-updated model fleet is worse than a stopped rollout. ``None`` is therefore the same as
    ``0``.

Everything here is pure: no I/O, no network. The executor that runs batches lives elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

from clipper_deploy.errors import ClipperDeployError

__all__ = [
    "BatchSize",
    "PlanError",
    "RolloutPlan",
    "Serial",
    "batch_failed",
    "parse_max_fail_percentage",
    "parse_serial",
    "serial_batches",
]

T = TypeVar("T")

#: What a playbook's ``serial`` may hold (see the module docs).
Serial = int | str | Sequence[int | str] | None

_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
_SERIAL_HINT = (
    "serial takes a whole number of hosts of at least 1 (3), a percentage of the hosts "
    'above 0% and up to 100% ("25%"), or a list of those ([1, "50%"])'
)


class PlanError(ClipperDeployError, ValueError):
    """A ``serial`` or ``max_fail_percentage`` value that cannot be used.

    The message names the value and says what is accepted.
    """


@dataclass(frozen=True)
class BatchSize:
    """One ``serial`` item: a number of hosts, or a percentage of all the rollout's hosts."""

    value: int | Fraction
    percent: bool = False

    def hosts(self, total: int) -> int:
        """How many hosts this item takes out of a rollout of ``total`` hosts.

        Percentages round down, with a minimum of 1 (Ansible's ``pct_to_int``).
        """
        if not self.percent:
            return int(self.value)
        return max(1, math.floor(Fraction(self.value) * total / 100))

    def __str__(self) -> str:
        if not self.percent:
            return str(self.value)
        value = Fraction(self.value)
        text = str(value.numerator) if value.denominator == 1 else f"{float(value):g}"
        return f"{text}%"


def parse_serial(serial: Serial) -> tuple[BatchSize, ...]:
    """``serial`` as batch sizes; an empty tuple for ``None`` (all hosts in one batch).

    Raises :class:`PlanError` for values Ansible would silently treat as "all hosts" (``0``,
    ``-1``, ``"0%"``) and for anything that is not a size (``"abc%"``, ``1.5``, ``True``,
    ``[]``, ``[[1]]``).
    """
    if serial is None:
        return ()
    if isinstance(serial, str | int) and not isinstance(serial, bool):
        return (_parse_size(serial, "serial"),)
    if isinstance(serial, Sequence):
        if not serial:
            raise PlanError(f"serial: an empty list has no batch sizes; {_SERIAL_HINT}")
        where = f"serial {list(serial)!r}: item"
        return tuple(_parse_size(item, where) for item in serial)
    raise PlanError(f"serial {serial!r} is not a batch size; {_SERIAL_HINT}")


def _parse_size(item: object, where: str) -> BatchSize:
    """One ``serial`` item; ``where`` starts error messages."""
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise PlanError(f"{where} {item!r} is not a batch size; {_SERIAL_HINT}")
    if isinstance(item, int):
        if item < 1:
            raise PlanError(f"{where} {item!r} is not a batch size; {_SERIAL_HINT}")
        return BatchSize(item)
    text = item.strip()
    if text.endswith("%"):
        number = text[:-1].strip()
        if not _NUMBER.match(number):
            raise PlanError(f"{where} {item!r} is not a percentage; {_SERIAL_HINT}")
        value = Fraction(number)
        if not 0 < value <= 100:
            raise PlanError(f"{where} {item!r} is out of range; {_SERIAL_HINT}")
        return BatchSize(value.numerator if value.denominator == 1 else value, percent=True)
    if not text.isdigit() or int(text) < 1:
        raise PlanError(f"{where} {item!r} is not a batch size; {_SERIAL_HINT}")
    return BatchSize(int(text))


def serial_batches(hosts: Sequence[T], serial: Serial) -> list[list[T]]:
    """Split ``hosts`` (in order) into batches as Ansible's ``serial`` does.

    >>> serial_batches(["a", "b", "c", "d", "e"], [1, "50%"])
    [['a'], ['b', 'c'], ['d', 'e']]

    No hosts give no batches; ``serial=None`` gives one batch of every host.
    """
    sizes = parse_serial(serial)
    remaining = list(hosts)
    if not remaining:
        return []
    if not sizes:
        return [remaining]
    total = len(remaining)
    batches: list[list[T]] = []
    while remaining:
        size = sizes[min(len(batches), len(sizes) - 1)].hosts(total)
        batches.append(remaining[:size])
        remaining = remaining[size:]
    return batches


def parse_max_fail_percentage(value: float | str | None) -> float | None:
    """``max_fail_percentage`` as a number from 0 to 100, or ``None`` when not set.

    Accepts numbers and strings such as ``"20"`` or ``"20%"`` (as Ansible's ``percent`` field
    type does); raises :class:`PlanError` for anything else.
    """
    if value is None:
        return None
    hint = "max_fail_percentage takes a number from 0 to 100, such as 20 or 12.5"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PlanError(f"max_fail_percentage {value!r} is not a number; {hint}")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        if not _NUMBER.match(text):
            raise PlanError(f"max_fail_percentage {value!r} is not a number; {hint}")
        number = float(text)
    else:
        number = float(value)
    if not 0 <= number <= 100:
        raise PlanError(f"max_fail_percentage {value!r} is out of range; {hint}")
    return number


def batch_failed(failed: int, batch_size: int, max_fail_percentage: float | None) -> bool:
    """True when a batch with ``failed`` failed hosts out of ``batch_size`` stops the rollout.

    =========================  ==========================================================
    ``max_fail_percentage``    the rollout stops when
    =========================  ==========================================================
    ``None`` (not set)         any host of the batch failed (same as ``0``)
    ``p``                      ``failed / batch_size > p / 100`` (strictly more than p%),
                               or every host of the batch failed
    =========================  ==========================================================

    So with 4 hosts per batch and ``max_fail_percentage: 25``, one failure (25%) goes on and
    two (50%) stop. The comparison is exact, with no float rounding at the boundary.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    if not 0 <= failed <= batch_size:
        raise ValueError(f"failed must be between 0 and batch_size {batch_size}, not {failed!r}")
    if failed == 0:
        return False
    if failed == batch_size:
        return True
    limit = Fraction(parse_max_fail_percentage(max_fail_percentage) or 0)
    return Fraction(failed * 100, batch_size) > limit


@dataclass(frozen=True)
class RolloutPlan(Generic[T]):
    """Batches of hosts for one rollout and the rule that stops it; build with :meth:`build`.

    ``serial`` and ``max_fail_percentage`` are kept as given (after validation) for messages.
    """

    batches: tuple[tuple[T, ...], ...]
    serial: Serial = None
    max_fail_percentage: float | None = None

    @classmethod
    def build(
        cls,
        hosts: Sequence[T],
        serial: Serial = None,
        max_fail_percentage: float | str | None = None,
    ) -> RolloutPlan[T]:
        """The plan for ``hosts``; raises :class:`PlanError` for bad settings."""
        batches = tuple(tuple(batch) for batch in serial_batches(hosts, serial))
        if isinstance(serial, Sequence) and not isinstance(serial, str):
            serial = list(serial)
        return cls(batches, serial, parse_max_fail_percentage(max_fail_percentage))

    @property
    def hosts(self) -> tuple[T, ...]:
        """Every host of the plan, in rollout order."""
        return tuple(host for batch in self.batches for host in batch)

    def stops_after(self, batch: int, failed: int) -> bool:
        """True when ``failed`` failures in batch number ``batch`` (0-based) stop the rollout."""
        return batch_failed(failed, len(self.batches[batch]), self.max_fail_percentage)

    def describe(self) -> str:
        """What the rollout would do, for ``--dry-run``: one line per batch and the stop rule."""
        count = len(self.hosts)
        if not count:
            return "No hosts to roll out to."
        how = "all at once" if self.serial is None else f"serial {_show_serial(self.serial)}"
        lines = [
            f"Roll out to {_plural(count, 'host')} in {_plural(len(self.batches), 'batch')} "
            f"({how}).",
            f"Stop {self._stop_rule()}.",
        ]
        width = len(str(len(self.batches)))
        for number, batch in enumerate(self.batches, 1):
            names = ", ".join(_name(host) for host in batch)
            lines.append(f"  batch {number:>{width}}/{len(self.batches)}: {names}")
        return "\n".join(lines)

    def _stop_rule(self) -> str:
        pct = self.max_fail_percentage
        if pct is None:
            return "at the first failed host (max_fail_percentage not set)"
        shown = f"{pct:g}"
        if pct == 0:
            return "at the first failed host (max_fail_percentage: 0)"
        if pct == 100:
            return "only after a batch where every host failed (max_fail_percentage: 100)"
        return (
            f"after a batch where more than {shown}% of the hosts failed, or all of them "
            f"(max_fail_percentage: {shown})"
        )


def _show_serial(serial: Serial) -> str:
    if isinstance(serial, str):
        return f'"{serial}"'
    if isinstance(serial, Sequence):
        return "[" + ", ".join(_show_serial(item) for item in serial) + "]"  # type: ignore[arg-type]
    return str(serial)


def _name(host: object) -> str:
    name = getattr(host, "name", None)
    return name if isinstance(name, str) else str(host)


def _plural(count: int, word: str) -> str:
    suffix = "es" if word.endswith("ch") else "s"
    return f"{count} {word}" if count == 1 else f"{count} {word}{suffix}"

"""Tables that fit: ``status``, ``audit`` and ``lock.status`` at the width they are printed.

A :class:`FittedTable` is drawn at the console's width: no cell ever wraps (``no_wrap``);
when the columns do not fit, the least important ones are dropped first (a higher
:attr:`Column.drop` goes first), then the columns that may shrink are cut with an ellipsis.
At 80 columns ``status`` keeps host, model:version, state and heartbeat, ``audit`` keeps time,
action, model, version, result and the start of the detail. Text from hosts and logs is
never read as rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

Cell = str | Text


@dataclass(frozen=True)
class Column:
    """A column: ``drop`` 0 is always kept, higher ones are dropped first when the table is
    too wide; ``shrink`` (a width) lets the column be cut down to it with an ellipsis."""

    name: str
    drop: int = 0
    shrink: int | None = None
    justify: str = "left"


def _width(cell: Cell) -> int:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return max((cell_len(line) for line in text.splitlines()), default=0)


class FittedTable:
    """Rows under columns, laid out at the width of whatever prints it."""

    BORDER_PER_COLUMN = 3  # a rule and one space each side
    BORDER = 1

    def __init__(
        self, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], title: str | None = None
    ) -> None:
        self.columns = list(columns)
        self.rows = [list(row) for row in rows]
        self.title = title

    def kept(self, width: int) -> list[int]:
        """Indexes of the columns shown at ``width`` (the least important dropped first)."""
        natural = [
            max([cell_len(col.name), *(_width(row[i]) for row in self.rows)])
            for i, col in enumerate(self.columns)
        ]
        kept = list(range(len(self.columns)))

        def need(indexes: list[int]) -> int:
            least = sum(min(natural[i], self.columns[i].shrink or natural[i]) for i in indexes)
            return least + self.BORDER_PER_COLUMN * len(indexes) + self.BORDER

        while need(kept) > width:
            droppable = [i for i in kept if self.columns[i].drop > 0]
            if not droppable:
                break
            kept.remove(max(droppable, key=lambda i: (self.columns[i].drop, i)))
        return kept

    def table(self, width: int) -> Table:
        """The rich table at ``width``."""
        kept = self.kept(width)
        natural = {
            i: max([cell_len(self.columns[i].name), *(_width(row[i]) for row in self.rows)])
            for i in kept
        }
        room = width - self.BORDER_PER_COLUMN * len(kept) - self.BORDER
        sizes = {i: natural[i] for i in kept}
        shrinking = [i for i in kept if self.columns[i].shrink is not None]
        spare = room - sum(natural[i] for i in kept if i not in shrinking)
        # The more important columns get their full width first; the others their minimum.
        for n, i in enumerate(sorted(shrinking, key=lambda i: (self.columns[i].drop, i))):
            rest = sorted(shrinking, key=lambda i: (self.columns[i].drop, i))[n + 1 :]
            least_rest = sum(min(natural[j], self.columns[j].shrink or 0) for j in rest)
            floor = min(natural[i], self.columns[i].shrink or 0)
            sizes[i] = max(floor, min(natural[i], spare - least_rest))
            spare -= sizes[i]
        table = Table(title=self.title, title_justify="left", expand=False)
        for i in kept:
            col = self.columns[i]
            table.add_column(
                col.name,
                no_wrap=True,
                overflow="ellipsis",
                justify=col.justify,  # type: ignore[arg-type]
                width=sizes[i],
            )
        for row in self.rows:
            table.add_row(*(_text(row[i]) for i in kept))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(str(cell))


# ------------------------------------------------------------------ status


def frontend_lines(report: dict[str, Any]) -> list[str]:
    """``Frontend: <where>, clipper-deploy <version>, up <uptime>`` and where queries go."""
    doc = report["frontend"]
    if not doc.get("running"):
        return [f"Frontend: not running ({doc.get('message', '')})"]
    uptime = doc.get("uptime_s")
    up = duration(uptime) if uptime is not None else "unknown"
    return [
        f"Frontend: {doc.get('where')}, clipper-deploy {doc.get('version') or '?'}, up {up}",
        f"Queries at {doc.get('query_url')}",
    ]


def duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


STATE_STYLES = {
    "serving": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "retained": "dim",
    "stopped": "dim",
    "crashed": "bold red",
    "unreachable": "red",
}


def status_tables(report: dict[str, Any]) -> list[FittedTable]:
    """The applications, models and replicas of a status report
    (:func:`clipper_deploy.orchestration.status.status_report`) as three tables."""
    apps = FittedTable(
        [
            Column("app"),
            Column("input type", drop=3),
            Column("models", drop=1, shrink=8),
            Column("SLO (us)", drop=2, justify="right"),
            Column("default output", drop=4, shrink=8),
        ],
        [
            [
                a["name"],
                a["input_type"],
                ", ".join(a["models"]) or "-",
                str(a["slo_micros"] if a["slo_micros"] is not None else "-"),
                json.dumps(a["default_output"]),
            ]
            for a in report["applications"]
        ],
        title="Applications",
    )
    models = FittedTable(
        [
            Column("model", shrink=12),
            Column("version"),
            Column("current"),
            Column("input type", drop=2),
            Column("labels", drop=1, shrink=8),
        ],
        [
            [
                m["name"],
                m["version"],
                "yes" if m["current"] else "",
                m["input_type"],
                ", ".join(m["labels"]),
            ]
            for m in report["models"]
        ],
        title="Models",
    )
    rows: list[list[Cell]] = []
    for r in report["replicas"]:
        rows.append(
            [
                r["host"],
                r["container"],
                f"{r['model']}:{r['version']}",
                Text(r["state"], style=STATE_STYLES.get(r["state"], "")),
                ago(r["heartbeat_age_s"]),
                "-" if r["queries_served"] is None else str(r["queries_served"]),
            ]
        )
    for host, why in report["unreachable"].items():
        rows.append([host, Text(why), "-", Text("unreachable", style="red"), "-", "-"])
    replicas = FittedTable(
        [
            Column("host", shrink=8),
            Column("container", drop=2, shrink=10),
            Column("model:version", shrink=14),
            Column("state"),
            Column("heartbeat", drop=1, justify="right"),
            Column("queries", drop=3, justify="right", shrink=7),
        ],
        rows,
        title="Replicas",
    )
    return [apps, models, replicas]


def ago(age: float | None) -> str:
    """``1.2 s ago``, ``3 min ago``; ``-`` when there is no heartbeat."""
    if age is None:
        return "-"
    if age < 120:
        return f"{age:.1f} s ago"
    if age < 7200:
        return f"{age / 60:.0f} min ago"
    return f"{age / 3600:.0f} h ago"


# ------------------------------------------------------------------ audit

RESULT_STYLES = {"ok": "green", "failed": "bold red"}


def audit_table(events: Sequence[dict[str, Any]], title: str | None = None) -> FittedTable:
    """``events`` of the audit log, oldest first; at 80 columns user and hosts are dropped
    and the detail (its first line) is cut. Missing fields show as ``-``."""
    rows = []
    for event in events:
        result = show(event.get("result"))
        rows.append(
            [
                show(event.get("time")),
                show(event.get("user")),
                show(event.get("action")),
                show(event.get("model")),
                show(event.get("version")),
                show_hosts(event),
                Text(result, style=RESULT_STYLES.get(result, "yellow")),
                first_line(event.get("detail")),
            ]
        )
    return FittedTable(
        [
            Column("time"),
            Column("user", drop=3, shrink=10),
            Column("action"),
            Column("model", shrink=10),
            Column("version", drop=2, shrink=7),
            Column("hosts", drop=4, shrink=8),
            Column("result"),
            Column("detail", drop=1, shrink=10),
        ],
        rows,
        title=title if title is not None else "Audit log",
    )


def show(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def show_hosts(event: dict[str, Any], most: int = 4) -> str:
    """The first ``most`` host names, and ``+N`` for the others (and those not recorded)."""
    hosts = event.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        return "-"
    names = [str(host) for host in hosts]
    more = max(0, len(names) - most) + int(event.get("hosts_omitted") or 0)
    shown = ", ".join(names[:most])
    return f"{shown} +{more}" if more > 0 else shown


def first_line(value: Any) -> str:
    if value is None:
        return ""
    lines = str(value).strip().splitlines()
    return lines[0] if lines else ""


# ------------------------------------------------------------------ lock.status

LOCK_FIELDS = (
    ("held by", "user"),
    ("action", "action"),
    ("version", "version"),
    ("since", "started"),
    ("process", "pid"),
    ("on", "hostname"),
    ("unreadable", "unreadable"),
)


def lock_table(model: str, holder: dict[str, Any] | None) -> FittedTable:
    """Who holds ``model``'s lock, one field a line (readable at any width)."""
    if holder is None:
        return FittedTable([Column("model"), Column("lock")], [[model, "not locked"]])
    rows: list[list[Cell]] = [["model", model]]
    rows += [[label, show(holder[key])] for label, key in LOCK_FIELDS if key in holder]
    return FittedTable([Column("lock"), Column("holder", shrink=20)], rows, title=None)

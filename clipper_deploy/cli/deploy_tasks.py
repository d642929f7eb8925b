"""`invoke deploy | status | logs | stop | predict | demo`: day-to-day model operations."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from invoke import Context, Exit, task
from rich.console import Group
from rich.live import Live
from rich.text import Text

from clipper_deploy.cli.common import (
    CHECK_HELP,
    INVENTORY_HELP,
    LOCK_WAIT_HELP,
    console,
    failing,
    open_clipper,
)
from clipper_deploy.cli.settings import seconds_setting
from clipper_deploy.display import live_possible
from clipper_deploy.display.lines import stamp
from clipper_deploy.display.tables import frontend_lines, status_tables
from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.orchestration.playbook import load_playbook
from clipper_deploy.orchestration.status import status_report
from clipper_deploy.settings import MODEL_HOSTS_GROUP


@task(
    help={
        "playbook": "the deploy's YAML plan (e.g. playbooks/example.yml)",
        "version": "model version to deploy (default: the playbook's)",
        "lock_wait": LOCK_WAIT_HELP,
        "check": CHECK_HELP,
        "inventory": INVENTORY_HELP,
    }
)
def deploy(
    c: Context,
    playbook: str,
    version: str | None = None,
    lock_wait: float | None = None,
    check: bool = False,
    inventory: str | None = None,
) -> None:
    """Package a playbook's function, ship it to its hosts and wait until every replica serves."""
    clipper = open_clipper(c, inventory, progress=not check)
    started = time.monotonic()
    with failing("Deploy"):
        book = load_playbook(playbook)
        if check:
            clipper.deploy_playbook(book, version, check=True)
            return
        clipper.start()
        wait = seconds_setting(c, "lock_wait", lock_wait)
        clipper.deploy_playbook(book, version, lock_wait=wait)
    console.print(f"True  (deployed in {time.monotonic() - started:.1f} s)")


STATUS_HELP = {
    "json": "print the status as one JSON document (shape: docs/architecture.md, status --json)",
    "watch": "refresh until Ctrl-C (in place in a terminal; elsewhere, once per interval)",
    "interval": "with --watch: seconds between refreshes (default 2)",
    "count": "with --watch: stop after this many refreshes (default 0: until Ctrl-C)",
    "inventory": INVENTORY_HELP,
}


@task(help=STATUS_HELP)
def status(
    c: Context,
    json: bool = False,
    watch: bool = False,
    interval: float = 2.0,
    count: int = 0,
    inventory: str | None = None,
) -> None:
    """Show where the frontend runs (its version and uptime), apps, models, versions, and
    every replica per host with its state (serving, starting, retained, crashed...)."""
    clipper = open_clipper(c, inventory)
    if interval <= 0 or count < 0:
        raise Exit(f"error: --interval must be > 0 (not {interval}) and --count >= 0", code=1)
    if watch:
        watch_status(clipper, interval, count or None, as_json=json)
        return
    try:
        report = status_report(clipper)
    except (ClipperDeployError, OSError) as exc:
        raise Exit(f"error: cannot read the fleet's status: {exc}", code=1) from exc
    if json:
        print(json_text(report))
    else:
        console.print(status_view(report))


def json_text(doc: Any) -> str:
    """``doc`` as one line of JSON (values JSON cannot hold become strings)."""
    return json.dumps(doc, default=str)


def status_view(report: dict[str, Any]) -> Group:
    """The frontend's lines and the three status tables, fitted to the console."""
    lines = [Text(line, no_wrap=True, overflow="ellipsis") for line in frontend_lines(report)]
    return Group(*lines, *status_tables(report))


def watch_status(clipper: Any, interval: float, count: int | None, *, as_json: bool) -> None:
    """Refresh the status every ``interval`` s, ``count`` times (None: until Ctrl-C): in place
    in a terminal; elsewhere one snapshot (or JSON line) after the other, each with its time.
    A refresh that cannot read the fleet shows why, and the next one tries again."""
    in_place = live_possible(console) and not as_json
    live = Live(console=console, auto_refresh=False, transient=False) if in_place else None
    shown = 0
    try:
        if live is not None:
            live.start()
        while count is None or shown < count:
            if shown:
                time.sleep(interval)
            shown += 1
            now = stamp(time.time())
            try:
                report: dict[str, Any] | None = status_report(clipper)
                error = ""
            except (ClipperDeployError, OSError) as exc:
                report, error = None, f"cannot read the fleet's status: {exc}"
            if as_json:
                print(json_text(report if report is not None else {"error": error}), flush=True)
                continue
            header = Text(f"{now} status, every {interval:g} s (Ctrl-C to stop)", style="dim")
            view = status_view(report) if report is not None else Text(error, style="red")
            if live is not None:
                live.update(Group(header, view), refresh=True)
            else:
                console.print(header)
                console.print(view)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()


@task(
    help={
        "model": "model whose containers to show",
        "follow": "keep printing new lines (Ctrl-C to stop)",
        "host": "only this host (inventory name or pattern)",
        "lines": "how many recent lines per container (default 100)",
        "inventory": INVENTORY_HELP,
    },
)
def logs(
    c: Context,
    model: str,
    follow: bool = False,
    host: str = MODEL_HOSTS_GROUP,
    lines: int = 100,
    inventory: str | None = None,
) -> None:
    """Container logs from every host, each line prefixed by host and replica."""
    clipper = open_clipper(c, inventory)
    if not follow:
        for entry in clipper.get_logs(model, hosts=host, lines=lines):
            for line in entry["lines"]:
                console.print(f"[cyan]{entry['host']}/{entry['container']}[/] {line}", markup=True)
        return
    clipper.follow_logs(model, _print_line, hosts=host, lines=lines)


def _print_line(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


@task(
    help={
        "model": "model whose containers to stop and remove",
        "version": "only this version (default: every version)",
        "check": CHECK_HELP,
        "inventory": INVENTORY_HELP,
    }
)
def stop(
    c: Context,
    model: str,
    version: str | None = None,
    check: bool = False,
    inventory: str | None = None,
) -> None:
    """Stop and remove a model's containers on every host (images are kept)."""
    clipper = open_clipper(c, inventory)
    with failing("Stop"):
        removed = clipper.stop_models(model, [version] if version else None, check=check)
    if not check:
        total = sum(len(v) for v in removed.values())
        console.print(f"Stopped {total} container(s) of {model}")


@task(
    help={
        "app": "application name",
        "input": "the input as JSON, e.g. '[1.0, 2.0, 3.0, 4.0]'",
        "inventory": INVENTORY_HELP,
    }
)
def predict(c: Context, app: str, input: str, inventory: str | None = None) -> None:
    """Query an application through the frontend and print Clipper's JSON reply."""
    clipper = open_clipper(c, inventory)
    try:
        value = json.loads(input)
    except json.JSONDecodeError as exc:
        raise Exit(f"error: INPUT must be JSON ({exc}); e.g. '[1.0, 2.0]'", code=1) from exc
    with failing("Predict"):
        print(json.dumps(clipper.predict(app, value)))

"""`invoke deploy | status | logs | stop | predict | demo`: day-to-day model operations."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from invoke import Context, Exit, task
from rich.table import Table

from clipper_deploy.cli.common import (
    CHECK_HELP,
    INVENTORY_HELP,
    LOCK_WAIT_HELP,
    console,
    failing,
    open_clipper,
)
from clipper_deploy.cli.settings import seconds_setting
from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.orchestration.playbook import load_playbook
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
    clipper = open_clipper(c, inventory)
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


@task(help={"inventory": INVENTORY_HELP})
def status(c: Context, inventory: str | None = None) -> None:
    """Show where the frontend runs (its version and uptime), apps, models, versions, and
    every replica per host with its state."""
    clipper = open_clipper(c, inventory)
    try:
        console.print(frontend_line(clipper.frontend.status()), markup=False)
    except (ClipperDeployError, OSError) as exc:
        raise Exit(f"error: cannot read the frontend's status: {exc}", code=1) from exc
    admin = clipper.admin
    try:
        apps = admin.get_all_applications(verbose=True)
        models = admin.get_all_models(verbose=True)
        replicas = {r["replica_id"]: r for r in admin.get_all_containers()}
    except (ClipperDeployError, OSError) as exc:
        raise Exit(f"error: the frontend does not answer: {exc}", code=1) from exc
    table = Table(title="Applications")
    for column in ("app", "input type", "model", "SLO (us)", "default output"):
        table.add_column(column)
    for app in apps:
        table.add_row(
            app["name"],
            app["input_type"],
            ", ".join(app.get("linked_models") or []) or "-",
            str(app.get("latency_slo_micros", "")),
            json.dumps(app.get("default_output")),
        )
    console.print(table)
    table = Table(title="Models")
    for column in ("model", "version", "current", "input type", "labels"):
        table.add_column(column)
    for m in models:
        table.add_row(
            m["model_name"],
            str(m["model_version"]),
            "yes" if m.get("is_current_version") else "",
            m["input_type"],
            ", ".join(m.get("labels") or []),
        )
    console.print(table)
    table = Table(title="Replicas")
    for column in ("host", "container", "model:version", "state", "last heartbeat", "queries"):
        table.add_column(column)
    for host, found in clipper.containers("all", warn=True, remote_only=True).items():
        if isinstance(found, BaseException):
            table.add_row(host, "-", "-", "[red]unreachable[/]", "-", "-")
            continue
        for cont in found:
            registered = replicas.get(cont.replica)
            table.add_row(
                host,
                cont.name,
                f"{cont.model}:{cont.version}",
                replica_state(cont.state, registered),
                _ago(registered.get("last_heartbeat")) if registered else "-",
                str(registered.get("queries_served", 0)) if registered else "-",
            )
    console.print(table)


def frontend_line(doc: dict[str, Any]) -> str:
    """``Frontend: <where>, clipper-deploy <version>, up <uptime>`` from a frontend status."""
    if not doc.get("running"):
        return f"Frontend: not running ({doc.get('message', '')})"
    uptime = doc.get("uptime_s")
    up = _duration(uptime) if uptime is not None else "unknown"
    return (
        f"Frontend: {doc.get('where')}, clipper-deploy {doc.get('version') or '?'}, up {up}, "
        f"queries at {doc.get('query_url')}"
    )


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def replica_state(docker_state: str, registered: dict[str, Any] | None) -> str:
    """starting, serving, crashed or restarting, from Docker's state and the frontend's view."""
    if docker_state == "restarting":
        return "restarting"
    if docker_state in ("exited", "dead"):
        return "crashed"
    if docker_state == "running":
        if registered and registered.get("state") != "disconnected":
            return "serving"
        return "starting"
    return docker_state


def _ago(timestamp: float | None) -> str:
    return "-" if not timestamp else f"{max(0.0, time.time() - timestamp):.1f} s ago"


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

"""`invoke deploy | status | logs | stop | predict | demo`: day-to-day model operations."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from invoke import Context, Exit, task
from rich.table import Table

from clipper_deploy.cli.common import INVENTORY_HELP, LOCK_WAIT_HELP, console, fail, open_clipper
from clipper_deploy.cli.settings import seconds_setting
from clipper_deploy.clipper import ClipperError
from clipper_deploy.frontend.client import FrontendError
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.connection import HostGroup
from clipper_deploy.hosts.inventory import InventoryError
from clipper_deploy.images.base import BaseImageError
from clipper_deploy.orchestration.deploy import DeployError
from clipper_deploy.orchestration.lock import LockHeld
from clipper_deploy.orchestration.playbook import PlaybookError, load_playbook
from clipper_deploy.packaging.errors import PackagingError

FAILURES = (
    BaseImageError,
    ClipperError,
    DeployError,
    FrontendError,
    InventoryError,
    PackagingError,
    PlaybookError,
    OSError,
)


@task(
    help={
        "playbook": "the deploy's YAML plan (e.g. playbooks/example.yml)",
        "version": "model version to deploy (default: the playbook's)",
        "lock_wait": LOCK_WAIT_HELP,
        "inventory": INVENTORY_HELP,
    }
)
def deploy(
    c: Context,
    playbook: str,
    version: str | None = None,
    lock_wait: float | None = None,
    inventory: str | None = None,
) -> None:
    """Package a playbook's function, ship it to its hosts and wait until every replica serves."""
    clipper = open_clipper(c, inventory)
    started = time.monotonic()
    try:
        book = load_playbook(playbook)
        clipper.start()
        clipper.deploy_playbook(book, version, lock_wait=seconds_setting(c, "lock_wait", lock_wait))
    except (*FAILURES, LockHeld) as exc:
        raise fail("Deploy", exc) from exc
    console.print(f"True  (deployed in {time.monotonic() - started:.1f} s)")


@task(help={"inventory": INVENTORY_HELP})
def status(c: Context, inventory: str | None = None) -> None:
    """Show apps, models, versions, and every replica per host with its state."""
    clipper = open_clipper(c, inventory)
    admin = clipper.admin
    try:
        apps = admin.get_all_applications(verbose=True)
        models = admin.get_all_models(verbose=True)
        replicas = {r["replica_id"]: r for r in admin.get_all_containers()}
    except (FrontendError, OSError) as exc:
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
    hosts = [h for h in clipper.inventory.hosts("all") if not h.is_local]
    with HostGroup(hosts, connect_timeout=clipper.connect_timeout) as group:
        result = group.run(dc.shell(dc.ps()), warn=True)
    for host, res in result.items():
        if isinstance(res, BaseException):
            table.add_row(host.name, "-", "-", "[red]unreachable[/]", "-", "-")
            continue
        for cont in dc.parse_ps(res.stdout):
            registered = replicas.get(cont.replica)
            table.add_row(
                host.name,
                cont.name,
                f"{cont.model}:{cont.version}",
                replica_state(cont.state, registered),
                _ago(registered.get("last_heartbeat")) if registered else "-",
                str(registered.get("queries_served", 0)) if registered else "-",
            )
    console.print(table)


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
    host: str = "model_hosts",
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
    targets = clipper.inventory.hosts(host)
    with HostGroup(targets, connect_timeout=clipper.connect_timeout) as group:
        threads = []
        for h in targets:
            conn = group.connection(h)
            for cont in dc.parse_ps(
                conn.run(dc.shell(dc.ps(model)), hide=True, in_stream=False).stdout
            ):
                prefix = f"{h.name}/{cont.name}"
                thread = threading.Thread(
                    target=_follow, args=(conn, cont.name, prefix, lines), daemon=True
                )
                thread.start()
                threads.append(thread)
        try:
            while any(t.is_alive() for t in threads):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


class _PrefixedWriter:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            sys.stdout.write(f"{self.prefix} {line}\n")
        sys.stdout.flush()
        return len(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _follow(conn: Any, container: str, prefix: str, lines: int) -> None:
    writer = _PrefixedWriter(prefix)
    conn.run(
        dc.shell(dc.logs(container, lines, follow=True)),
        out_stream=writer,
        err_stream=writer,
        warn=True,
        in_stream=False,
    )


@task(
    help={
        "model": "model whose containers to stop and remove",
        "version": "only this version (default: every version)",
        "inventory": INVENTORY_HELP,
    }
)
def stop(c: Context, model: str, version: str | None = None, inventory: str | None = None) -> None:
    """Stop and remove a model's containers on every host (images are kept)."""
    clipper = open_clipper(c, inventory)
    try:
        removed = clipper.stop_models(model, [version] if version else None)
    except FAILURES as exc:
        raise Exit(f"error: {exc}", code=1) from exc
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
    try:
        print(json.dumps(clipper.predict(app, value)))
    except FAILURES as exc:
        raise Exit(f"error: {exc}", code=1) from exc

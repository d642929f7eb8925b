"""`invoke testbed.*`: a multi-host Docker test bed on this machine."""

from __future__ import annotations

from invoke import Context, Exit, task
from rich.table import Table

from clipper_deploy.cli.common import console, say
from clipper_deploy.testbed.bed import Testbed, TestbedError
from clipper_deploy.testbed.layout import BedLayout


def _current() -> Testbed:
    try:
        return Testbed.current(say=say)
    except TestbedError as exc:
        raise Exit(str(exc), code=1) from exc


@task(
    help={
        "hosts": "number of Docker hosts h1..hN (default 2)",
        "fresh": "recreate the bed even if an identical healthy one is up",
        "dir": "bed directory (default $CLIPPER_TESTBED_DIR or ./.testbed)",
    }
)
def up(c: Context, hosts: int = 2, fresh: bool = False, dir: str | None = None) -> None:
    """Start N simulated Docker hosts (netns + own sshd + own dockerd) and write an inventory."""
    Testbed(BedLayout.default(hosts=hosts, directory=dir), say=say).up(fresh=fresh)


@task(help={"dir": "bed directory (default $CLIPPER_TESTBED_DIR or ./.testbed)"})
def down(c: Context, dir: str | None = None) -> None:
    """Remove the test bed: every process, namespace, link and data directory (idempotent)."""
    Testbed(BedLayout.default(directory=dir), say=say).down()


@task
def status(c: Context) -> None:
    """Show each test-bed host: network, sshd, dockerd, containers and images."""
    bed = _current()
    table = Table(title=f"Test bed {bed.layout.directory}")
    for column in ("host", "address", "network", "sshd", "dockerd", "containers", "images"):
        table.add_column(column)
    for s in bed.status():
        table.add_row(
            s.name,
            s.address,
            "up" if s.namespace and s.link_up else ("cut" if s.namespace else "missing"),
            "running" if s.sshd else "stopped",
            "running" if s.dockerd else "stopped",
            "-" if s.containers is None else str(s.containers),
            "-" if s.images is None else str(s.images),
        )
    console.print(table)
    console.print(f"Inventory: {bed.layout.inventory}")


@task(help={"host": "host to cut off, e.g. h2"})
def cut(c: Context, host: str) -> None:
    """Fault injection: pull a host's network cable (it becomes unreachable)."""
    _current().cut(host)


@task(help={"host": "host to reconnect, e.g. h2"})
def heal(c: Context, host: str) -> None:
    """Fault injection: reconnect a host cut with testbed.cut."""
    _current().heal(host)


@task(help={"host": "host whose sshd and dockerd to stop, e.g. h2"})
def stop(c: Context, host: str) -> None:
    """Fault injection: stop a host's sshd and dockerd (and what runs on it)."""
    _current().stop(host)


@task(help={"host": "host whose sshd and dockerd to start, e.g. h2"})
def start(c: Context, host: str) -> None:
    """Fault injection: start a stopped host's sshd and dockerd again."""
    _current().start(host)

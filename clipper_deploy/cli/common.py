"""What the tasks share: which inventory to use, and the one place library errors end a task."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from invoke import Context, Exit
from rich.console import Console

from clipper_deploy.cli.settings import setting
from clipper_deploy.clipper import Clipper
from clipper_deploy.display import view_for
from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts.inventory import Inventory
from clipper_deploy.settings import TESTBED_INVENTORY, default_testbed_dir

console = Console(highlight=False, soft_wrap=True)
"""The console every task prints to."""


def inventory_path(c: Context, given: str | None = None) -> Path:
    """``given`` (``--inventory``), else the ``inventory`` setting, else the test bed's
    inventory when a bed is up, else ``./inventory.ini``."""
    chosen = setting(c, "inventory", given or None)
    if chosen:
        return Path(chosen).expanduser()
    bed_inventory = default_testbed_dir() / TESTBED_INVENTORY
    return bed_inventory if bed_inventory.exists() else Path("inventory.ini")


def load_inventory(c: Context, given: str | None = None) -> Inventory:
    """Parse the inventory :func:`inventory_path` picks; errors end the task with the reason."""
    try:
        return Inventory.from_file(inventory_path(c, given))
    except ClipperDeployError as exc:
        raise Exit(str(exc), code=1) from exc


def say(text: str) -> None:
    """Print a progress line from the library as is (``[h1]`` is a host, not rich markup)."""
    console.print(text, markup=False, highlight=False)


def open_clipper(c: Context, inventory: str | None, *, progress: bool = False) -> Clipper:
    """A :class:`Clipper` on the inventory :func:`inventory_path` picks; a bad inventory ends
    the task with the reason. Its lines go through :func:`say`; with ``progress`` (the tasks
    that change the fleet, unless ``--check``: a plan is printed as is) they and the progress
    events go to :func:`~clipper_deploy.display.view_for` the console instead: a live display
    in a terminal, timestamped lines elsewhere."""
    view = view_for(console) if progress else None
    try:
        if view is None:
            return Clipper(inventory_path(c, inventory), say=say)
        return Clipper(inventory_path(c, inventory), say=view.say, progress=view)
    except (ClipperDeployError, OSError) as exc:
        raise Exit(f"error: {exc}", code=1) from exc


INVENTORY_HELP = (
    "inventory file (default: the `inventory` setting, else the test bed's when up, "
    "else ./inventory.ini)"
)
LOCK_WAIT_HELP = (
    "seconds to wait for another deploy/rollout of the model (default: the `lock_wait` "
    "setting, 0: fail now)"
)
CHECK_HELP = "only print the plan per host (what would change, and why); change nothing"


def fail(what: str, exc: BaseException) -> Exit:
    """Print ``<what> failed: <reason>`` (the reason as is: ``[h1]`` is not markup) and
    return the Exit that ends the task with status 1."""
    console.print(f"[bold red]{what} failed[/]: ", end="")
    console.print(str(exc), markup=False)
    return Exit(code=1)


@contextlib.contextmanager
def failing(what: str) -> Iterator[None]:
    """End the task with ``<what> failed: <reason>`` when the library raises: every library
    error is a :class:`~clipper_deploy.errors.ClipperDeployError` (``OSError`` covers files
    the task itself opens)."""
    try:
        yield
    except (ClipperDeployError, OSError) as exc:
        raise fail(what, exc) from exc

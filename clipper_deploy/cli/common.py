"""What the tasks share: which inventory to use, printing, and ending a task on failure."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit
from rich.console import Console

from clipper_deploy.cli.settings import setting
from clipper_deploy.clipper import Clipper, ClipperError
from clipper_deploy.hosts.inventory import Inventory, InventoryError
from clipper_deploy.testbed.layout import BedLayout

console = Console(highlight=False, soft_wrap=True)
"""The console every task prints to."""


def inventory_path(c: Context, given: str | None = None) -> Path:
    """``given`` (``--inventory``), else the ``inventory`` setting, else the test bed's
    inventory when a bed is up, else ``./inventory.ini``."""
    chosen = setting(c, "inventory", given or None)
    if chosen:
        return Path(chosen).expanduser()
    bed_inventory = BedLayout.default().inventory
    return bed_inventory if bed_inventory.exists() else Path("inventory.ini")


def load_inventory(c: Context, given: str | None = None) -> Inventory:
    """Parse the inventory :func:`inventory_path` picks; errors end the task with the reason."""
    try:
        return Inventory.from_file(inventory_path(c, given))
    except InventoryError as exc:
        raise Exit(str(exc), code=1) from exc


def say(text: str) -> None:
    """Print a progress line from the library as is (``[h1]`` is a host, not rich markup)."""
    console.print(text, markup=False, highlight=False)


def open_clipper(c: Context, inventory: str | None) -> Clipper:
    """A :class:`Clipper` on the inventory :func:`inventory_path` picks, printing through
    :func:`say`; a bad inventory ends the task with the reason."""
    try:
        return Clipper(inventory_path(c, inventory), say=say)
    except (ClipperError, InventoryError, OSError) as exc:
        raise Exit(f"error: {exc}", code=1) from exc


INVENTORY_HELP = (
    "inventory file (default: the `inventory` setting, else the test bed's when up, "
    "else ./inventory.ini)"
)
LOCK_WAIT_HELP = (
    "seconds to wait for another deploy/rollout of the model (default: the `lock_wait` "
    "setting, 0: fail now)"
)


def fail(what: str, exc: BaseException) -> Exit:
    """Print ``<what> failed: <reason>`` (the reason as is: ``[h1]`` is not markup) and
    return the Exit that ends the task with status 1."""
    console.print(f"[bold red]{what} failed[/]: ", end="")
    console.print(str(exc), markup=False)
    return Exit(code=1)

"""Top-level tasks: `invoke test` and `invoke demo`."""

from __future__ import annotations

import shlex
import sys

from invoke import Context, Exit, task
from rich.console import Console

from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testing import all_test_layouts

console = Console()


@task(help={"args": 'extra pytest arguments, e.g. "-k inventory -x"'})
def test(c: Context, args: str = "") -> None:
    """Run the whole test suite: unit tests and real multi-host test-bed tests (needs root)."""
    try:
        result = c.run(f"{shlex.quote(sys.executable)} -m pytest {args}", warn=True, pty=False)
    finally:
        for layout in all_test_layouts():
            Testbed(layout, say=console.print).down(quiet=True)
    if result is None or result.exited != 0:
        raise Exit(code=result.exited if result else 1)

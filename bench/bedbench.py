"""What the deploy and rollout benchmarks share: their own test bed and a Clipper on it.

The benchmarks use a bed with their own prefix and subnet (``cdbn``, 10.218.0.0/24, or
``CLIPPER_BENCH_BED_PREFIX``/``_SUBNET``), so they run beside a person's bed, a test session or
another benchmark, and always tear it down at the end.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from clipper_deploy import Clipper
from clipper_deploy.hosts.connection import connection_for
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testbed.layout import BedLayout

BENCH_BED = {
    "prefix": os.environ.get("CLIPPER_BENCH_BED_PREFIX", "cdbn"),
    "subnet": os.environ.get("CLIPPER_BENCH_BED_SUBNET", "10.218.0.0/24"),
}
RESULTS = Path(__file__).resolve().parent / "results"


def quiet(_text: str) -> None:
    """Progress lines are not part of a benchmark's output."""


@contextmanager
def bench_bed(hosts: int) -> Iterator[tuple[Testbed, Clipper]]:
    """A fresh bed of ``hosts`` hosts with its frontend; removed on exit."""
    layout = BedLayout(directory=RESULTS / "bed", hosts=hosts, **BENCH_BED)
    bed = Testbed(layout, say=quiet)
    bed.up(fresh=True)
    try:
        clipper = Clipper(layout.inventory, say=quiet, ready_timeout=180)
        clipper.start()
        yield bed, clipper
    finally:
        bed.down(quiet=True)


def wipe_host(clipper: Clipper, name: str) -> None:
    """Make ``name`` a fresh Docker host again: no containers, no images, no uploads."""
    with connection_for(clipper.inventory.host(name)) as conn:
        conn.run(
            "docker rm -f $(docker ps -aq) >/dev/null 2>&1; "
            "docker image prune -af >/dev/null; docker builder prune -af >/dev/null; "
            "rm -rf /var/lib/clipper-deploy/*",
            hide=True,
            warn=True,
            in_stream=False,
        )


def median(values: list[float]) -> float:
    return statistics.median(values)


def show(values: list[float]) -> str:
    return f"{median(values):6.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})"

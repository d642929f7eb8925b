"""Helpers for testing clipper-deploy (and code built on it) against real test beds.

The test suite uses beds with their own prefixes and subnets, so running the tests never
touches a bed a person brought up with ``invoke testbed.up`` (prefix ``cdtb``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from clipper_deploy.testbed.layout import BedLayout

SUITE_BED = {
    "prefix": os.environ.get("CLIPPER_TEST_BED_PREFIX", "cdts"),
    "subnet": os.environ.get("CLIPPER_TEST_BED_SUBNET", "10.214.0.0/24"),
}
"""The bed shared by a test session. ``CLIPPER_TEST_BED_PREFIX``/``_SUBNET`` let two test
sessions run side by side on one machine, each with its own bed."""

LIFECYCLE_BED = {
    "prefix": SUITE_BED["prefix"][:3] + "l",
    "subnet": os.environ.get("CLIPPER_TEST_LIFECYCLE_SUBNET", "10.215.0.0/24"),
}
"""A bed that tests bring up and tear down (crash recovery, teardown checks)."""


TEST_BEDS_DIR = Path(tempfile.gettempdir()) / f"clipper-deploy-test-beds-{SUITE_BED['prefix']}"
"""Fixed, so that an interrupted run's beds can be found and removed by the next one."""


def suite_layout(hosts: int) -> BedLayout:
    return BedLayout(directory=TEST_BEDS_DIR / "suite", hosts=hosts, **SUITE_BED)


def lifecycle_layout(hosts: int) -> BedLayout:
    return BedLayout(directory=TEST_BEDS_DIR / "lifecycle", hosts=hosts, **LIFECYCLE_BED)


def all_test_layouts() -> list[BedLayout]:
    """Every bed the suite may have made (for cleanup after an interrupted run)."""
    return [suite_layout(1), lifecycle_layout(1)]

"""Helpers for testing clipper-deploy (and code built on it) against real test beds.

The test suite uses beds with their own prefixes and subnets, so running the tests never
touches a bed a person brought up with ``invoke testbed.up`` (prefix ``cdtb``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from clipper_deploy.testbed.layout import BedLayout

TEST_BEDS_DIR = Path(tempfile.gettempdir()) / "clipper-deploy-test-beds"
"""Fixed, so that an interrupted run's beds can be found and removed by the next one."""

SUITE_BED = {"prefix": "cdts", "subnet": "10.214.0.0/24"}
"""The bed shared by a test session (hosts are added as tests ask for them)."""

LIFECYCLE_BED = {"prefix": "cdtl", "subnet": "10.215.0.0/24"}
"""A bed that tests bring up and tear down (crash recovery, teardown checks)."""


def suite_layout(hosts: int) -> BedLayout:
    return BedLayout(directory=TEST_BEDS_DIR / "suite", hosts=hosts, **SUITE_BED)


def lifecycle_layout(hosts: int) -> BedLayout:
    return BedLayout(directory=TEST_BEDS_DIR / "lifecycle", hosts=hosts, **LIFECYCLE_BED)


def all_test_layouts() -> list[BedLayout]:
    """Every bed the suite may have made (for cleanup after an interrupted run)."""
    return [suite_layout(1), lifecycle_layout(1)]

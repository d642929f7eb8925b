"""Shared fixtures: the registry-free base image tarball and the suite's test bed.

Test beds use their own prefixes and subnets (:mod:`clipper_deploy.testing`), so running the
suite never touches a bed brought up by hand with ``invoke testbed.up``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clipper_deploy.images.base import BaseImageSpec
from clipper_deploy.images.build import build_base_tarball
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testing import suite_layout

SUITE_HOSTS = 3


@pytest.fixture(scope="session")
def base_image() -> tuple[BaseImageSpec, Path]:
    """The default base image's spec and its cached root file system tarball."""
    spec = BaseImageSpec()
    return spec, build_base_tarball(spec)


@pytest.fixture(scope="session")
def suite_bed() -> Iterator[Testbed]:
    """A 3-host bed shared by the session's test-bed tests; torn down at the end."""
    bed = Testbed(suite_layout(SUITE_HOSTS))
    bed.up(fresh=True)
    try:
        yield bed
    finally:
        bed.down()

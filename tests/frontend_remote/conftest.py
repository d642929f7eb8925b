"""Fixtures for the remote-frontend tests: a bed of their own, where ``[clipper]`` is h1
(reached over SSH, not local) and ``[model_hosts]`` are h2 and h3.

The bed is the lifecycle bed (its own prefix and subnet), brought up fresh for this module and
torn down at the end; the client's config directory (where the admin token is cached) is a
temporary directory, so nothing of the user's own is read or written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from remote_helpers import write_remote_inventory

from clipper_deploy import Clipper
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testing import lifecycle_layout


@pytest.fixture(scope="module")
def remote_bed(base_image: Any) -> Iterator[Testbed]:
    """A fresh 3-host bed, torn down after the module."""
    bed = Testbed(lifecycle_layout(3))
    bed.up(fresh=True)
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(scope="module")
def client_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The first client's config and cache directories (XDG_CONFIG_HOME is set for it)."""
    root = tmp_path_factory.mktemp("client-a")
    saved = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(root / "config")
    try:
        yield root
    finally:
        if saved is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = saved


@pytest.fixture(scope="module")
def remote_inventory(remote_bed: Testbed, client_dirs: Path) -> Path:
    return write_remote_inventory(remote_bed, client_dirs)


@pytest.fixture(scope="module")
def remote_clipper(remote_inventory: Path) -> Iterator[Clipper]:
    """A Clipper whose frontend is on h1; the container is removed at the end."""
    clipper = Clipper(remote_inventory, connect_timeout=10.0)
    try:
        yield clipper
    finally:
        try:
            clipper.stop()
        except Exception as exc:  # the bed goes down next anyway
            print(f"stopping the remote frontend failed: {exc}")

"""Fixtures for the dashboard's browser test: a frontend of its own on the suite bed, the seed
example deployed to two hosts, a bounded steady load, and Debian's headless Chromium.

The frontend has its own ports and state directory (beside any other frontend of the suite on
the same bed); the model's containers are removed and the frontend is stopped afterwards.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import browser

from clipper_deploy import Clipper
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testbed.files import KNOWN_HOSTS_VAR

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
"""Screenshots of the run (gitignored)."""
PORTS = {"clipper_query_port": 1537, "clipper_admin_port": 1538, "clipper_replica_port": 7200}
HOSTS = ("h1", "h2")
MODEL, APP = "example_model", "example"


def write_inventory(bed: Testbed, directory: Path) -> Path:
    """An inventory of the bed's h1 and h2 for this test's own frontend (own ports, state)."""
    layout = bed.layout
    ports = " ".join(f"{k}={v}" for k, v in PORTS.items())
    hosts = "\n".join(f"{h} ansible_host={layout.host(h).address}" for h in HOSTS)
    path = directory / "inventory.ini"
    path.write_text(
        f"""\
[clipper]
control ansible_host={layout.bridge_address} ansible_connection=local \
clipper_state_dir=frontend {ports}

[model_hosts]
{hosts}

[model_hosts:vars]
ansible_user=root
ansible_ssh_private_key_file={layout.client_key}

[all:vars]
{KNOWN_HOSTS_VAR}={layout.known_hosts}
"""
    )
    return path


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def clipper(suite_bed: Testbed, base_image, tmp_path_factory) -> Iterator[Clipper]:
    """This test's frontend on the bed; afterwards the model's containers go and it stops."""
    path = write_inventory(suite_bed, tmp_path_factory.mktemp("dashboard"))
    clipper = Clipper(path, connect_timeout=5, ready_timeout=120)
    clipper.start()
    try:
        yield clipper
    finally:
        try:
            clipper.stop_models(MODEL)
        finally:
            clipper.stop()


@pytest.fixture(scope="module")
def driver(suite_bed: Testbed, tmp_path_factory):
    """Headless Chromium that may reach only loopback and the bed's subnet."""
    missing = browser.available()
    if missing:
        pytest.fail(missing)
    profile = tmp_path_factory.mktemp("chromium")
    d = browser.start(suite_bed.layout.subnet, profile)
    try:
        yield d
    finally:
        d.quit()

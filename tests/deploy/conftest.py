"""Fixtures for the deploy tests: the suite's 3-host bed, its frontend, and a Clipper on it.

Everything is real: the frontend runs on the control machine, every deploy packages a live
function, ships it over SSH to the bed's hosts, builds it with each host's dockerd and waits
for the replicas to dial back. The session pays for the example's environment once per host
(h1 and h2); every later image of the same environment is a cached build of its last layers.

Helpers (host inspection, provoking a failure, inventory variants) are in
``deploy_helpers.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packaging"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import centered_predict
from deploy_helpers import CONNECT_TIMEOUT, CondaWorld, HostView, Transcript, host_views
from packaging_helpers import index_channel, make_conda_package

from clipper_deploy import Clipper
from clipper_deploy.testbed.bed import Testbed


@pytest.fixture(scope="session")
def transcript() -> Transcript:
    """Every line the session's Clippers printed."""
    return Transcript()


@pytest.fixture(scope="session")
def clipper(suite_bed: Testbed, base_image: Any, transcript: Transcript) -> Iterator[Clipper]:
    """A Clipper on the suite bed, with its frontend started (stopped at the end)."""
    clipper = Clipper(suite_bed.layout.inventory, say=transcript, connect_timeout=CONNECT_TIMEOUT)
    clipper.start()
    try:
        yield clipper
    finally:
        clipper.stop()


@pytest.fixture(scope="session")
def views(suite_bed: Testbed) -> dict[str, HostView]:
    """The bed's hosts as the control machine sees them (engine socket, upload directory)."""
    return host_views(suite_bed)


@pytest.fixture(scope="session")
def example_function() -> Callable[[Any], Any]:
    """The seed's ``centered_predict``, fitted once for the session."""
    return centered_predict.make()


# --------------------------------------------------------------------------- conda


def _channel(root: Path, *, conflict: bool = False, tinypkg: bool = True) -> str:
    make_conda_package(root, "linux-64", "python", "3.11.2", "0")
    make_conda_package(root, "linux-64", "liba", "1.0", "0")
    make_conda_package(root, "linux-64", "liba", "2.0", "0")
    make_conda_package(
        root, "linux-64", "libb", "1.0", "0", depends=["liba >=2" if conflict else "liba >=1"]
    )
    if tinypkg:
        make_conda_package(
            root,
            "noarch",
            "tinypkg",
            "0.1",
            "py_0",
            depends=["python >=3.11"],
            noarch="python",
            files={"site-packages/tinypkg/__init__.py": b"VALUE = 42\n"},
        )
    index_channel(root)
    return root.as_uri()


@pytest.fixture(scope="session")
def conda_world(tmp_path_factory: pytest.TempPathFactory) -> CondaWorld:
    """Real conda archives, indexed channels, and a prefix installed by py-rattler."""
    import rattler

    root = tmp_path_factory.mktemp("deploy-conda")
    client = _channel(root / "client")
    container = _channel(root / "container", tinypkg=False)
    conflict = _channel(root / "conflict", conflict=True, tinypkg=False)
    prefix = root / "env"

    async def install() -> None:
        specs = ["python ==3.11.2", "liba ==1.0", "libb", "tinypkg"]
        records = await rattler.solve([client], specs, platforms=["linux-64", "noarch"])
        await rattler.install(
            records, target_prefix=str(prefix), cache_dir=str(root / "pkgs"), show_progress=False
        )

    asyncio.run(install())
    return CondaWorld(prefix, client, container, conflict)

"""Real parts for the packaging tests: conda channels, a conda prefix, a shared wheel cache.

The conda channels are built here from real conda package archives (``.tar.bz2`` with
``info/index.json`` and ``info/paths.json``) and indexed with py-rattler; the prefix is
installed from one of them with py-rattler. Nothing is mocked: the solver and the installer run
for real, and pip talks to the configured package index (wheels are cached for the session).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging_helpers import PLACEHOLDER, index_channel, make_conda_package

from clipper_deploy.packaging import Environment, capture_environment, shutdown_workers
from clipper_deploy.packaging.selection import RUNTIME_PACKAGES

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "examples"))


def _common_packages(channel: Path, *, conflict: bool = False, missing: bool = True) -> None:
    make_conda_package(channel, "linux-64", "python", "3.11.2", "0")
    make_conda_package(
        channel,
        "noarch",
        "tinypkg",
        "0.1",
        "py_0",
        depends=["python >=3.11"],
        noarch="python",
        files={
            "site-packages/tinypkg/__init__.py": b"VALUE = 42\n",
            "site-packages/tinypkg-0.1.dist-info/METADATA": (
                b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n"
            ),
        },
    )
    make_conda_package(
        channel,
        "noarch",
        "tinydata",
        "1.0",
        "0",
        noarch="generic",
        files={"share/tinydata/where.txt": f"prefix={PLACEHOLDER}\n".encode()},
        prefix_files=["share/tinydata/where.txt"],
    )
    make_conda_package(channel, "linux-64", "liba", "1.0", "0")
    make_conda_package(channel, "linux-64", "liba", "2.0", "0")
    make_conda_package(
        channel, "linux-64", "libb", "1.0", "0", depends=["liba >=2" if conflict else "liba >=1"]
    )
    if missing:
        make_conda_package(channel, "linux-64", "libmissing", "1.0", "0")


@dataclasses.dataclass(frozen=True)
class Channels:
    """The test's conda channels, as ``file://`` URLs."""

    client: str
    container: str
    conflict: str
    root: Path


@pytest.fixture(scope="session")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Channels:
    """``client`` (what the prefix was installed from), ``container`` (lacks ``libmissing``)
    and ``conflict`` (its ``libb`` needs ``liba >=2``, the prefix has ``liba 1.0``)."""
    root = tmp_path_factory.mktemp("conda-channels")
    client, container, conflict = root / "client", root / "container", root / "conflict"
    _common_packages(client)
    _common_packages(container, missing=False)
    _common_packages(conflict, conflict=True, missing=False)
    for channel in (client, container, conflict):
        index_channel(channel)
    return Channels(client.as_uri(), container.as_uri(), conflict.as_uri(), root)


@pytest.fixture(scope="session")
def conda_prefix(channels: Channels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conda prefix installed with py-rattler from the ``client`` channel."""
    import rattler

    prefix = tmp_path_factory.mktemp("conda-env") / "env"
    specs = ["python ==3.11.2", "tinypkg", "tinydata", "liba ==1.0", "libb", "libmissing"]

    async def install() -> None:
        records = await rattler.solve([channels.client], specs, platforms=["linux-64", "noarch"])
        await rattler.install(
            records,
            target_prefix=str(prefix),
            cache_dir=str(tmp_path_factory.mktemp("rattler-pkgs")),
            show_progress=False,
        )

    asyncio.run(install())
    return prefix


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One client cache for the session: each wheel is fetched from the index once."""
    return tmp_path_factory.mktemp("clipper-cache")


@pytest.fixture(scope="session")
def client_env() -> Environment:
    """The running interpreter's environment (no conda)."""
    return capture_environment(conda_prefix="")


@pytest.fixture(scope="session")
def small_env(client_env: Environment) -> Environment:
    """The client's environment cut down to what the runtime needs (few downloads)."""
    keep = [p for p in client_env.pip if p.key in RUNTIME_PACKAGES]
    return dataclasses.replace(client_env, pip=tuple(keep))


@pytest.fixture
def in_conda(conda_prefix: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ "Running inside conda": ``CONDA_PREFIX`` points at the test prefix."""
    monkeypatch.setenv("CONDA_PREFIX", str(conda_prefix))
    return conda_prefix


@pytest.fixture
def bundles_dir(tmp_path: Path) -> Path:
    """A fresh bundles directory for one test."""
    return tmp_path / "bundles"


@pytest.fixture
def isolated_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip without this machine's configuration (no extra indexes or find-links)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _stop_round_trip_workers() -> Iterator[None]:
    yield
    shutdown_workers()


@pytest.fixture(scope="session", autouse=True)
def _not_inside_conda() -> Iterator[None]:
    """Tests run "outside conda" unless they ask for the test prefix (``in_conda``): a real
    ``CONDA_PREFIX`` on the machine must not send the solver to a remote channel."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CONDA_PREFIX", raising=False)
        yield

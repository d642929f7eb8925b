"""A user's own environment: the built wheel installed into a fresh venv with its stock pip.

What a user gets is ``pip install`` of the package with the pip they have, so these tests never
use the repository's ``.venv`` for the code under test: they build the wheel, make a venv with
``python -m venv`` (its pip as ensurepip ships it, not upgraded), install the wheel plus what a
data scientist's notebook environment holds (scikit-learn, ipykernel, nbclient), and run
everything from a working directory outside the repository.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from install_helpers import REPO, USER_PACKAGES, UserEnv, write_user_inventory

from clipper_deploy import Clipper
from clipper_deploy.testbed.bed import Testbed


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from the source tree as a release would be."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("clipper_deploy-*.whl")
    return wheel


@pytest.fixture(scope="session")
def user_env(built_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> UserEnv:
    """``python -m venv`` + ``pip install <wheel> scikit-learn ipykernel nbclient``, stock pip."""
    root = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    started = time.monotonic()
    install = subprocess.run(
        [
            str(root / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            str(built_wheel),
            *USER_PACKAGES,
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return UserEnv(root, built_wheel, time.monotonic() - started)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory outside the repository."""
    path = tmp_path / "work"
    path.mkdir()
    assert REPO not in path.parents
    return path


@pytest.fixture
def user_inventory(suite_bed: Testbed, workdir: Path) -> Iterator[Path]:
    """The user's inventory in ``workdir``; afterwards the user's containers and frontend are
    removed (from here, so a crashed user script leaves nothing behind)."""
    path = write_user_inventory(suite_bed, workdir)
    yield path
    clipper = Clipper(path, say=lambda _line: None)
    try:
        clipper.stop_models("example_model")
    finally:
        clipper.stop()

"""The platform a bundle is built for: the container's Python, libc and architecture.

The default Python is the client's (a cloudpickle payload loads only in the same major.minor),
in the project's base image for it (Debian bookworm for 3.11, trixie for 3.13), on x86_64 with
glibc 2.36 assumed (bookworm's; wheels for it also run on trixie). Everything here is pure:
pip's platform tags, the conda subdirs and the virtual packages the conda solver must assume.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clipper_deploy.images import base as base_images

DEFAULT_TARGET_PYTHON = "3.11"
"""The Python a :class:`Target` describes when none is given."""
CONDA_PREFIX_IN_IMAGE = "/opt/conda"
VENV_IN_IMAGE = "/opt/venv"
MODEL_PATH_IN_IMAGE = "/model"
"""Where a replica finds its model files (the bundle's ``model/``, mounted read-only)."""

_PYTHON_VERSION = re.compile(r"^(\d+)\.(\d+)$")
_OLDEST_MANYLINUX_GLIBC_MINOR = 5  # manylinux1 is glibc 2.5


def default_base_image() -> str:
    """The registry-free image `invoke base-image` builds for the client's Python; raises
    :class:`~clipper_deploy.images.base.UnsupportedPythonError` for a Python Debian lacks."""
    return base_images.BaseImageSpec().tag


def default_target_python() -> str:
    """The client's major.minor: what the container's Python must be."""
    return base_images.client_python()


@dataclass(frozen=True)
class Target:
    """A Linux container platform: ``python`` is ``"major.minor"``."""

    python: str = DEFAULT_TARGET_PYTHON
    glibc: tuple[int, int] = (2, 36)
    arch: str = "x86_64"
    linux_kernel: str = "6.1"

    def __post_init__(self) -> None:
        if not _PYTHON_VERSION.match(self.python):
            raise ValueError(f"target python must look like '3.11', got {self.python!r}")

    @property
    def python_nodot(self) -> str:
        """``"311"`` for Python 3.11."""
        return self.python.replace(".", "")

    @property
    def abi(self) -> str:
        """The CPython ABI tag, e.g. ``cp311``."""
        return f"cp{self.python_nodot}"

    @property
    def conda_subdir(self) -> str:
        """The conda platform directory, ``linux-64`` for x86_64."""
        return {"x86_64": "linux-64", "aarch64": "linux-aarch64"}[self.arch]

    @property
    def conda_subdirs(self) -> tuple[str, str]:
        """The subdirs the solver may pick from: the platform's and ``noarch``."""
        return (self.conda_subdir, "noarch")

    def pip_platforms(self) -> list[str]:
        """Every manylinux tag the target's glibc can run, newest first.

        pip does not expand ``manylinux_2_X`` tags by itself, so all of them are listed, then the
        legacy aliases (``manylinux2014`` = 2.17, ``manylinux2010`` = 2.12, ``manylinux1`` = 2.5).
        """
        major, minor = self.glibc
        tags = [
            f"manylinux_{major}_{m}_{self.arch}"
            for m in range(minor, _OLDEST_MANYLINUX_GLIBC_MINOR - 1, -1)
        ]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{alias}_{self.arch}" for m, alias in legacy.items() if m <= minor]
        return tags

    def describe(self) -> str:
        """A short human description, used in messages."""
        return f"Linux {self.arch}, glibc {self.glibc[0]}.{self.glibc[1]}, CPython {self.python}"

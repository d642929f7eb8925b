"""The default base image of model containers, described without building it.

No registry is needed anywhere: the base image is a Debian root file system made by
``mmdebstrap`` on the client and turned into an image with ``docker import`` on each host.
Its ``python3`` must have the client's major.minor so cloudpickle payloads load, so the
Debian suite follows from the client's Python version.

A user with a registry can set any image instead (e.g. ``python:3.11-slim``); the deploy then
lets the host pull it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts import docker_commands

DEBIAN_SUITE_OF_PYTHON: dict[str, str] = {
    "3.11": "bookworm",
    "3.13": "trixie",
}
"""Debian suites whose default ``python3`` has the given major.minor."""

PACKAGES = ("python3", "python3-venv", "ca-certificates")
"""What model containers need beyond Debian's minimal base: a Python that can make a venv."""

SLIMMING = (
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
"""dpkg path filters: documentation and translations are not needed in a model container."""

IMAGE_REPOSITORY = "clipper-deploy/base"


class BaseImageError(ClipperDeployError, RuntimeError):
    """The base image cannot be made for this client; the message says why and what to do."""


class UnsupportedPythonError(BaseImageError):
    """No Debian release has the client's Python as its ``python3``."""


def client_python() -> str:
    """The major.minor of the Python running this code, e.g. ``"3.11"``."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class BaseImageSpec:
    """What goes into the base image; equal specs give the same cached tarball and tag."""

    python: str = field(default_factory=lambda: client_python())
    packages: tuple[str, ...] = PACKAGES
    variant: str = "minbase"

    def __post_init__(self) -> None:
        if self.python not in DEBIAN_SUITE_OF_PYTHON:
            known = " and ".join(f"{v} ({s})" for v, s in DEBIAN_SUITE_OF_PYTHON.items())
            raise UnsupportedPythonError(
                f"This client runs Python {self.python}, but the registry-free base image "
                f"exists only for the Python versions Debian ships as python3: {known}. A "
                f"model container needs the client's Python {self.python} to load the "
                "pickled function; nothing was packaged or copied. Either use a base image "
                f"with Python {self.python} that your hosts can pull from a registry (e.g. "
                f"Clipper(..., base_image='python:{self.python}-slim')), or deploy from a "
                f"Python {' or '.join(DEBIAN_SUITE_OF_PYTHON)} environment."
            )

    @property
    def suite(self) -> str:
        return DEBIAN_SUITE_OF_PYTHON[self.python]

    @property
    def digest(self) -> str:
        """Short hash of everything that shapes the root file system."""
        recipe = {
            "suite": self.suite,
            "packages": sorted(self.packages),
            "variant": self.variant,
            "slimming": SLIMMING,
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        """The image name on hosts, e.g. ``clipper-deploy/base:py3.11-bookworm-1a2b3c4d5e6f``."""
        return f"{IMAGE_REPOSITORY}:py{self.python}-{self.suite}-{self.digest}"

    @property
    def tarball_name(self) -> str:
        return f"base-py{self.python}-{self.suite}-{self.digest}.tar"


def mmdebstrap_argv(spec: BaseImageSpec, output: str, python_version_file: str) -> list[str]:
    """Build the root file system into ``output`` (a tar), recording its Python version.

    The customize hook runs the image's own ``python3`` and writes its version to
    ``python_version_file``, so the build can fail if it does not match.
    """
    argv = [
        "mmdebstrap",
        "--quiet",
        f"--variant={spec.variant}",
        f"--include={','.join(spec.packages)}",
    ]
    argv += [f"--dpkgopt={option}" for option in SLIMMING]
    argv += [
        '--customize-hook=chroot "$1" python3 -c '
        "'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' > "
        f"{python_version_file}",
        '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
        spec.suite,
        output,
    ]
    return argv


def import_message(spec: BaseImageSpec) -> str:
    """The imported image's comment."""
    return f"clipper-deploy base image (Debian {spec.suite}, Python {spec.python})"


def import_argv(spec: BaseImageSpec, source: str = "-") -> list[str]:
    """``docker import`` the tarball (``-`` = standard input) as the spec's tag."""
    return docker_commands.import_image(spec.tag, import_message(spec), source)

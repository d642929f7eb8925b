"""Capture the client's environment: Python, cloudpickle, pip distributions, conda records.

Conda records are read from ``$CONDA_PREFIX/conda-meta/*.json`` directly, so no conda binary is
needed. A distribution whose ``.dist-info`` belongs to a conda record (or whose ``INSTALLER`` says
``conda``) is conda's; the others are pip's. The two are kept apart: conda packages go to the
conda layer, pip packages to the wheelhouse.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from clipper_deploy.packaging.installed import kept
from clipper_deploy.packaging.printer import Printer

_SUBDIRS = {
    "noarch",
    "linux-64",
    "linux-aarch64",
    "linux-ppc64le",
    "linux-32",
    "osx-64",
    "osx-arm64",
    "win-64",
    "win-32",
}
_ANACONDA = "https://conda.anaconda.org/"
_INFO_DIR = re.compile(r"^(?P<name>.+?)-(?P<version>[^-/]+)\.(dist-info|egg-info)$")


def canonical_name(name: str) -> str:
    """PEP 503 normalization: ``Scikit_Learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The normalized distribution name of a requirement: ``Scikit_Learn==1.9`` ->
    ``scikit-learn``."""
    return canonical_name(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])


@dataclass(frozen=True)
class PipPackage:
    """An installed Python distribution.

    ``local_url`` is set when it was installed from a local directory (editable or not): such a
    distribution is not on any index and its modules are pickled by value instead. ``requires``
    holds the normalized names of what it always requires (not extras).
    """

    name: str
    version: str
    local_url: str | None = None
    requires: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> str:
        """The normalized name."""
        return canonical_name(self.name)

    @property
    def pin(self) -> str:
        """``name==version``."""
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class CondaPackage:
    """One record of ``conda-meta``: what conda installed into the prefix."""

    name: str
    version: str
    build: str
    channel: str
    subdir: str = ""
    depends: tuple[str, ...] = ()
    python_dists: tuple[str, ...] = ()
    url: str = ""
    sha256: str = ""

    @property
    def channel_name(self) -> str:
        """The channel as conda prints it: ``conda-forge`` for anaconda.org, else the URL."""
        return channel_display_name(self.channel)

    @property
    def display(self) -> str:
        """``channel::name version build``, the form of the seed's warnings."""
        return f"{self.channel_name}::{self.name} {self.version} {self.build}"


@dataclass(frozen=True)
class Environment:
    """What the function was developed with; the container reproduces it."""

    python: str
    cloudpickle: str
    platform: str
    pip: tuple[PipPackage, ...] = ()
    conda: tuple[CondaPackage, ...] = ()
    conda_prefix: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def python_minor(self) -> str:
        """``"3.11"``."""
        return ".".join(self.python.split(".")[:2])

    def pip_version(self, name: str) -> str | None:
        """The installed version of the pip distribution ``name``, if any."""
        key = canonical_name(name)
        return next((p.version for p in self.pip if p.key == key), None)

    def summary(self) -> str:
        """One line for the user."""
        conda = f", {len(self.conda)} conda packages from {self.conda_prefix}" if self.conda else ""
        return (
            f"Python {self.python} ({self.platform}), cloudpickle {self.cloudpickle}, "
            f"{len(self.pip)} pip distributions{conda}"
        )


def channel_base(channel: str) -> str:
    """Strip a trailing subdir and slash: ``.../conda-forge/linux-64/`` -> ``.../conda-forge``."""
    text = channel.rstrip("/")
    head, _, tail = text.rpartition("/")
    if head and tail in _SUBDIRS:
        text = head
    return text


def channel_display_name(channel: str) -> str:
    """``https://conda.anaconda.org/conda-forge/linux-64`` -> ``conda-forge``."""
    base = channel_base(channel)
    if base.startswith(_ANACONDA):
        return base[len(_ANACONDA) :]
    return base


def python_dists_of(files: Iterable[str]) -> tuple[str, ...]:
    """Normalized names of the Python distributions whose metadata is among ``files``."""
    names: set[str] = set()
    for path in files:
        for part in path.split("/"):
            match = _INFO_DIR.match(part)
            if match:
                names.add(canonical_name(match.group("name")))
    return tuple(sorted(names))


def parse_conda_record(data: Mapping[str, Any]) -> CondaPackage:
    """Turn one ``conda-meta/*.json`` document into a :class:`CondaPackage`."""
    files = data.get("files") or [p.get("_path", "") for p in _paths(data)]
    channel = str(data.get("channel") or "")
    if not channel and data.get("url"):
        channel = str(data["url"]).rsplit("/", 2)[0]
    return CondaPackage(
        name=str(data["name"]),
        version=str(data["version"]),
        build=str(data.get("build") or data.get("build_string") or ""),
        channel=channel_base(channel) if channel else "",
        subdir=str(data.get("subdir") or ""),
        depends=tuple(str(d) for d in data.get("depends") or ()),
        python_dists=python_dists_of(files),
        url=str(data.get("url") or ""),
        sha256=str(data.get("sha256") or ""),
    )


def _paths(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    paths_data = data.get("paths_data") or {}
    return list(paths_data.get("paths") or [])


def read_conda_meta(prefix: str | os.PathLike[str]) -> tuple[CondaPackage, ...]:
    """Every conda record of ``prefix``, sorted by name (no conda binary needed)."""
    meta = Path(prefix) / "conda-meta"
    records: list[CondaPackage] = []
    if not meta.is_dir():
        return ()
    for path in sorted(meta.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "name" in data and "version" in data:
            records.append(parse_conda_record(data))
    return tuple(sorted(records, key=lambda r: r.name))


def installed_distributions(
    path: list[str] | None = None,
) -> list[tuple[importlib.metadata.Distribution, PipPackage]]:
    """Every distribution visible on ``path`` (default ``sys.path``), first one of a name wins
    (read again only when the path's distributions change: :mod:`.installed`)."""
    return list(kept("installed_distributions", path or None, lambda: _read_distributions(path)))


def _read_distributions(
    path: list[str] | None,
) -> list[tuple[importlib.metadata.Distribution, PipPackage]]:
    found: dict[str, tuple[importlib.metadata.Distribution, PipPackage]] = {}
    dists = (
        importlib.metadata.distributions(path=path) if path else importlib.metadata.distributions()
    )
    for dist in dists:
        name = dist.metadata["Name"]
        if not name:
            continue
        key = canonical_name(name)
        url = local_url_of(dist)
        if key not in found:
            found[key] = (dist, PipPackage(name, dist.version, url, required_names(dist)))
        elif url and not found[key][1].local_url:
            # A stray .egg-info next to a project shadows the editable install's metadata.
            first, package = found[key]
            found[key] = (
                first,
                PipPackage(package.name, package.version, url, package.requires),
            )
    return [found[key] for key in sorted(found)]


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def required_names(dist: importlib.metadata.Distribution) -> tuple[str, ...]:
    """The normalized names ``dist`` requires, leaving out those only its extras need."""
    names = set()
    for requirement in dist.requires or ():
        requirement_part, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        match = _REQUIREMENT_NAME.match(requirement_part)
        if match:
            names.add(canonical_name(match.group(1)))
    return tuple(sorted(names))


def local_url_of(dist: importlib.metadata.Distribution) -> str | None:
    """The ``file://`` URL a distribution was installed from, if it came from a local directory.

    pip records such installs (editable or ``pip install ./dir``) in ``direct_url.json`` with a
    ``dir_info`` key.
    """
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    return str(info.get("url", "")) if "dir_info" in info else None


def split_pip_and_conda(
    dists: list[tuple[importlib.metadata.Distribution, PipPackage]],
    conda: tuple[CondaPackage, ...],
) -> tuple[PipPackage, ...]:
    """The distributions pip installed: those no conda record owns."""
    owned = {name for record in conda for name in record.python_dists}
    pip: list[PipPackage] = []
    for dist, package in dists:
        installer = (dist.read_text("INSTALLER") or "").strip().lower()
        if package.key in owned or (conda and installer == "conda"):
            continue
        pip.append(package)
    return tuple(pip)


def capture_environment(
    conda_prefix: str | os.PathLike[str] | None = None, *, path: list[str] | None = None
) -> Environment:
    """Capture the running interpreter's environment.

    ``conda_prefix`` defaults to ``$CONDA_PREFIX``; ``path`` (default ``sys.path``) is where
    distributions are looked up.
    """
    prefix = os.environ.get("CONDA_PREFIX") if conda_prefix is None else os.fspath(conda_prefix)
    conda = read_conda_meta(prefix) if prefix else ()
    dists = installed_distributions(path)
    return Environment(
        python=platform.python_version(),
        cloudpickle=cloudpickle.__version__,
        platform=f"{sys.platform}-{platform.machine()}",
        pip=split_pip_and_conda(dists, conda),
        conda=conda,
        conda_prefix=prefix if conda else None,
    )


def report_environment(env: Environment, printer: Printer) -> None:
    """Print the seed's ``Supplied environment details`` and a one-line summary."""
    printer.line("Supplied environment details")
    printer.line(f"  {env.summary()}")

"""The pip environment, installed once on the client for the container: a layer hosts unpack.

The resolved wheels are installed with the client's own pip into a directory, for the target
platform (``pip install --target DIR --platform ... --no-deps --no-index``, each wheel already
verified against its sha256), compiled to bytecode with ``unchecked-hash`` pycs (valid whatever
the files' times, so replicas import without compiling), and written as a reproducible gzip
tar of the venv's ``site-packages`` under its path in the image (``opt/venv/lib/...``), so it
is a Docker layer as it is. The tar is cached by what shapes it (the wheel set, the target,
the conda prefix it must see), so bundling the same environment again costs nothing, and every
host gets the same bytes: no pip runs on a host, which only unpacks the layer (``docker load``
of the client-made image, or ``ADD`` in a build), and a new function version never touches it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clipper_deploy.packaging.cache import Cache, digest, file_sha256, read_json, write_json
from clipper_deploy.packaging.errors import EnvLayerError
from clipper_deploy.packaging.layer_tar import write_layer_tar
from clipper_deploy.packaging.pip_resolve import Wheel, pip_argv, target_options
from clipper_deploy.packaging.printer import Printer
from clipper_deploy.packaging.target import VENV_IN_IMAGE, Target

LAYER_FORMAT = 2
"""Bumped when the layer's layout changes, so old cached layers are not reused."""
COMPRESSLEVEL = 1
"""gzip level: about 3.3x smaller than the tree at a fraction of level 6's time."""
SITE_PACKAGES_LAYER = "env/site-packages.tar.gz"
"""Where a bundle (a model's or the frontend's) holds the layer."""
CONDA_PTH = "clipper-conda.pth"
"""Puts the conda prefix's site-packages on the venv's path."""


@dataclass(frozen=True)
class EnvLayer:
    """The cached ``site-packages`` tar, its sha256 and its diff ID (the hash of the
    uncompressed tar: how an image's config names the layer)."""

    path: Path
    sha256: str
    diff_id: str

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def site_packages_in_image(venv: str, target: Target) -> str:
    """Where the layer is unpacked: the image venv's ``site-packages``."""
    return f"{venv}/lib/python{target.python}/site-packages"


def layer_key(wheels: Sequence[Wheel], target: Target, conda_site_packages: str | None) -> str:
    """The cache key: everything that changes the layer's bytes."""
    return digest(
        {
            "format": LAYER_FORMAT,
            "python": target.python,
            "platforms": target.pip_platforms(),
            "wheels": sorted(w.sha256 for w in wheels),
            "conda_site_packages": conda_site_packages,
        }
    )


def install_argv(python: str, target: Target, site: str, wheel_files: Sequence[str]) -> list[str]:
    """``pip install`` of exactly these wheel files into ``site``, for the target platform."""
    argv = [*pip_argv(python), "install", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-deps", "--no-index", "--no-compile", "--target", site]
    return argv + target_options(target) + list(wheel_files)


def compile_argv(python: str, site: str) -> list[str]:
    """Bytecode for every module, never checked against its source (``unchecked-hash``): the
    image's files are never edited, and file times in a layer mean nothing."""
    return [
        python,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        site,
    ]


def build_env_layer(
    wheels: Sequence[Wheel],
    wheel_paths: Mapping[str, Path],
    target: Target,
    cache: Cache,
    *,
    printer: Printer,
    conda_site_packages: str | None = None,
    python: str | None = None,
) -> EnvLayer:
    """The layer of ``wheels`` (``wheel_paths``: cached file of each), from the cache or built
    once here (see the module docstring). Raises :class:`EnvLayerError` naming the wheel pip
    could not install."""
    key = layer_key(wheels, target, conda_site_packages)
    path = cache.root / "env" / f"{key}.tar.gz"
    meta_path = cache.root / "env" / f"{key}.json"
    meta = read_json(meta_path)
    if path.exists() and meta is not None and "diff_id" in meta:
        return EnvLayer(path, meta["sha256"], meta["diff_id"])
    python = python or sys.executable
    tmp_parent = cache.root / "tmp"
    tmp_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clipper-env-", dir=tmp_parent) as tmp:
        site = os.path.join(tmp, "site-packages")
        os.makedirs(site)
        files = [str(wheel_paths[w.filename]) for w in wheels]
        if files:
            _run(install_argv(python, target, site, files), "install the wheels")
            # Console scripts name this machine's interpreter; the runtime never runs them.
            shutil.rmtree(os.path.join(site, "bin"), ignore_errors=True)
            _run(compile_argv(python, site), "compile the installed modules")
        if conda_site_packages:
            Path(site, CONDA_PTH).write_text(conda_site_packages + "\n", encoding="utf-8")
        tar = Path(tmp) / "site-packages.tar.gz"
        diff_id = write_layer_tar(
            Path(site),
            tar,
            prefix=site_packages_in_image(VENV_IN_IMAGE, target),
            compresslevel=COMPRESSLEVEL,
        )
        sha256 = file_sha256(tar)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tar, path)
    write_json(meta_path, {"sha256": sha256, "diff_id": diff_id})
    printer.line(
        f"  installed {len(wheels)} wheel(s) for {target.describe()} into one layer "
        f"({path.stat().st_size / 2**20:.1f} MiB)"
    )
    return EnvLayer(path, sha256, diff_id)


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [
            line
            for line in (proc.stderr + proc.stdout).splitlines()
            if line.strip() and "is ignored: it is neither a file nor a directory" not in line
        ]
        tail = "\n".join(lines[-20:])
        raise EnvLayerError(
            f"Could not {what} for the container's environment layer. The wheels were "
            "resolved for the container's platform, so this points at a broken wheel in the "
            "cache: run again with refresh=True (or remove ~/.cache/clipper-deploy/wheels). "
            f"pip said:\n{tail}"
        )

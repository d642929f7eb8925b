"""The client-side cache: wheels and conda layers by content hash, resolutions by input hash.

Layout under the cache directory (default ``~/.cache/clipper-deploy``, or
``$CLIPPER_DEPLOY_CACHE``)::

    wheels/<sha256>/<file>.whl     one Linux wheel, verified against its hash
    pip/<key>.json                 a pip resolution: the wheel set for a set of pins
    conda/pkgs/                    rattler's package cache (conda archives, extracted)
    conda/repodata/                rattler's repodata cache
    conda/resolutions/<key>.json   a conda resolution: solved records and removed packages
    conda/layers/<key>.tar         a linked linux-64 prefix, ready to ADD to an image
    bundles/<sha256>/              bundles (the default bundles directory)

Bundling the same environment again reuses all of these and downloads nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipper_deploy.settings import default_cache_dir

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Cache:
    """Paths inside one cache directory."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None) -> Cache:
        """The cache at ``root`` (default :func:`default_cache_dir`)."""
        return cls(Path(root) if root is not None else default_cache_dir())

    def wheel(self, sha256: str, filename: str) -> Path:
        return self.root / "wheels" / sha256 / filename

    def pip_resolution(self, key: str) -> Path:
        return self.root / "pip" / f"{key}.json"

    @property
    def conda_pkgs(self) -> Path:
        return self.root / "conda" / "pkgs"

    @property
    def conda_repodata(self) -> Path:
        return self.root / "conda" / "repodata"

    def conda_resolution(self, key: str) -> Path:
        return self.root / "conda" / "resolutions" / f"{key}.json"

    def conda_layer(self, key: str) -> Path:
        return self.root / "conda" / "layers" / f"{key}.tar"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"


def digest(data: Any) -> str:
    """sha256 of the canonical JSON form of ``data`` (the key of a cached resolution)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: Path) -> Any | None:
    """The JSON document at ``path``, or ``None`` if it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Mapping[str, Any] | list[Any]) -> None:
    """Write ``data`` atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def store_file(source: Path, dest: Path) -> None:
    """Move ``source`` to ``dest`` atomically (copying across file systems)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    os.close(fd)
    try:
        try:
            os.replace(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

"""Helpers for the packaging tests: real conda archives, channel indexing, file listings."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"


def make_conda_package(
    channel: Path,
    subdir: str,
    name: str,
    version: str,
    build: str,
    *,
    depends: Sequence[str] = (),
    files: Mapping[str, bytes] | None = None,
    noarch: str | None = None,
    prefix_files: Sequence[str] = (),
) -> Path:
    """Write a real conda package archive (``.tar.bz2``) into ``channel/subdir``."""
    files = dict(files or {})
    target = channel / subdir
    target.mkdir(parents=True, exist_ok=True)
    index: dict[str, object] = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "license": "MIT",
        "timestamp": 1_700_000_000_000,
    }
    if noarch:
        index["noarch"] = noarch
    else:
        index.update(arch="x86_64", platform="linux")
    paths = []
    for path, data in files.items():
        entry: dict[str, object] = {
            "_path": path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        if path in prefix_files:
            entry.update(prefix_placeholder=PLACEHOLDER, file_mode="text")
        paths.append(entry)
    members = {
        "info/index.json": json.dumps(index).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}).encode(),
        "info/files": "".join(p + "\n" for p in files).encode(),
        **files,
    }
    archive = target / f"{name}-{version}-{build}.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return archive


def index_channel(channel: Path) -> None:
    """Index ``channel`` with py-rattler (writes ``<subdir>/repodata.json``)."""
    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    (channel / "linux-64").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel))


def listing(path: Path) -> list[str]:
    """Every entry under ``path`` (relative), for "nothing was written" checks."""
    if not path.exists():
        return []
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))

"""Reproducible tar files of a directory: image layers a host only has to unpack.

Entries are sorted, owned by root, with mtime 0 and their own permissions, so the same tree
always gives the same bytes (gzip too: its header time is 0): an unchanged environment keeps
the shipper's content hashes and the host's image. Every path is the file's path in the image
(``prefix`` + its path under the tree, without the leading ``/``, with an entry for each parent
directory), so one tar is both a ``docker load`` layer and an ``ADD ... /`` source.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import tarfile
from collections.abc import Collection
from pathlib import Path
from typing import Any


def write_layer_tar(
    root: Path,
    dest: Path,
    *,
    prefix: str = "",
    compresslevel: int | None = None,
    skip: Collection[str] = (),
) -> str:
    """Write the tree under ``root`` to ``dest`` as the image path ``prefix`` (gzip-compressed
    when ``compresslevel`` is given); paths in ``skip`` (relative to ``root``, POSIX) are left
    out. Returns the layer's diff ID: ``sha256:`` and the hash of the uncompressed tar, which is
    what Docker names the layer by."""
    entries: list[Path] = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(base)
        entries.extend(here / d for d in dirs)
        entries.extend(here / f for f in sorted(files))
    entries.sort(key=lambda p: p.relative_to(root).as_posix())
    prefix = prefix.strip("/")
    with open(dest, "wb") as raw:
        stream: Any = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0)
            if compresslevel is not None
            else raw
        )
        with stream:
            hashed = _Hashing(stream)
            with tarfile.open(fileobj=hashed, mode="w|", format=tarfile.GNU_FORMAT) as tar:
                for directory in parent_directories(prefix):
                    tar.addfile(directory_info(directory))
                for path in entries:
                    rel = path.relative_to(root).as_posix()
                    if rel not in skip:
                        _add(tar, path, f"{prefix}/{rel}" if prefix else rel)
    return hashed.diff_id


def parent_directories(path: str) -> list[str]:
    """``a``, ``a/b``, ``a/b/c`` for ``a/b/c``: the directories a layer's tar names first."""
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def directory_info(name: str, mode: int = 0o755, uid: int = 0) -> tarfile.TarInfo:
    """A root-owned (or ``uid``-owned) directory entry with mtime 0."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = uid
    info.uname = info.gname = "root" if uid == 0 else ""
    return info


def file_info(name: str, size: int, mode: int = 0o644) -> tarfile.TarInfo:
    """A root-owned regular file entry of ``size`` bytes with mtime 0."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    info.uname = info.gname = "root"
    return info


def link_info(name: str, target: str, mode: int = 0o777) -> tarfile.TarInfo:
    """A root-owned symbolic link entry to ``target`` with mtime 0."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, mode, 0
    info.uname = info.gname = "root"
    return info


class _Hashing:
    """A write-only file that hashes what passes through it (the uncompressed tar)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        return self._inner.write(data)

    def flush(self) -> None:
        self._inner.flush()

    @property
    def diff_id(self) -> str:
        return f"sha256:{self._sha.hexdigest()}"


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    st = path.lstat()
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        tar.addfile(link_info(name, os.readlink(path), mode))
    elif stat.S_ISDIR(st.st_mode):
        tar.addfile(directory_info(name, mode))
    elif stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            tar.addfile(file_info(name, st.st_size, mode), f)

"""Reproducible tar files of a directory, for image layers a host only has to unpack.

Entries are sorted, owned by root, with mtime 0 and their own permissions, so the same tree
always gives the same bytes (gzip too: its header time is 0): an unchanged environment keeps
Docker's layer cache and the shipper's content hashes.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from collections.abc import Collection
from pathlib import Path


def write_layer_tar(
    root: Path, dest: Path, *, compresslevel: int | None = None, skip: Collection[str] = ()
) -> None:
    """Write the tree under ``root`` to ``dest`` (gzip-compressed when ``compresslevel`` is
    given); paths in ``skip`` (relative, POSIX) are left out."""
    entries: list[Path] = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        here = Path(base)
        entries.extend(here / d for d in dirs)
        entries.extend(here / f for f in sorted(files))
    entries.sort(key=lambda p: p.relative_to(root).as_posix())
    with open(dest, "wb") as raw:
        stream = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0)
            if compresslevel is not None
            else raw
        )
        with stream, tarfile.open(fileobj=stream, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for path in entries:
                rel = path.relative_to(root).as_posix()
                if rel not in skip:
                    _add(tar, path, rel)


def _add(tar: tarfile.TarFile, path: Path, rel: str) -> None:
    st = path.lstat()
    info = tarfile.TarInfo(rel)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        tar.addfile(info)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        with open(path, "rb") as f:
            tar.addfile(info, f)

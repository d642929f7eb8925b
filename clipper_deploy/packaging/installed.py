"""What is installed on the client, read once per change instead of once per deploy.

Reading the installed distributions (``importlib.metadata``: every ``METADATA`` parsed, every
``RECORD`` read for the import names) costs about half a second in a notebook's environment,
and packaging asked three times per deploy. A redeploy in the same process sees the same
distributions unless something was installed or removed, so each answer is kept with a
stamp of the search path (every path entry's and every ``*.dist-info``/``*.egg-info``
entry's modification time, and its metadata file's): installing, removing, upgrading or
editing a distribution's metadata changes the stamp, and the next call reads again. A stamp
costs a directory listing and a ``stat`` per distribution (milliseconds).
"""

from __future__ import annotations

import importlib.metadata
import os
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_METADATA_FILES = ("METADATA", "PKG-INFO")
_kept: dict[tuple[str, tuple[str, ...]], tuple[Any, Any]] = {}
_lock = threading.Lock()


def path_stamp(path: Sequence[str]) -> tuple[Any, ...]:
    """The modification times that change when a distribution on ``path`` does."""
    stamp: list[Any] = []
    for entry in path:
        try:
            st = os.stat(entry or ".")
        except OSError:
            stamp.append((entry, None))
            continue
        stamp.append((entry, st.st_mtime_ns))
        if not stat.S_ISDIR(st.st_mode):
            continue
        try:
            children = list(os.scandir(entry or "."))
        except OSError:
            continue
        for child in children:
            if child.name.endswith((".dist-info", ".egg-info")):
                stamp.append((child.path, _mtime(child.path), *map(_mtime, _meta(child.path))))
    return tuple(stamp)


def kept(name: str, path: Sequence[str] | None, read: Callable[[], T]) -> T:
    """``read()``, or what it returned last for ``name`` on ``path`` (default ``sys.path``)
    if the path's stamp has not changed since."""
    entries = tuple(sys.path if path is None else path)
    stamp = path_stamp(entries)
    key = (name, entries)
    with _lock:
        last = _kept.get(key)
    if last is not None and last[0] == stamp:
        return last[1]
    value = read()
    with _lock:
        _kept[key] = (stamp, value)
    return value


def packages_distributions() -> dict[str, list[str]]:
    """``importlib.metadata.packages_distributions()``, kept while nothing changes (a copy:
    callers may change it)."""
    mapping = kept("packages_distributions", None, importlib.metadata.packages_distributions)
    return {top: list(dists) for top, dists in mapping.items()}


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _meta(directory: str) -> list[str]:
    return [os.path.join(directory, name) for name in _METADATA_FILES]

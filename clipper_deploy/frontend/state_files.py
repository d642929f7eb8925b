"""The fleet's audit log and locks, read by the frontend from its own state directory.

Deployers write both next to the frontend's state, in the same folder (the ``[clipper]`` host's
``clipper_state_dir``: :mod:`clipper_deploy.orchestration.operation`): ``audit.log`` (one JSON
line per deploy, rollout, rollback..., see :mod:`clipper_deploy.orchestration.audit`) and
``locks/<model>/holder.json`` (who runs an operation on a model now, see
:mod:`clipper_deploy.orchestration.lock`). A local frontend reads them as files of its
``--state-dir``; a remote one in its container, where the state directory is bound at the same
path (the deployer writes them over SSH, mode 0644, readable by the container's user).

Reads are bounded: the audit log's last :data:`AUDIT_TAIL_BYTES` only (an event line is under
4000 bytes, so that holds the last 64 events at least), at most :data:`MAX_LOCKS` locks of
:data:`MAX_HOLDER_BYTES` each. The tail is read again only when the file changed (size, mtime,
inode). Lines that are not JSON objects are skipped. This module parses the lines itself rather
than importing :mod:`~clipper_deploy.orchestration.audit`, which would bring the client's
dependencies (Fabric, rich) into the frontend's image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.log"
LOCKS_DIR = "locks"
HOLDER_FILE = "holder.json"
AUDIT_TAIL_BYTES = 256 * 1024
MAX_LOCKS = 256
MAX_HOLDER_BYTES = 64 * 1024


def tail_lines(path: Path, max_bytes: int = AUDIT_TAIL_BYTES) -> list[str]:
    """The complete lines among the last ``max_bytes`` of ``path`` (a line cut by the start of
    the window is dropped)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - max_bytes)
        f.seek(start)
        data = f.read(max_bytes)
    if start > 0:
        cut = data.find(b"\n")
        data = data[cut + 1 :] if cut >= 0 else b""
    return data.decode("utf-8", errors="replace").splitlines()


def parse_event_lines(lines: list[str]) -> list[dict[str, Any]]:
    """The lines that are JSON objects, in order; others are skipped."""
    events = []
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


class AuditTail:
    """The last events of ``<state_dir>/audit.log``, read again only when the file changed."""

    def __init__(self, state_dir: Path, max_bytes: int = AUDIT_TAIL_BYTES) -> None:
        self.path = state_dir / AUDIT_FILE
        self.max_bytes = max_bytes
        self._seen: tuple[int, int, int] | None = None
        self._events: list[dict[str, Any]] = []

    def read(self, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """The last ``limit`` events, oldest first, and why the log could not be read (``None``
        when it could, or when there is none yet)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._events = None, []
            return [], None
        except OSError as exc:
            return [], f"cannot read {self.path}: {exc.strerror or exc}"
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._seen:
            try:
                self._events = parse_event_lines(tail_lines(self.path, self.max_bytes))
            except OSError as exc:
                return [], f"cannot read {self.path}: {exc.strerror or exc}"
            self._seen = key
        return self._events[-limit:] if limit > 0 else [], None


def lock_holders(
    state_dir: Path, max_locks: int = MAX_LOCKS, max_bytes: int = MAX_HOLDER_BYTES
) -> list[dict[str, Any]]:
    """The held fleet locks: each lock's ``holder.json`` (with ``model`` set from the folder's
    name), sorted by model. A lock whose holder file cannot be read yet (it is being written)
    or is not JSON gives ``{"model": ..., "unreadable": reason}``."""
    locks = state_dir / LOCKS_DIR
    try:
        entries = sorted(os.scandir(locks), key=lambda e: e.name)[:max_locks]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        return [{"model": None, "unreadable": f"cannot list {locks}: {exc.strerror or exc}"}]
    holders = []
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        holder: dict[str, Any]
        try:
            with open(Path(entry.path) / HOLDER_FILE, "rb") as f:
                data = f.read(max_bytes + 1)
            loaded = json.loads(data) if len(data) <= max_bytes else None
            holder = loaded if isinstance(loaded, dict) else {"unreadable": "not a JSON object"}
        except FileNotFoundError:
            holder = {"unreadable": "holder.json is not written yet"}
        except (OSError, ValueError) as exc:
            holder = {"unreadable": str(exc)[:200]}
        holder["model"] = entry.name
        holders.append(holder)
    return holders

"""Small state files on the ``[clipper]`` host: where they live and how to run the commands.

The fleet lock and the audit log live under one root folder on the frontend host
(``/var/lib/clipper-deploy`` unless configured otherwise)::

    <root>/locks/<model>/holder.json    who holds a model's lock (lock.py)
    <root>/audit.log                    one JSON line per deploy, rollout, rollback... (audit.py)

Every remote command is a single POSIX shell line (``mkdir``, ``cat``, ``rm``, ``printf``,
``test``...) with every path and value quoted by :func:`shlex.quote`, so the same command
runs over SSH (a Fabric ``Connection``) and locally (a ``LocalConnection``).
"""

from __future__ import annotations

import re
import socket
from typing import Any, Protocol

from fabric.util import get_local_user

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts.upload import REMOTE_ROOT

__all__ = [
    "DEFAULT_ROOT",
    "Runner",
    "StateFileError",
    "check_model_name",
    "check_root",
    "host_of",
    "local_user",
    "run_script",
]

#: Where the lock and the audit log live on the ``[clipper]`` host: clipper-deploy's folder,
#: the same as on Docker hosts.
DEFAULT_ROOT = REMOTE_ROOT

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Runner(Protocol):
    """What the lock and the audit log need of a connection: Fabric's ``run()``."""

    def run(self, command: str, **kwargs: Any) -> Any: ...


class StateFileError(ClipperDeployError, RuntimeError):
    """A command on the state files failed (permissions, full disk, missing shell tool...).

    ``result`` is the command's Result (``.command``, ``.return_code``, ``.stdout``,
    ``.stderr``), ``host`` the connection's host.
    """

    def __init__(self, message: str, *, host: str, result: Any) -> None:
        self.host = host
        self.result = result
        super().__init__(message)


def check_model_name(model: str) -> str:
    """``model`` when it is safe as one path component; raises ``ValueError`` otherwise.

    Letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit, at most 128
    characters (Clipper's model names fit).
    """
    if not isinstance(model, str) or not _MODEL_NAME.match(model):
        raise ValueError(
            f"model name {model!r} cannot name a lock: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
    return model


def check_root(root: str) -> str:
    """``root`` without a trailing slash; raises ``ValueError`` unless it is an absolute path."""
    if not isinstance(root, str) or not root.startswith("/") or root.strip("/") == "":
        raise ValueError(
            f"state root {root!r} must be an absolute folder path below /, such as {DEFAULT_ROOT}"
        )
    return root.rstrip("/")


def local_user() -> str:
    """Who is deploying: ``user@machine`` of this process (``unknown`` when it cannot tell)."""
    try:
        user = get_local_user() or "unknown"
    except Exception:  # no passwd entry and no $USER: still deploy, say so
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def host_of(connection: Runner) -> str:
    """The connection's host for messages (``fabric.Connection.host``), or ``?``."""
    return str(getattr(connection, "host", None) or "?")


def run_script(
    connection: Runner,
    script: str,
    *,
    what: str,
    ok: tuple[int, ...] = (0,),
    error: type[StateFileError] = StateFileError,
) -> Any:
    """Run ``script`` on ``connection``; its Result when the exit code is in ``ok``.

    Output is hidden and stdin is not forwarded. Any other exit code raises ``error`` (a
    :class:`StateFileError`) saying ``what`` was being done, where, and the command's last
    error line. Connection failures (SSH errors) are not caught: they carry their own message.
    """
    result = connection.run(script, hide=True, warn=True, in_stream=False)
    if result.return_code not in ok:
        detail = _last_line(result.stderr) or _last_line(result.stdout) or "no output"
        raise error(
            f"{host_of(connection)}: cannot {what}: exit status {result.return_code}: {detail}",
            host=host_of(connection),
            result=result,
        )
    return result


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""

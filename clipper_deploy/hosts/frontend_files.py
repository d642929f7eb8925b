"""Shell lines for the frontend's files on its remote ``[clipper]`` host: builders only.

The state directory (default ``/var/lib/clipper-deploy/frontend``) belongs to the container's
user (``10001:10001``, mode 0700): the SQLite state, ``admin.token`` (0600, created by the
frontend at its first start) and ``frontend.log``. The fleet locks and the audit log live in
the same directory, written over SSH by the deploying user. Every path is quoted.
"""

from __future__ import annotations

import shlex

from clipper_deploy.frontend.tokens import ADMIN_TOKEN_FILE
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.settings import CONTAINER_USER

STATE_MODE = "700"


def prepare_state_dir(state_dir: str) -> str:
    """Create the state directory owned by the container's user, mode 0700 (idempotent)."""
    uid, gid = CONTAINER_USER.split(":")
    return f"install -d -o {uid} -g {gid} -m {STATE_MODE} {shlex.quote(state_dir)}"


def state_dir_ready(reading: str) -> bool:
    """True when a ``stat -c '%u:%g %a'`` reading shows the wanted owner and mode."""
    return reading == f"{CONTAINER_USER} {STATE_MODE}"


def read_token(state_dir: str) -> str:
    """Print the admin token: read as the SSH user, or through the running container (for a
    user in the ``docker`` group who cannot read the 0600 file)."""
    path = f"{state_dir}/{ADMIN_TOKEN_FILE}"
    through = dc.shell(["docker", "exec", dc.FRONTEND_CONTAINER, "cat", path])
    return f"cat {shlex.quote(path)} 2>/dev/null || {through}"


def rotate_token(state_dir: str) -> str:
    """Remove the admin token and restart the frontend, which creates a new one (0600) as the
    container's user at start (:func:`clipper_deploy.frontend.tokens.ensure_token`)."""
    path = shlex.quote(f"{state_dir}/{ADMIN_TOKEN_FILE}")
    return f"rm -f {path} && {dc.shell(dc.restart_frontend())} >/dev/null"


def log_tail(state_dir: str, lines: int) -> str:
    """The last ``lines`` lines of ``frontend.log`` (the frontend's own, rotated log)."""
    return f"tail -n {int(lines)} {shlex.quote(state_dir + '/frontend.log')}"

"""The fleet lock: one deploy, rollout or rollback per model at a time, across every deployer.

The lock lives on the ``[clipper]`` (frontend) host, which every deployer of a fleet reaches,
as in Kamal: ``mkdir <root>/locks/<model>`` is the atomic test-and-set (``mkdir`` fails when
the folder exists, on every POSIX system, locally or over SSH, in one command), and
``holder.json`` inside says who holds it::

    {"action": "rollout", "hostname": "laptop", "model": "iris", "pid": 4242,
     "started": "2024-05-01T10:00:00Z", "token": "9f0c...", "user": "alice@laptop",
     "version": "7"}

Use it around the work::

    with FleetLock(conn, model="iris", action="rollout", version="7", wait=30):
        ...  # only one deployer gets here at a time

A second deployer waits up to ``wait`` seconds (default: not at all) and then gets
:class:`LockHeld`, whose message names the holder, since when, the action and the version,
and says how to release a stale lock (``invoke lock.release MODEL``, which calls
:meth:`FleetLock.force_release`).

Releasing removes the lock only if it is still ours: the random ``token`` written at acquire
time must still be in ``holder.json`` (checked and removed in one remote command). A lock
that someone force-released and someone else took since is left alone.

The remote side uses only POSIX shell tools (``mkdir``, ``cat``, ``printf``, ``mv``,
``rm``, ``rmdir``, ``test``, ``case``), every value quoted with :func:`shlex.quote`. The
command builders (``*_command``) are pure and return one shell line each;
:class:`FleetLock` runs them.

Limits: the lock is advisory (it stops our tool, not someone running ``docker`` by hand) and
a lock held by a process that died stays until released by hand, since a remote host cannot
tell whether a deployer on another machine is still alive. When the holder ran on this
machine and its process is gone, :class:`LockHeld` says so.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from clipper_deploy.errors import ClipperDeployError

from .remote_files import (
    DEFAULT_ROOT,
    Runner,
    StateFileError,
    check_model_name,
    check_root,
    host_of,
    local_user,
    run_script,
)

__all__ = [
    "FleetLock",
    "LockError",
    "LockHeld",
    "acquire_command",
    "force_release_command",
    "lock_dir",
    "release_command",
    "status_command",
]

#: Exit status of the remote commands when the lock is someone else's.
HELD_STATUS = 75  # EX_TEMPFAIL
#: Exit status of the remote commands when there is no lock folder at all.
ABSENT_STATUS = 3
#: Exit status of the acquire command when ``mkdir`` failed but no lock folder is there: it
#: was released in between (try again) or the folder cannot be made (stderr says why).
VANISHED_STATUS = 76
#: How many times in a row :meth:`FleetLock.acquire` tries again after VANISHED_STATUS.
VANISHED_TRIES = 5

_HOLDER = "holder.json"


class LockError(StateFileError):
    """The lock could not be read, taken or released (not: it is held; see :class:`LockHeld`)."""


class LockHeld(ClipperDeployError):
    """Someone else holds the model's lock.

    ``holder`` is the holder's ``holder.json`` as a dict (``{"model": ...,
    "unreadable": reason}`` when the file is missing or corrupt), ``waited`` the seconds
    spent waiting for it, ``path`` the lock folder and ``host`` the host it is on.
    """

    def __init__(
        self,
        model: str,
        holder: dict[str, Any],
        *,
        path: str,
        host: str,
        waited: float = 0.0,
        now: datetime | None = None,
    ) -> None:
        self.model = model
        self.holder = holder
        self.path = path
        self.host = host
        self.waited = waited
        super().__init__(_held_message(model, holder, path, host, waited, now))


def lock_dir(root: str, model: str) -> str:
    """The lock folder of ``model`` under ``root``."""
    return f"{check_root(root)}/locks/{check_model_name(model)}"


def acquire_command(root: str, model: str, holder: dict[str, Any]) -> str:
    """Take the lock in one command: exit 0 taken, 75 held (``holder.json`` on stdout).

    Exit 76 when ``mkdir`` failed and yet no lock folder is there: released between the two
    checks (try again), or the folder cannot be created (stderr says why). ``holder.json`` is
    written to a temporary name and renamed, so a reader never sees half of it; if it cannot
    be written the folder is removed again. Any other exit status is an error.
    """
    path = lock_dir(root, model)
    d, holder_file = shlex.quote(path), shlex.quote(f"{path}/{_HOLDER}")
    tmp = shlex.quote(f"{path}/{_HOLDER}.tmp")
    locks = shlex.quote(path.rsplit("/", 1)[0])
    data = shlex.quote(json.dumps(holder, sort_keys=True))
    return (
        f"mkdir -p -- {locks} && "
        f"if err=$(mkdir -- {d} 2>&1); then "
        f"{{ printf '%s\\n' {data} > {tmp} && mv -f -- {tmp} {holder_file}; }} || "
        f"{{ rm -f -- {tmp} {holder_file}; rmdir -- {d}; exit 1; }}; "
        f"elif test -d {d}; then cat -- {holder_file} 2>/dev/null; exit {HELD_STATUS}; "
        f"else printf '%s\\n' \"$err\" >&2; exit {VANISHED_STATUS}; fi"
    )


def status_command(root: str, model: str) -> str:
    """Print ``holder.json``: exit 0 locked (empty output if unreadable), 3 not locked."""
    path = lock_dir(root, model)
    return (
        f"test -d {shlex.quote(path)} || exit {ABSENT_STATUS}; "
        f"cat -- {shlex.quote(f'{path}/{_HOLDER}')} 2>/dev/null; exit 0"
    )


def release_command(root: str, model: str, token: str) -> str:
    """Remove the lock if ``holder.json`` holds ``token``: exit 0 removed, 3 none, 75 not ours."""
    if not token or not token.isalnum():
        raise ValueError(f"lock token must be letters and digits, not {token!r}")
    path = lock_dir(root, model)
    d, holder_file = shlex.quote(path), shlex.quote(f"{path}/{_HOLDER}")
    tmp = shlex.quote(f"{path}/{_HOLDER}.tmp")
    return (
        f"test -d {d} || exit {ABSENT_STATUS}; "
        f'case "$(cat -- {holder_file} 2>/dev/null)" in '
        f"*{shlex.quote(json.dumps(token))}*) rm -f -- {holder_file} {tmp} && rmdir -- {d};; "
        f"*) exit {HELD_STATUS};; esac"
    )


def force_release_command(root: str, model: str) -> str:
    """Remove the lock whoever holds it; print its ``holder.json``. Exit 0 removed, 3 none."""
    path = lock_dir(root, model)
    d = shlex.quote(path)
    return (
        f"test -d {d} || exit {ABSENT_STATUS}; "
        f"cat -- {shlex.quote(f'{path}/{_HOLDER}')} 2>/dev/null; rm -rf -- {d}"
    )


class FleetLock:
    """The fleet-wide lock of one model, held on the host ``connection`` reaches.

    ``connection`` is a ``fabric.Connection`` or ``LocalConnection`` to the ``[clipper]`` host
    (anything with Fabric's ``run()``). ``action`` (``deploy``, ``rollout``, ``rollback``...)
    and ``version`` are recorded for whoever finds the lock held. ``wait`` and ``poll`` are
    what :meth:`acquire` gets when the lock is used as a context manager. ``clock``,
    ``sleep`` and ``now`` exist for tests.

    Raises ``ValueError`` for a model name that is not a safe path component or a root that is
    not absolute.
    """

    def __init__(
        self,
        connection: Runner,
        root: str = DEFAULT_ROOT,
        *,
        model: str,
        action: str = "deploy",
        version: str | None = None,
        wait: float = 0.0,
        poll: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connection = connection
        self.root = check_root(root)
        self.model = check_model_name(model)
        self.action = action
        self.version = None if version is None else str(version)
        self.wait = wait
        self.poll = poll
        self._clock = clock
        self._sleep = sleep
        self._now = now
        #: Our ``holder.json`` while we hold the lock, else ``None``.
        self.holder: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        """The lock folder on the ``[clipper]`` host."""
        return lock_dir(self.root, self.model)

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release` (as far as we know)."""
        return self.holder is not None

    def acquire(self, wait: float = 0.0, poll: float = 0.5) -> dict[str, Any]:
        """Take the lock, waiting up to ``wait`` seconds (checking every ``poll`` s) if held.

        Returns our holder record. Raises :class:`LockHeld` when it is still held after
        ``wait``, :class:`LockError` when the lock cannot be read or written (permissions...).
        """
        if self.holder is not None:
            raise RuntimeError(f"the lock of model {self.model} is already held by this object")
        if wait < 0 or poll <= 0:
            raise ValueError(f"wait must be >= 0 and poll > 0, not wait={wait!r} poll={poll!r}")
        start = self._clock()
        vanished = 0
        while True:
            holder = self._new_holder()
            last_try = vanished + 1 >= VANISHED_TRIES
            result = run_script(
                self.connection,
                acquire_command(self.root, self.model, holder),
                what=f"take the lock {self.path} of model {self.model}",
                ok=(0, HELD_STATUS) if last_try else (0, HELD_STATUS, VANISHED_STATUS),
                error=LockError,
            )
            if result.return_code == 0:
                self.holder = holder
                return holder
            if result.return_code == VANISHED_STATUS:
                vanished += 1  # released under our feet: try again at once
                continue
            vanished = 0
            waited = self._clock() - start
            if waited >= wait:
                theirs = self._parse(result.stdout)
                if "unreadable" in theirs:
                    # Probably taken this very moment: holder.json follows its folder closely.
                    settled = self._settled_status()
                    if settled is None:  # and released already: try again
                        continue
                    theirs = settled
                raise LockHeld(
                    self.model,
                    theirs,
                    path=self.path,
                    host=host_of(self.connection),
                    waited=waited,
                    now=self._now(),
                )
            self._sleep(min(poll, wait - waited))

    def release(self) -> bool:
        """Give the lock back; True when our lock was removed.

        False when there was nothing of ours to remove: we never took it, it is gone, or it
        was force-released and someone else holds it now (their lock is left alone). Raises
        :class:`LockError` when the remote command fails.
        """
        if self.holder is None:
            return False
        token = self.holder["token"]
        result = run_script(
            self.connection,
            release_command(self.root, self.model, token),
            what=f"release the lock {self.path} of model {self.model}",
            ok=(0, ABSENT_STATUS, HELD_STATUS),
            error=LockError,
        )
        self.holder = None
        return result.return_code == 0

    def status(self) -> dict[str, Any] | None:
        """The current holder's record, or ``None`` when the model is not locked.

        A lock folder without a readable ``holder.json`` gives ``{"model": ..., "unreadable":
        reason}``.
        """
        result = run_script(
            self.connection,
            status_command(self.root, self.model),
            what=f"read the lock {self.path} of model {self.model}",
            ok=(0, ABSENT_STATUS),
            error=LockError,
        )
        if result.return_code == ABSENT_STATUS:
            return None
        return self._parse(result.stdout)

    def force_release(self) -> dict[str, Any] | None:
        """Remove the lock whoever holds it (a stale lock); return the removed holder or None.

        For ``invoke lock.release MODEL`` after a deployer died holding the lock. The removed
        holder's process, if still running, will find its lock gone when it releases.
        """
        result = run_script(
            self.connection,
            force_release_command(self.root, self.model),
            what=f"remove the lock {self.path} of model {self.model}",
            ok=(0, ABSENT_STATUS),
            error=LockError,
        )
        if result.return_code == ABSENT_STATUS:
            return None
        if self.holder is not None and self.holder["token"] in result.stdout:
            self.holder = None
        return self._parse(result.stdout)

    def __enter__(self) -> FleetLock:
        self.acquire(wait=self.wait, poll=self.poll)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.release():
            warnings.warn(
                f"the lock of model {self.model} on {host_of(self.connection)} was no longer "
                "ours when the work finished (force-released?); nothing was removed",
                RuntimeWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        state = "held" if self.held else "not held"
        return f"<FleetLock {self.model} {self.action} on {host_of(self.connection)}: {state}>"

    # ------------------------------------------------------------------ helpers

    def _new_holder(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "hostname": socket.gethostname(),
            "model": self.model,
            "pid": os.getpid(),
            "started": _iso(self._now()),
            "token": secrets.token_hex(16),
            "user": local_user(),
            "version": self.version,
        }

    def _parse(self, text: str) -> dict[str, Any]:
        text = (text or "").strip()
        if not text:
            return {"model": self.model, "unreadable": f"{self.path}/{_HOLDER} is missing"}
        try:
            holder = json.loads(text)
        except ValueError:
            holder = None
        if not isinstance(holder, dict):
            return {"model": self.model, "unreadable": f"{self.path}/{_HOLDER} is not JSON"}
        return holder

    def _settled_status(self, tries: int = 3, pause: float = 0.1) -> dict[str, Any] | None:
        """The holder once its ``holder.json`` is written (a lock taken a moment ago)."""
        holder = None
        for _ in range(tries):
            self._sleep(pause)
            holder = self.status()
            if holder is None or "unreadable" not in holder:
                return holder
        return holder


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _held_message(
    model: str,
    holder: dict[str, Any],
    path: str,
    host: str,
    waited: float,
    now: datetime | None,
) -> str:
    state = f"still locked after waiting {waited:.0f} s" if waited >= 0.5 else "locked"
    release = f"`invoke lock.release {model}`"
    if "unreadable" in holder:
        return (
            f"model {model} is {state} by an unknown holder ({host}:{holder['unreadable']}: the "
            f"lock is being taken right now, or its holder died while taking it). Retry in a "
            f"moment; if it stays locked, release it with {release}."
        )
    what = str(holder.get("action") or "a deploy")
    if holder.get("version") is not None:
        what += f" of version {holder['version']}"
    who = str(holder.get("user") or "an unknown user")
    pid, hostname = holder.get("pid"), holder.get("hostname")
    if pid is not None:
        who += f" (pid {pid}" + (f" on {hostname})" if hostname else ")")
    since = str(holder.get("started") or "an unknown time")
    age = _age(since, now)
    if age:
        since += f" ({age} ago)"
    message = f"model {model} is {state}: {what} by {who} since {since}."
    if _dead_here(holder):
        message += (
            f" That process no longer runs on this machine, so the lock is stale: release it "
            f"with {release}."
        )
    else:
        message += (
            f" Wait for it to finish (or give a lock wait), or, if that run died, release the "
            f"stale lock with {release}."
        )
    return message + f" (lock: {host}:{path})"


def _age(started: str, now: datetime | None) -> str:
    if now is None:
        return ""
    try:
        then = datetime.fromisoformat(started)
    except ValueError:
        return ""
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return ""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _dead_here(holder: dict[str, Any]) -> bool:
    """True when the holder ran on this machine and its process is gone."""
    pid = holder.get("pid")
    if holder.get("hostname") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False

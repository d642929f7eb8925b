"""Fault injections for tests: failures of a real machine, made on a running test-bed host.

These are *fault injections*, meant for tests only. :class:`~clipper_deploy.testbed.bed.Testbed`
can already pull a host's cable (``cut``) and stop its daemons (``stop``); this module adds the
failures a deploy meets on a host that is up and reachable but not healthy::

    fill_disk(bed, "h2")        # /var/lib/clipper-deploy on h2 is a full 64 KiB tmpfs
    free_disk(bed, "h2")        # ... and the host's own directory again
    hide_docker(bed, "h3")      # `docker` on h3 is "not found" (exit 127)
    restore_docker(bed, "h3")
    stop_dockerd(bed, "h3")     # the engine is down, sshd answers
    start_dockerd(bed, "h3")

or, undone when the block ends::

    with disk_full(bed, "h2"):
        ...

How: every SSH session of a bed host inherits the mount namespace of the host's ``sshd``
(its pid is in the host's run directory, ``sshd.pid``). ``fill_disk`` and ``hide_docker``
mount inside that namespace with ``nsenter --mount=/proc/<sshd pid>/ns/mnt``, so what the
deploy sees over SSH changes, while the control machine, the host's ``dockerd`` (its own
namespace) and every other host are untouched. Each injection has an undo, and each is
idempotent. ``stop_dockerd`` stops only the ``dockerd`` whose pid is in ``docker.pid``; its
containers stop with it and those with a restart policy come back with :func:`start_dockerd`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from clipper_deploy.hosts.upload import REMOTE_ROOT as UPLOAD_ROOT
from clipper_deploy.shell import run
from clipper_deploy.testbed.bed import Testbed, TestbedError, pid_alive, read_pid
from clipper_deploy.testbed.layout import HostLayout

DOCKER_PATHS = ("/usr/bin/docker", "/usr/local/bin/docker")
"""Where a host's shell may find the Docker CLI; :func:`hide_docker` covers each that exists."""

FULL_DISK_SIZE = "64k"
"""Size of the tmpfs :func:`fill_disk` mounts: room for a directory or two, not a bundle."""

DOCKER_STUB = """\
#!/bin/sh
# clipper-deploy test bed fault injection: the Docker CLI is "not installed" on this host.
echo "sh: 1: docker: not found" >&2
exit 127
"""


# ----------------------------------------------------------------------------- disk full


def fill_disk(bed: Testbed, name: str, size: str = FULL_DISK_SIZE) -> None:
    """Make host ``name``'s upload directory a tiny tmpfs, as seen over SSH: writes there fail
    with "No space left on device". What was uploaded before is hidden, not removed."""
    host = _host(bed, name)
    if _mounted_in_sshd(host, UPLOAD_ROOT, "tmpfs"):
        return
    _in_sshd_mounts(host, ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", UPLOAD_ROOT])
    bed.say(f"{name}: {UPLOAD_ROOT} is full (a {size} tmpfs) [fault injection]")


def free_disk(bed: Testbed, name: str) -> None:
    """Undo :func:`fill_disk`: the host's own upload directory is back, as it was."""
    host = _host(bed, name)
    while _mounted_in_sshd(host, UPLOAD_ROOT, "tmpfs"):
        _in_sshd_mounts(host, ["umount", UPLOAD_ROOT])
    bed.say(f"{name}: {UPLOAD_ROOT} has room again")


@contextlib.contextmanager
def disk_full(bed: Testbed, name: str, size: str = FULL_DISK_SIZE) -> Iterator[None]:
    """:func:`fill_disk` for the block's duration."""
    fill_disk(bed, name, size)
    try:
        yield
    finally:
        free_disk(bed, name)


# ----------------------------------------------------------------------------- docker missing


def hide_docker(bed: Testbed, name: str) -> None:
    """Make ``docker`` on host ``name`` behave as if it were not installed: a stub bound over
    the CLI prints ``sh: 1: docker: not found`` and exits 127, as a shell does."""
    host = _host(bed, name)
    stub = _stub_path(host)
    stub.write_text(DOCKER_STUB)
    stub.chmod(0o755)
    for path in DOCKER_PATHS:
        if os.path.exists(path) and not _mounted_in_sshd(host, path):
            _in_sshd_mounts(host, ["mount", "--bind", str(stub), path])
    bed.say(f"{name}: docker is not installed [fault injection]")


def restore_docker(bed: Testbed, name: str) -> None:
    """Undo :func:`hide_docker`."""
    host = _host(bed, name)
    for path in DOCKER_PATHS:
        while _mounted_in_sshd(host, path):
            _in_sshd_mounts(host, ["umount", path])
    _stub_path(host).unlink(missing_ok=True)
    bed.say(f"{name}: docker is installed again")


@contextlib.contextmanager
def docker_missing(bed: Testbed, name: str) -> Iterator[None]:
    """:func:`hide_docker` for the block's duration."""
    hide_docker(bed, name)
    try:
        yield
    finally:
        restore_docker(bed, name)


# ----------------------------------------------------------------------------- dockerd stopped


def stop_dockerd(bed: Testbed, name: str) -> None:
    """Stop host ``name``'s Docker engine (SIGTERM, as ``systemctl stop docker`` does) and
    leave its sshd running: :meth:`Testbed.stop` with ``services=("dockerd",)``, checked.
    The engine's containers stop with it."""
    host = _host(bed, name)
    bed.stop(name, services=("dockerd",))
    pid = read_pid(host.dockerd_pidfile)
    if pid is not None and pid_alive(pid):
        raise TestbedError(f"{name}: dockerd (pid {pid}) still runs after SIGTERM")


def start_dockerd(bed: Testbed, name: str) -> None:
    """Undo :func:`stop_dockerd`: start the engine again and wait until it answers."""
    bed.start(name)


@contextlib.contextmanager
def dockerd_stopped(bed: Testbed, name: str) -> Iterator[None]:
    """:func:`stop_dockerd` for the block's duration."""
    stop_dockerd(bed, name)
    try:
        yield
    finally:
        start_dockerd(bed, name)


# ----------------------------------------------------------------------------- helpers


def _host(bed: Testbed, name: str) -> HostLayout:
    host = bed.layout.host(name)
    if int(host.name[1:]) > bed.layout.hosts:
        raise TestbedError(f"no host {name} in this bed: it has h1..h{bed.layout.hosts}")
    return host


def _sshd_pid(host: HostLayout) -> int:
    pid = read_pid(host.sshd_pidfile)
    if pid is None or not pid_alive(pid):
        raise TestbedError(
            f"{host.name}: sshd is not running ({host.sshd_pidfile}), so there is no SSH "
            "session namespace to inject a fault into; start the host first"
        )
    return pid


def _in_sshd_mounts(host: HostLayout, argv: list[str]) -> None:
    """Run ``argv`` in the mount namespace the host's SSH sessions get."""
    run(["nsenter", f"--mount=/proc/{_sshd_pid(host)}/ns/mnt", *argv])


def _mounted_in_sshd(host: HostLayout, path: str, fstype: str | None = None) -> bool:
    """Is something (of ``fstype``) mounted on ``path`` in the SSH sessions' namespace?"""
    with open(f"/proc/{_sshd_pid(host)}/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            # mount point is field 5; the filesystem type follows the " - " separator
            kind = fields[fields.index("-") + 1]
            if fields[4] == path and (fstype is None or kind == fstype):
                return True
    return False


def _stub_path(host: HostLayout) -> Path:
    return host.data_dir / "fault-docker-stub"

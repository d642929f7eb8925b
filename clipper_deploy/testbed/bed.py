"""The multi-host test bed: real Docker hosts reached over real SSH, all on this machine.

Each host ``hN`` is a network namespace on a bridge, with its own address, its own ``sshd``
(key login with a key the bed generates; host keys written to a known_hosts file so clients
verify them) and its own ``dockerd`` (own data root; it starts with no images, like a fresh
Docker host without registry access)::

    bed = Testbed(BedLayout.default(hosts=3))
    bed.up()                 # prints the inventory path; recovers from a crashed bed
    bed.cut("h2")            # h2 unreachable (its cable is pulled)
    bed.heal("h2")
    bed.stop("h2")           # its sshd, dockerd and everything they ran are stopped
    bed.start("h2")
    bed.down()               # no process, namespace, link or directory left; idempotent

Needs root and Debian packages (installed on demand, see :mod:`clipper_deploy.prereqs`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.prereqs import BED_COMMANDS, ensure_commands, require_root
from clipper_deploy.shell import CommandError, run, succeeds
from clipper_deploy.testbed import commands, files
from clipper_deploy.testbed.layout import BedLayout, HostLayout

READY_TIMEOUT = 90.0
"""Seconds a host's dockerd and sshd get to come up (dockerd takes a few seconds)."""


class TestbedError(ClipperDeployError, RuntimeError):
    """Something of the bed could not be made, found or removed; the message says which."""


@dataclass(frozen=True)
class HostStatus:
    """What ``testbed.status`` reports for one host."""

    name: str
    address: str
    namespace: bool
    link_up: bool
    sshd: bool
    dockerd: bool
    containers: int | None
    images: int | None

    @property
    def healthy(self) -> bool:
        return self.namespace and self.link_up and self.sshd and self.dockerd


class Testbed:
    """Bring a bed described by a :class:`BedLayout` up and down, and inject faults."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, layout: BedLayout, say: Callable[[str], None] = print) -> None:
        self.layout = layout
        self.say = say

    @classmethod
    def current(
        cls, directory: str | os.PathLike[str] | None = None, say: Callable[[str], None] = print
    ) -> Testbed:
        """The bed recorded in ``directory`` (default as :meth:`BedLayout.default`)."""
        layout = BedLayout.default(directory=directory)
        try:
            state = json.loads(layout.state_file.read_text())
        except FileNotFoundError:
            raise TestbedError(
                f"no test bed is up in {layout.directory}: run `invoke testbed.up`"
            ) from None
        return cls(
            BedLayout(
                directory=layout.directory,
                hosts=state["hosts"],
                prefix=state["prefix"],
                subnet=state["subnet"],
            ),
            say=say,
        )

    # ----------------------------------------------------------------- up / down

    def up(self, *, install: bool = True, fresh: bool = False) -> Path:
        """Create the bed (or keep an identical healthy one) and return its inventory path."""
        require_root("the test bed")
        ensure_commands(BED_COMMANDS, install=install, say=self.say)
        if not fresh and self._is_up_and_healthy():
            self.say(f"Test bed already up: {self.layout.hosts} hosts")
            self.say(f"Inventory: {self.layout.inventory}")
            return self.layout.inventory
        self.down(quiet=True)
        started = time.monotonic()
        try:
            self._create()
        except BaseException:
            self.say("Test bed did not come up; removing what was made")
            self.down(quiet=True)
            raise
        self.say(
            f"Test bed up: {self.layout.hosts} hosts in {time.monotonic() - started:.1f} s "
            f"({', '.join(f'{h.name}={h.address}' for h in self.layout.all_hosts())}; "
            f"control machine {self.layout.bridge_address})"
        )
        self.say(f"Inventory: {self.layout.inventory}")
        return self.layout.inventory

    def down(self, *, quiet: bool = False) -> None:
        """Remove every process, namespace, link and directory of any bed with this prefix.

        Works from names alone, so it also cleans up after a crash or a half-made bed.
        """
        require_root("the test bed")
        self._stop_frontend()
        prefix = self.layout.prefix
        namespaces = [n for n in _netns_names() if n.startswith(f"{prefix}-")]
        for netns in namespaces:
            _kill_netns_processes(netns)
        for netns in namespaces:
            run(["ip", "netns", "delete", netns], check=False)
        for link in _link_names():
            if link == self.layout.bridge or link.startswith(f"{prefix}-"):
                run(["ip", "link", "delete", link], check=False)
        _remove_tree(self.layout.run_root)
        _remove_cgroups(prefix)
        self._remove_files()
        leftovers = self._leftovers()
        if leftovers:
            raise TestbedError(f"test bed teardown left behind: {', '.join(leftovers)}")
        if not quiet:
            self.say("Test bed down: no namespace, process, link or data directory left")

    # ----------------------------------------------------------------- faults

    def cut(self, name: str) -> None:
        """Pull host ``name``'s network cable: nothing reaches it until :meth:`heal`."""
        run(commands.set_link(self._host(name), up=False))
        self.say(f"{name}: network cut")

    def heal(self, name: str) -> None:
        """Plug host ``name``'s cable back in."""
        run(commands.set_link(self._host(name), up=True))
        self.say(f"{name}: network healed")

    def stop(self, name: str, services: tuple[str, ...] = ("sshd", "dockerd")) -> None:
        """Stop host ``name``'s ``services`` (default both). Stopping both is a dead host:
        everything running on it stops too. Stopping only ``dockerd`` is a host whose Docker
        engine is down while SSH still works."""
        host = self._host(name)
        pidfiles = {"sshd": host.sshd_pidfile, "dockerd": host.dockerd_pidfile}
        unknown = set(services) - set(pidfiles)
        if unknown:
            raise TestbedError(f"unknown services {sorted(unknown)}: use sshd and/or dockerd")
        pids = [p for p in (read_pid(pidfiles[s]) for s in services) if p]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        _wait_gone(pids)
        if set(services) == set(pidfiles):
            _kill_netns_processes(host.netns)
        self.say(f"{name}: {' and '.join(services)} stopped")

    def start(self, name: str) -> None:
        """Start host ``name``'s sshd and dockerd again (containers with a restart policy
        come back with the engine)."""
        host = self._host(name)
        self._start_daemons(host)
        self._wait_ready([host])
        self.say(f"{name}: sshd and dockerd started")

    # ----------------------------------------------------------------- status

    def status(self) -> list[HostStatus]:
        """One :class:`HostStatus` per host of the recorded bed."""
        namespaces = set(_netns_names())
        result = []
        for host in self.layout.all_hosts():
            info = None
            if host.docker_socket.exists():
                proc = run(
                    commands.docker_cli(host, "info", "--format", "{{.Containers}} {{.Images}}"),
                    check=False,
                    timeout=15,
                )
                if proc.returncode == 0:
                    info = [int(x) for x in proc.stdout.split()]
            result.append(
                HostStatus(
                    name=host.name,
                    address=host.address,
                    namespace=host.netns in namespaces,
                    link_up=_link_is_up(host.veth),
                    sshd=pid_alive(read_pid(host.sshd_pidfile)),
                    dockerd=info is not None,
                    containers=info[0] if info else None,
                    images=info[1] if info else None,
                )
            )
        return result

    # ----------------------------------------------------------------- internals

    def _host(self, name: str) -> HostLayout:
        host = self.layout.host(name)
        if int(host.name[1:]) > self.layout.hosts:
            raise TestbedError(f"no host {name} in this bed: it has h1..h{self.layout.hosts}")
        return host

    def _is_up_and_healthy(self) -> bool:
        try:
            state = json.loads(self.layout.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return False
        same = (state.get("hosts"), state.get("prefix"), state.get("subnet")) == (
            self.layout.hosts,
            self.layout.prefix,
            self.layout.subnet,
        )
        return same and all(s.healthy for s in self.status())

    def _create(self) -> None:
        bed = self.layout
        hosts = bed.all_hosts()
        bed.directory.mkdir(parents=True, exist_ok=True)
        bed.directory.chmod(0o700)
        if not bed.client_key.exists():
            run(commands.keygen(str(bed.client_key), "clipper-deploy-testbed"))
        shutil.copyfile(f"{bed.client_key}.pub", bed.authorized_keys)
        bed.authorized_keys.chmod(0o600)
        for argv in commands.add_bridge(bed):
            run(argv)
        public_keys = []
        for host in hosts:
            for argv in commands.add_host_network(bed, host):
                run(argv)
            host.data_dir.mkdir(parents=True, exist_ok=True)
            run(commands.keygen(str(host.host_key), f"clipper-deploy-testbed-{host.name}"))
            public_keys.append((host, Path(f"{host.host_key}.pub").read_text()))
            host.sshd_config.write_text(files.sshd_config(bed, host))
            self._start_daemons(host)
        _write(bed.known_hosts, files.known_hosts(public_keys))
        _write(bed.ssh_config, files.ssh_config(bed))
        self._wait_ready(hosts)
        _write(bed.inventory, files.inventory(bed))
        state = {**asdict(bed), "directory": str(bed.directory), "created": time.time()}
        _write(bed.state_file, json.dumps(state, indent=2) + "\n")

    def _start_daemons(self, host: HostLayout) -> None:
        for source in host.private_dirs.values():
            source.mkdir(parents=True, exist_ok=True)
        (host.run_dir / "sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation
        cgroup = _host_cgroup(host)

        def spawn(argv: list[str], log: Path) -> None:
            if cgroup is not None:
                argv = commands.in_cgroup(str(cgroup / "cgroup.procs"), argv)
            _spawn(argv, log)

        if not pid_alive(read_pid(host.dockerd_pidfile)):
            host.dockerd_pidfile.unlink(missing_ok=True)
            host.docker_socket.unlink(missing_ok=True)
            parent = f"/{host.netns}" if cgroup is not None else None
            spawn(commands.in_host(host, commands.dockerd(host, parent)), host.dockerd_log)
        if not pid_alive(read_pid(host.sshd_pidfile)):
            host.sshd_pidfile.unlink(missing_ok=True)
            spawn(commands.in_host(host, commands.sshd(host)), host.sshd_log)

    def cpu_seconds(self, name: str) -> float | None:
        """CPU seconds host ``name`` has used since it came up: its sshd and every session,
        its dockerd and containerd, builds and containers (they all run in the host's own
        cgroup); None where the machine's cgroups could not be used."""
        cgroup = _cgroup_dir(self._host(name))
        if cgroup is None:
            return None
        try:
            if (cgroup / "cpuacct.usage").exists():
                return int((cgroup / "cpuacct.usage").read_text()) / 1e9
            for line in (cgroup / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except (OSError, ValueError):
            return None
        return None

    def _wait_ready(self, hosts: list[HostLayout]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = {h.name: h for h in hosts}
        while pending and time.monotonic() < deadline:
            for name, host in list(pending.items()):
                if _sshd_answers(host.address) and succeeds(
                    commands.docker_cli(host, "version"), timeout=10
                ):
                    del pending[name]
            if pending:
                time.sleep(0.2)
        if pending:
            details = []
            for host in pending.values():
                details.append(
                    f"{host.name}: sshd {'up' if _sshd_answers(host.address) else 'DOWN'}, "
                    f"dockerd log tail:\n{_tail(host.dockerd_log)}\nsshd log tail:\n"
                    f"{_tail(host.sshd_log)}"
                )
            raise TestbedError(
                f"hosts not ready after {READY_TIMEOUT:.0f} s:\n" + "\n".join(details)
            )

    def _remove_files(self) -> None:
        bed = self.layout
        _remove_tree(bed.directory / "hosts")
        for path in (
            bed.state_file,
            bed.inventory,
            bed.known_hosts,
            bed.ssh_config,
            bed.authorized_keys,
            Path(f"{bed.authorized_keys}.clipper-lock"),  # host-to-host relays' lock
            bed.client_key,
            Path(f"{bed.client_key}.pub"),
        ):
            path.unlink(missing_ok=True)
        if bed.directory.exists() and not any(bed.directory.iterdir()):
            bed.directory.rmdir()

    def _stop_frontend(self) -> None:
        """A frontend started for this bed (state in the bed's directory) listens on the
        bridge address, which is about to go: stop it, and remove its state."""
        state_dir = self.layout.frontend_dir
        if (state_dir / "frontend.pid").exists():
            from clipper_deploy.frontend import process as frontend_process

            frontend_process.stop(state_dir)
        _remove_tree(state_dir)

    def _leftovers(self) -> list[str]:
        prefix = self.layout.prefix
        found = [f"namespace {n}" for n in _netns_names() if n.startswith(f"{prefix}-")]
        found += [
            f"link {n}"
            for n in _link_names()
            if n == self.layout.bridge or n.startswith(f"{prefix}-")
        ]
        if self.layout.run_root.exists():
            found.append(f"directory {self.layout.run_root}")
        if (self.layout.directory / "hosts").exists():
            found.append(f"directory {self.layout.directory / 'hosts'}")
        return found


# --------------------------------------------------------------------- system helpers

_CGROUP_ROOTS = (Path("/sys/fs/cgroup/cpuacct"), Path("/sys/fs/cgroup"))
"""Where a host's CPU-accounting cgroup goes: cgroup v1's cpuacct hierarchy, else v2's root."""


def _cgroup_root() -> Path | None:
    v1, v2 = _CGROUP_ROOTS
    if (v1 / "cpuacct.usage").exists():
        return v1
    if (v2 / "cgroup.controllers").exists():
        return v2
    return None


def _cgroup_dir(host: HostLayout) -> Path | None:
    root = _cgroup_root()
    return None if root is None else root / host.netns


def _host_cgroup(host: HostLayout) -> Path | None:
    """The host's own cgroup (made if needed), or None when cgroups cannot be made here
    (the bed then runs without per-host CPU accounting)."""
    cgroup = _cgroup_dir(host)
    if cgroup is None:
        return None
    try:
        cgroup.mkdir(exist_ok=True)
    except OSError:
        return None
    return cgroup if (cgroup / "cgroup.procs").exists() else None


def _remove_cgroups(prefix: str) -> None:
    """Remove the bed's host cgroups (and what Docker left under them) in every hierarchy."""
    base = Path("/sys/fs/cgroup")
    candidates = [*base.glob(f"{prefix}-h*"), *base.glob(f"*/{prefix}-h*")]
    for cgroup in candidates:
        if not cgroup.is_dir():
            continue
        for child in sorted(cgroup.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def _netns_names() -> list[str]:
    proc = run(["ip", "-o", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _link_names() -> list[str]:
    proc = run(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in proc.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _link_is_up(link: str) -> bool:
    proc = run(["ip", "-o", "link", "show", link], check=False)
    return proc.returncode == 0 and ",UP" in proc.stdout.split(">")[0] + ","


def _netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit() and int(p) != os.getpid()]


def _kill_netns_processes(netns: str, grace: float = 8.0) -> None:
    """SIGTERM everything in ``netns``, then SIGKILL what is left after ``grace`` seconds."""
    pids = _netns_pids(netns)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _netns_pids(netns) and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(50):
        left = _netns_pids(netns)
        if not left:
            return
        for pid in left:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise TestbedError(f"processes {_netns_pids(netns)} in namespace {netns} survive SIGKILL")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` runs (a zombie does not)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def read_pid(path: Path) -> int | None:
    """The pid in a pidfile, or None."""
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _spawn(argv: list[str], log: Path) -> None:
    """Start a daemon fully detached (``setsid -f``): it outlives this process, no zombie."""
    with open(log, "ab") as out:
        subprocess.run(
            ["setsid", "-f", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )


def _sshd_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1) as conn:
            conn.settimeout(2)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _remove_tree(path: Path) -> None:
    """Remove ``path`` after unmounting anything still mounted below it."""
    if not path.exists():
        return
    mounts = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            mount_point = line.split()[4]
            if mount_point == str(path) or mount_point.startswith(f"{path}/"):
                mounts.append(mount_point)
    for mount_point in sorted(mounts, key=len, reverse=True):
        try:
            run(["umount", "-l", mount_point])
        except CommandError as exc:
            raise TestbedError(f"cannot unmount {mount_point}: {exc}") from exc
    shutil.rmtree(path, onerror=_gone_is_fine)


def _gone_is_fine(function: object, path: str, exc_info: tuple) -> None:
    """``rmtree`` error handler: a file that vanished meanwhile is what we wanted anyway."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"

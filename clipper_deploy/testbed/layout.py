"""Where everything of a test bed lives: names, addresses and paths, computed and never stored.

A bed of ``N`` hosts is fully described by its :class:`BedLayout`; nothing here touches the
system, so the same layout serves ``up``, ``down`` after a crash, and the unit tests.

Naming (all names start with the bed's prefix, so a crashed bed can be found and removed)::

    bridge          cdtb0            10.213.0.1/24   (the control machine, as hosts see it)
    host h1         netns cdtb-h1    eth0 = 10.213.0.11/24, root-side veth cdtb-h1
    host hN         netns cdtb-hN    eth0 = 10.213.0.(10+N)/24

Files: the bed's directory (default ``.testbed/`` in the current directory) holds keys,
known_hosts, the inventory and each host's Docker data root; each host's ``/var/run`` is a
short directory under ``/run/<prefix>/`` (Unix socket paths must stay under 108 bytes).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from clipper_deploy import settings

DEFAULT_PREFIX = "cdtb"
DEFAULT_SUBNET = "10.213.0.0/24"
MAX_HOSTS = 50
"""Hosts take addresses .11 to .60 of the subnet."""


@dataclass(frozen=True)
class HostLayout:
    """One simulated Docker host: its network namespace, address and directories."""

    name: str
    netns: str
    veth: str
    address: str
    run_dir: Path
    data_dir: Path

    @property
    def docker_root(self) -> Path:
        """The host engine's ``--data-root`` (images, containers, its own containerd)."""
        return self.data_dir / "docker"

    @property
    def private_dirs(self) -> dict[str, Path]:
        """Directories each host has to itself, as separate machines would: its ``/var/run``
        (engine socket, pidfiles), ``/etc/docker`` (engine ID) and the directory deploys
        upload to. Maps the path on the host to the directory bound there. (``/tmp`` stays
        shared: the bed's own files may live under it.)"""
        return {
            "/var/run": self.run_dir,
            "/etc/docker": self.data_dir / "etc-docker",
            "/var/lib/clipper-deploy": self.data_dir / "clipper-deploy",
        }

    @property
    def host_key(self) -> Path:
        """The host's sshd key; its public half goes into the bed's known_hosts."""
        return self.data_dir / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.data_dir / "sshd_config"

    @property
    def docker_socket(self) -> Path:
        """The engine's socket as seen from the control machine (root namespace)."""
        return self.run_dir / "docker.sock"

    @property
    def dockerd_pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def sshd_pidfile(self) -> Path:
        return self.run_dir / "sshd.pid"

    @property
    def dockerd_log(self) -> Path:
        return self.data_dir / "dockerd.log"

    @property
    def sshd_log(self) -> Path:
        return self.data_dir / "sshd.log"


@dataclass(frozen=True)
class BedLayout:
    """Names, addresses and paths of a test bed with ``hosts`` hosts.

    Args:
        directory: where keys, inventory and Docker data roots live.
        hosts: number of hosts, ``h1..hN``.
        prefix: starts every interface, namespace and run directory name of the bed.
        subnet: an IPv4 /24 (or larger) for the bridge and the hosts.
    """

    directory: Path
    hosts: int = 2
    prefix: str = DEFAULT_PREFIX
    subnet: str = DEFAULT_SUBNET

    def __post_init__(self) -> None:
        if not 1 <= self.hosts <= MAX_HOSTS:
            raise ValueError(f"a test bed has 1 to {MAX_HOSTS} hosts, not {self.hosts}")
        if not self.prefix.isalnum() or len(self.prefix) > 8:
            raise ValueError(f"bed prefix must be 1-8 letters or digits, not {self.prefix!r}")
        network = ipaddress.ip_network(self.subnet)
        if network.version != 4 or network.prefixlen > 24:
            raise ValueError(f"bed subnet must be IPv4 and /24 or larger, not {self.subnet}")

    @classmethod
    def default(cls, hosts: int = 2, directory: str | os.PathLike[str] | None = None) -> BedLayout:
        """The bed in ``$CLIPPER_TESTBED_DIR`` or ``./.testbed``."""
        where = Path(directory).resolve() if directory else settings.default_testbed_dir()
        return cls(directory=where, hosts=hosts)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}0"

    @property
    def bridge_address(self) -> str:
        """The control machine's address on the bed: where hosts reach the frontend."""
        return str(self.network.network_address + 1)

    @property
    def run_root(self) -> Path:
        return Path("/run") / self.prefix

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def client_key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    @property
    def inventory(self) -> Path:
        return self.directory / settings.TESTBED_INVENTORY

    @property
    def frontend_dir(self) -> Path:
        """State directory of the frontend serving this bed (``clipper_state_dir``)."""
        return self.directory / "frontend"

    @property
    def ssh_config(self) -> Path:
        return self.directory / "ssh_config"

    def host(self, index_or_name: int | str) -> HostLayout:
        """Host ``h<i>`` (1-based) by index or by name; names outside this bed are an error."""
        index = _host_index(index_or_name)
        if index > MAX_HOSTS:
            raise ValueError(f"no host {index_or_name!r}: a bed has at most {MAX_HOSTS} hosts")
        name = f"h{index}"
        return HostLayout(
            name=name,
            netns=f"{self.prefix}-{name}",
            veth=f"{self.prefix}-{name}",
            address=str(self.network.network_address + 10 + index),
            run_dir=self.run_root / name,
            data_dir=self.directory / "hosts" / name,
        )

    def all_hosts(self) -> list[HostLayout]:
        return [self.host(i) for i in range(1, self.hosts + 1)]


def _host_index(index_or_name: int | str) -> int:
    if isinstance(index_or_name, int):
        index = index_or_name
    elif index_or_name.startswith("h") and index_or_name[1:].isdigit():
        index = int(index_or_name[1:])
    else:
        raise ValueError(f"test bed hosts are named h1, h2, ...; got {index_or_name!r}")
    if index < 1:
        raise ValueError(f"test bed hosts are numbered from 1; got {index_or_name!r}")
    return index

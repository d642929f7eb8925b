"""Argv builders for the test bed: ``ip``, ``nsenter``/``unshare``, ``dockerd``, ``sshd``.

Pure functions returning lists of strings; :mod:`clipper_deploy.testbed.bed` runs them.

Daemons are started with ``nsenter --net`` (not ``ip netns exec``, which remounts ``/sys`` and
breaks dockerd's cgroup detection) inside a private mount namespace whose ``/var/run`` is the
host's own run directory, so every host gets its own engine socket, containerd and pidfiles.
"""

from __future__ import annotations

import shlex

from clipper_deploy.testbed.layout import BedLayout, HostLayout


def add_bridge(bed: BedLayout) -> list[list[str]]:
    """Create the bed's bridge with the control machine's address and bring it up."""
    prefix_len = bed.network.prefixlen
    return [
        ["ip", "link", "add", bed.bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{bed.bridge_address}/{prefix_len}", "dev", bed.bridge],
        ["ip", "link", "set", bed.bridge, "up"],
    ]


def add_host_network(bed: BedLayout, host: HostLayout) -> list[list[str]]:
    """Namespace, veth pair (``eth0`` inside), address, and links up."""
    netns = ["ip", "-n", host.netns]
    peer = f"{host.veth}p"
    return [
        ["ip", "netns", "add", host.netns],
        ["ip", "link", "add", host.veth, "type", "veth", "peer", "name", peer],
        ["ip", "link", "set", peer, "netns", host.netns],
        [*netns, "link", "set", peer, "name", "eth0"],
        [*netns, "addr", "add", f"{host.address}/{bed.network.prefixlen}", "dev", "eth0"],
        [*netns, "link", "set", "lo", "up"],
        [*netns, "link", "set", "eth0", "up"],
        ["ip", "link", "set", host.veth, "master", bed.bridge],
        ["ip", "link", "set", host.veth, "up"],
    ]


def set_link(host: HostLayout, up: bool) -> list[str]:
    """Cut (``up=False``) or heal the host's cable: its root-side veth."""
    return ["ip", "link", "set", host.veth, "up" if up else "down"]


def in_host(host: HostLayout, argv: list[str]) -> list[str]:
    """Run ``argv`` as a process of ``host``: its network namespace, its hostname, and its own
    ``/var/run``, ``/etc/docker`` (so each engine has its own socket, pidfiles, containerd
    and engine ID) and ``/var/lib/clipper-deploy`` (so what is uploaded to one host is not
    seen by another, as on separate machines)."""
    binds = [f"mkdir -p {' '.join(shlex.quote(t) for t in host.private_dirs)}"]
    for target, source in host.private_dirs.items():
        source_q = shlex.quote(str(source))
        binds.append(f"mount --bind {source_q} {shlex.quote(target)}")
    script = " && ".join([f"hostname {host.name}", *binds, f"exec {shlex.join(argv)}"])
    return [
        "nsenter",
        f"--net=/run/netns/{host.netns}",
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
    ]


def dockerd(host: HostLayout, cgroup_parent: str | None = None) -> list[str]:
    """The host's Docker engine: own data root, no bridge network, no iptables rules.

    Containers on the bed run with ``--network host`` and so share the host's address; with
    ``cgroup_parent`` (the host's own cgroup) their CPU time is counted as the host's.
    """
    extra = [f"--cgroup-parent={cgroup_parent}"] if cgroup_parent else []
    return [
        "dockerd",
        "--data-root",
        str(host.docker_root),
        "--pidfile",
        "/var/run/docker.pid",
        "-H",
        "unix:///var/run/docker.sock",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        "--shutdown-timeout=2",
        *extra,
    ]


def in_cgroup(procs_file: str, argv: list[str]) -> list[str]:
    """Run ``argv`` inside the cgroup whose ``cgroup.procs`` is ``procs_file`` (it and every
    process it starts count there)."""
    return ["sh", "-c", f'echo $$ > {shlex.quote(procs_file)} && exec "$@"', "sh", *argv]


def sshd(host: HostLayout) -> list[str]:
    """The host's sshd in the foreground, logging to stderr."""
    return ["/usr/sbin/sshd", "-D", "-e", "-f", str(host.sshd_config)]


def docker_cli(host: HostLayout, *args: str) -> list[str]:
    """Talk to the host's engine directly from the control machine (through its socket)."""
    return ["docker", "-H", f"unix://{host.docker_socket}", *args]


def keygen(path: str, comment: str) -> list[str]:
    """A new ed25519 key without passphrase."""
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path]

"""What the remote-frontend tests share: the inventory, and reading sockets and the host."""

from __future__ import annotations

import subprocess
from pathlib import Path

from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testbed.files import KNOWN_HOSTS_VAR

FRONTEND_HOST = "h1"
PORTS = (1337, 1338, 7000)


def write_remote_inventory(bed: Testbed, directory: Path) -> Path:
    """``[clipper]`` = h1 over SSH, ``[model_hosts]`` = h2, h3; the bed's key and known_hosts."""
    layout = bed.layout
    h1, h2, h3 = (layout.host(n) for n in ("h1", "h2", "h3"))
    path = directory / "inventory.ini"
    path.write_text(
        f"""\
[clipper]
{h1.name} ansible_host={h1.address}

[model_hosts]
{h2.name} ansible_host={h2.address}
{h3.name} ansible_host={h3.address}

[all:vars]
ansible_user=root
ansible_port=22
ansible_ssh_private_key_file={layout.client_key}
{KNOWN_HOSTS_VAR}={layout.known_hosts}
"""
    )
    return path


def listeners(netns: str | None = None) -> list[tuple[str, int]]:
    """``(address, port)`` of every listening TCP socket, in the root namespace or ``netns``."""
    argv = ["ss", "-ltnH"]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10).stdout
    found = []
    for line in out.splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        found.append((address.strip("[]"), int(port)))
    return found

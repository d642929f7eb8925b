"""What the test bed and the base image need from the machine, and installing it.

Everything comes from Debian packages; as root with apt-get they are installed on demand,
otherwise the error names the exact ``apt-get install`` line to run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.shell import run

PACKAGE_OF_COMMAND: dict[str, str] = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "dockerd": "docker.io",
    "containerd": "docker.io",
    "runc": "docker.io",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "mmdebstrap": "mmdebstrap",
}

BED_COMMANDS = ("ip", "nsenter", "unshare", "dockerd", "containerd", "runc", "sshd", "ssh-keygen")
BASE_IMAGE_COMMANDS = ("mmdebstrap",)
EXTRA_PATH = ("/usr/sbin", "/sbin")


class PrerequisiteError(ClipperDeployError, RuntimeError):
    """The machine lacks something that cannot be installed from here."""


def which(command: str) -> str | None:
    """Find ``command`` on PATH or in the sbin directories (not on every root's PATH)."""
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(EXTRA_PATH)
    return shutil.which(command, path=path)


def missing_packages(commands: Iterable[str]) -> list[str]:
    """Debian packages providing the ``commands`` that are not installed, sorted."""
    return sorted({PACKAGE_OF_COMMAND[c] for c in commands if which(c) is None})


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError(
            f"{what} needs root (network namespaces, dockerd, sshd): run it as root, "
            "e.g. `sudo -E invoke ...`"
        )


def ensure_commands(
    commands: Iterable[str], *, install: bool = True, say: Callable[[str], None] = print
) -> None:
    """Install the Debian packages behind missing ``commands``, or say exactly what to run."""
    packages = missing_packages(commands)
    if not packages:
        return
    line = "apt-get update && apt-get install -y " + " ".join(packages)
    if not install or os.geteuid() != 0 or which("apt-get") is None:
        raise PrerequisiteError(f"missing Debian packages {', '.join(packages)}; run: {line}")
    say(f"Installing missing Debian packages: {' '.join(packages)}")
    env_line = ["env", "DEBIAN_FRONTEND=noninteractive"]
    run([*env_line, "apt-get", "update", "-qq"], timeout=600)
    run([*env_line, "apt-get", "install", "-y", "-qq", *packages], timeout=900)
    still = missing_packages(commands)
    if still:
        raise PrerequisiteError(f"installing {', '.join(still)} did not provide the commands")

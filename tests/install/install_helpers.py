"""What the install tests share: the user's venv, and an inventory for the user's frontend.

Kept apart from ``conftest.py`` (fixtures only) so test modules import it by a unique name.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testbed.files import KNOWN_HOSTS_VAR

REPO = Path(__file__).resolve().parents[2]
USER_PACKAGES = ("scikit-learn", "ipykernel", "nbclient")
"""Beside clipper-deploy: what a notebook user's environment typically holds."""
PORTS = {"clipper_query_port": 1437, "clipper_admin_port": 1438, "clipper_replica_port": 7100}
"""Not the suite frontend's ports: the user's frontend runs beside it on the same bed."""
USER_HOST = "h3"


@dataclass(frozen=True)
class UserEnv:
    """A fresh venv with the wheel installed."""

    root: Path
    wheel: Path
    install_seconds: float

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def command(self) -> Path:
        return self.root / "bin" / "clipper-deploy"

    def run(
        self, *argv: str | os.PathLike[str], cwd: Path, **env: str
    ) -> subprocess.CompletedProcess:
        """Run a command of the venv in ``cwd`` with a user's environment (no repo on paths)."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        clean["PATH"] = f"{self.root / 'bin'}:{clean.get('PATH', '')}"
        return subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=900,
        )


def write_user_inventory(bed: Testbed, directory: Path) -> Path:
    """An inventory of one bed host for the user's own frontend (own ports and state)."""
    layout = bed.layout
    host = layout.host(USER_HOST)
    ports = " ".join(f"{k}={v}" for k, v in PORTS.items())
    path = directory / "inventory.ini"
    path.write_text(
        f"""\
[clipper]
control ansible_host={layout.bridge_address} ansible_connection=local \
clipper_state_dir=frontend {ports}

[model_hosts]
{host.name} ansible_host={host.address}

[model_hosts:vars]
ansible_user=root
ansible_ssh_private_key_file={layout.client_key}

[all:vars]
{KNOWN_HOSTS_VAR}={layout.known_hosts}
"""
    )
    return path

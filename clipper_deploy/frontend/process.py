"""Run the frontend as a background process: :func:`start`, :func:`stop`, :func:`status`.

The state directory is the handle: it holds ``frontend.json`` (the configuration the process
was started with), ``frontend.pid``, ``frontend.log`` (the frontend's log, rotated at
``log_max_bytes``), ``frontend.out`` (stdout and stderr of the last start: empty unless the
process crashed outside its log), the SQLite database and the tokens. :func:`start` returns
once ``/admin/ping`` answers, and copies the admin token into the client's config
(see :mod:`clipper_deploy.frontend.tokens`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.frontend.client import AdminClient, FrontendError
from clipper_deploy.frontend.config import FrontendConfig
from clipper_deploy.frontend.tokens import ADMIN_TOKEN_FILE, save_client_token

CONFIG_FILE = "frontend.json"


class FrontendProcessError(ClipperDeployError):
    """The frontend did not start or stop; the message says why and where its log is."""


@dataclass
class FrontendStatus:
    """What :func:`status` found."""

    running: bool
    pid: int | None
    state_dir: str
    query_url: str | None = None
    admin_url: str | None = None
    replica_address: str | None = None
    log_path: str | None = None
    token_path: str | None = None
    uptime_s: float | None = None
    replicas: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def connect_host(bind: str) -> str:
    """The address a local client uses to reach a server bound to ``bind``."""
    if bind in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind == "::":
        return "::1"
    return bind


def _url(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists and is not a zombie (reaping it if it is our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_pid(state_dir: Path) -> int | None:
    """The pid in ``frontend.pid``, if the file exists and the process lives."""
    try:
        pid = int((state_dir / "frontend.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def load_config(state_dir: Path) -> FrontendConfig | None:
    """The configuration recorded by :func:`start` in ``state_dir``."""
    try:
        doc = json.loads((state_dir / CONFIG_FILE).read_text())
    except FileNotFoundError:
        return None
    doc["state_dir"] = Path(doc["state_dir"])
    known = set(FrontendConfig.__dataclass_fields__)
    return FrontendConfig(**{k: v for k, v in doc.items() if k in known})


def _admin(config: FrontendConfig, timeout: float = 2.0) -> AdminClient:
    token = (config.state_dir / ADMIN_TOKEN_FILE).read_text().strip()
    url = _url(connect_host(config.bind), config.admin_port, config.scheme)
    return AdminClient(url, token, timeout, cafile=config.tls_ca)


def status(state_dir: Path | str) -> FrontendStatus:
    """Report whether the frontend of ``state_dir`` runs, where, and its replicas."""
    state_dir = Path(state_dir).resolve()
    config = load_config(state_dir)
    pid = read_pid(state_dir)
    st = FrontendStatus(running=False, pid=pid, state_dir=str(state_dir))
    if config is None:
        st.message = f"no frontend was started with state directory {state_dir}"
        return st
    host = connect_host(config.bind)
    st.query_url = _url(host, config.query_port, config.scheme)
    st.admin_url = _url(host, config.admin_port, config.scheme)
    st.replica_address = f"{config.replica_bind or config.bind}:{config.replica_port}"
    st.log_path = str(config.log_path)
    if pid is None:
        st.message = f"the frontend is not running (log: {config.log_path})"
        return st
    try:
        admin = _admin(config)
        st.uptime_s = admin.ping().get("uptime_s")
        st.replicas = admin.get_all_containers()
        st.running = True
        st.message = f"the frontend runs as pid {pid}"
    except (FrontendError, OSError) as exc:
        st.message = f"pid {pid} runs but does not answer: {exc}"
    return st


def start(config: FrontendConfig, timeout: float = 20.0) -> FrontendStatus:
    """Start the frontend in the background (unless it already runs); wait until it answers."""
    state_dir = config.state_dir.resolve()
    current = status(state_dir)
    if current.running:
        current.message = f"already running as pid {current.pid}"
        return current
    state_dir.mkdir(parents=True, exist_ok=True)
    doc = asdict(config)
    doc["state_dir"] = str(state_dir)
    (state_dir / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n")
    log_path = config.log_path
    with open(config.output_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipper_deploy.frontend", *config.argv()],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FrontendProcessError(
                f"the frontend exited with status {proc.returncode} while starting; "
                f"its log {log_path} ends with:\n{tail(log_path)}{crash_output(config)}"
            )
        if (state_dir / ADMIN_TOKEN_FILE).exists():
            try:
                _admin(config, timeout=1.0).ping()
                break
            except (FrontendError, OSError) as exc:
                last_error = str(exc)
        time.sleep(0.05)
    else:
        proc.terminate()
        raise FrontendProcessError(
            f"the frontend did not answer within {timeout:.0f} s ({last_error}); "
            f"see {log_path}:\n{tail(log_path)}{crash_output(config)}"
        )
    token = (state_dir / ADMIN_TOKEN_FILE).read_text().strip()
    token_path = save_client_token(connect_host(config.bind), config.admin_port, token)
    st = status(state_dir)
    st.token_path = str(token_path)
    st.message = f"started as pid {proc.pid}"
    return st


def stop(state_dir: Path | str, timeout: float = 10.0) -> FrontendStatus:
    """Stop the frontend of ``state_dir``: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    state_dir = Path(state_dir).resolve()
    pid = read_pid(state_dir)
    if pid is None:
        st = status(state_dir)
        st.message = "the frontend was not running"
        return st
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            break
        time.sleep(0.05)
    (state_dir / "frontend.pid").unlink(missing_ok=True)
    st = status(state_dir)
    st.message = f"stopped pid {pid}"
    return st


def crash_output(config: FrontendConfig) -> str:
    """What the process wrote outside its log (``frontend.out``), if anything."""
    text = tail(config.output_path)
    if not text.strip() or text == "(no log)":
        return ""
    return f"\nand its output {config.output_path}:\n{text}"


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"

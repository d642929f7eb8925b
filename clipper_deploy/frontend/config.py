"""The frontend's settings (command-line flags of ``python -m clipper_deploy.frontend``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from clipper_deploy.settings import DEFAULT_ADMIN_PORT, DEFAULT_QUERY_PORT, DEFAULT_REPLICA_PORT

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class FrontendConfig:
    """Where the frontend keeps its state and what it listens on."""

    state_dir: Path
    bind: str = "127.0.0.1"
    query_port: int = DEFAULT_QUERY_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    replica_port: int = DEFAULT_REPLICA_PORT
    replica_bind: str | None = None
    require_query_token: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    heartbeat_interval_s: float = 1.0

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.sqlite"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "frontend.pid"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "frontend.log"

    def argv(self) -> list[str]:
        """The command-line flags that recreate this configuration."""
        args = [
            "--state-dir",
            str(self.state_dir),
            "--bind",
            self.bind,
            "--query-port",
            str(self.query_port),
            "--admin-port",
            str(self.admin_port),
            "--replica-port",
            str(self.replica_port),
            "--max-body-bytes",
            str(self.max_body_bytes),
            "--heartbeat-interval",
            str(self.heartbeat_interval_s),
        ]
        if self.replica_bind:
            args += ["--replica-bind", self.replica_bind]
        if self.require_query_token:
            args.append("--require-query-token")
        return args


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m clipper_deploy.frontend``."""
    p = argparse.ArgumentParser(
        prog="python -m clipper_deploy.frontend",
        description="Clipper-compatible prediction frontend: query API, management API and "
        "the port model replicas dial.",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        required=True,
        help="directory for the SQLite state, tokens, pidfile and log",
    )
    p.add_argument("--bind", default="127.0.0.1", help="address the HTTP APIs listen on")
    p.add_argument("--query-port", type=int, default=DEFAULT_QUERY_PORT)
    p.add_argument("--admin-port", type=int, default=DEFAULT_ADMIN_PORT)
    p.add_argument("--replica-port", type=int, default=DEFAULT_REPLICA_PORT)
    p.add_argument(
        "--replica-bind", default=None, help="address the replica port listens on (default: --bind)"
    )
    p.add_argument(
        "--require-query-token",
        action="store_true",
        help="require a bearer token (query.token or admin.token) on the query API",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request body accepted (larger ones get 413)",
    )
    p.add_argument(
        "--heartbeat-interval", type=float, default=1.0, help="seconds between replica heartbeats"
    )
    return p


def from_args(argv: list[str] | None = None) -> FrontendConfig:
    """Parse command-line flags into a :class:`FrontendConfig`."""
    a = parser().parse_args(argv)
    return FrontendConfig(
        state_dir=a.state_dir.resolve(),
        bind=a.bind,
        query_port=a.query_port,
        admin_port=a.admin_port,
        replica_port=a.replica_port,
        replica_bind=a.replica_bind,
        require_query_token=a.require_query_token,
        max_body_bytes=a.max_body_bytes,
        heartbeat_interval_s=a.heartbeat_interval,
    )

"""The frontend's settings (command-line flags of ``python -m clipper_deploy.frontend``).

Every queue, body, batch and wait of the frontend is bounded; the bounds live here with their
defaults, and ``docs/errors.md`` ("Limits of the frontend") lists what a client sees when it
meets one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from clipper_deploy.settings import DEFAULT_ADMIN_PORT, DEFAULT_QUERY_PORT, DEFAULT_REPLICA_PORT

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_BATCH_INPUTS = 1000
DEFAULT_MAX_QUEUE = 2000
DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_BATCH_TIMEOUT_S = 5.0
DEFAULT_MAX_CONNECTIONS = 2048
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_BACKUPS = 3


@dataclass(frozen=True)
class FrontendConfig:
    """Where the frontend keeps its state, what it listens on, and its limits.

    - ``max_body_bytes``: largest request body (413 beyond, before it is read).
    - ``max_batch_inputs``: most inputs in one ``input_batch`` (400 beyond).
    - ``max_queue``: most queries waiting per model version; a query that finds the queue full
      is answered at once with the app's default output and an explanation (Clipper's
      semantics), never queued.
    - ``idle_timeout_s``: a connection that has not sent complete request headers within this
      time of connecting or of its previous answer is closed (idle keep-alive connections and
      half-sent headers alike).
    - ``body_timeout_s``: longest time to receive a request body once its headers are in (408).
    - ``batch_timeout_s``: a replica that has not answered a batch within this time (or twice
      the model's SLO, whichever is longer) is taken out of rotation and disconnected.
    - ``max_connections``: most open connections on each HTTP port; one more is answered 503
      (JSON, ``Retry-After``) and closed at once (about 14 MiB of memory per 1024 open ones).
    - ``tls_cert``, ``tls_key``: PEM files (paths as the frontend sees them) of the certificate
      (with its chain) and private key the query and management ports serve TLS with; both
      unset: plain HTTP. The replica port never speaks TLS.
    - ``metrics_open``: serve ``/metrics`` without a token (default: admin token needed).
    - ``log_max_bytes``, ``log_backups``: size of ``frontend.log`` before it is rotated, and
      how many rotated files are kept.
    """

    state_dir: Path
    bind: str = "127.0.0.1"
    query_port: int = DEFAULT_QUERY_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    replica_port: int = DEFAULT_REPLICA_PORT
    replica_bind: str | None = None
    require_query_token: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    heartbeat_interval_s: float = 1.0
    max_batch_inputs: int = DEFAULT_MAX_BATCH_INPUTS
    max_queue: int = DEFAULT_MAX_QUEUE
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    batch_timeout_s: float = DEFAULT_BATCH_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    metrics_open: bool = False
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES
    log_backups: int = DEFAULT_LOG_BACKUPS
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    """The CA file this machine's clients verify the frontend against (None: the system's
    trusted CAs); recorded for :mod:`.process`, never passed to the frontend."""

    @property
    def tls_enabled(self) -> bool:
        """True when the query and management ports speak TLS (https)."""
        return bool(self.tls_cert)

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http``."""
        return "https" if self.tls_enabled else "http"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.sqlite"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "frontend.pid"

    @property
    def log_path(self) -> Path:
        """The frontend's own log, rotated at ``log_max_bytes``."""
        return self.state_dir / "frontend.log"

    @property
    def output_path(self) -> Path:
        """stdout and stderr of a background frontend: only what escapes the log (a crash)."""
        return self.state_dir / "frontend.out"

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
            "--max-batch-inputs",
            str(self.max_batch_inputs),
            "--max-queue",
            str(self.max_queue),
            "--idle-timeout",
            str(self.idle_timeout_s),
            "--body-timeout",
            str(self.body_timeout_s),
            "--batch-timeout",
            str(self.batch_timeout_s),
            "--max-connections",
            str(self.max_connections),
            "--log-max-bytes",
            str(self.log_max_bytes),
            "--log-backups",
            str(self.log_backups),
        ]
        if self.replica_bind:
            args += ["--replica-bind", self.replica_bind]
        if self.require_query_token:
            args.append("--require-query-token")
        if self.metrics_open:
            args.append("--metrics-open")
        if self.tls_cert:
            args += ["--tls-cert", self.tls_cert, "--tls-key", self.tls_key or self.tls_cert]
        return args


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


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
        type=_positive_int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request body accepted (larger ones get 413)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        default=1.0,
        help="seconds between replica heartbeats",
    )
    p.add_argument(
        "--max-batch-inputs",
        type=_positive_int,
        default=DEFAULT_MAX_BATCH_INPUTS,
        help="most inputs in one input_batch (more get 400)",
    )
    p.add_argument(
        "--max-queue",
        type=_positive_int,
        default=DEFAULT_MAX_QUEUE,
        help="most queries waiting per model version (more get the default output at once)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="seconds a connection may stay without sending complete request headers",
    )
    p.add_argument(
        "--body-timeout",
        type=_positive_float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="seconds to receive a request body once its headers are in (408 beyond)",
    )
    p.add_argument(
        "--batch-timeout",
        type=_positive_float,
        default=DEFAULT_BATCH_TIMEOUT_S,
        help="seconds a replica may take for one batch (at least twice the SLO) before it is "
        "taken out of rotation",
    )
    p.add_argument(
        "--max-connections",
        type=_positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="most open connections per HTTP port (one more gets a 503 and is closed)",
    )
    p.add_argument(
        "--metrics-open",
        action="store_true",
        help="serve /metrics without a token (by default it needs the admin token)",
    )
    p.add_argument(
        "--tls-cert",
        default=None,
        help="PEM certificate (with its chain): the query and management ports speak TLS",
    )
    p.add_argument(
        "--tls-key",
        default=None,
        help="PEM private key of --tls-cert (default: in the --tls-cert file)",
    )
    p.add_argument(
        "--log-max-bytes",
        type=_positive_int,
        default=DEFAULT_LOG_MAX_BYTES,
        help="size at which frontend.log is rotated",
    )
    p.add_argument(
        "--log-backups",
        type=int,
        default=DEFAULT_LOG_BACKUPS,
        help="rotated log files kept (frontend.log.1 ...)",
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
        max_batch_inputs=a.max_batch_inputs,
        max_queue=a.max_queue,
        idle_timeout_s=a.idle_timeout,
        body_timeout_s=a.body_timeout,
        batch_timeout_s=a.batch_timeout,
        max_connections=a.max_connections,
        metrics_open=a.metrics_open,
        log_max_bytes=a.log_max_bytes,
        log_backups=max(0, a.log_backups),
        tls_cert=a.tls_cert,
        tls_key=a.tls_key or a.tls_cert,
    )

"""``invoke frontend.start|stop|status``: run the frontend in the background on this machine.

Thin wrappers over :mod:`clipper_deploy.frontend.process`. The state directory defaults to
``$XDG_STATE_HOME/clipper-deploy/frontend`` (``~/.local/state/...``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from invoke import Context, task

from clipper_deploy.frontend import process
from clipper_deploy.frontend.config import (
    DEFAULT_ADMIN_PORT,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_QUERY_PORT,
    DEFAULT_REPLICA_PORT,
    FrontendConfig,
)


def default_state_dir() -> Path:
    """Where the frontend keeps its state unless told otherwise."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "clipper-deploy" / "frontend"


def _report(st: process.FrontendStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps(st.to_json(), indent=2))
        return
    print(st.message)
    if st.query_url:
        print(f"  queries:     {st.query_url}/{{app}}/predict")
        print(f"  management:  {st.admin_url}/admin/")
        print(f"  replicas:    {st.replica_address}")
        print(f"  state:       {st.state_dir}")
        print(f"  log:         {st.log_path}")
    if st.token_path:
        print(f"  admin token: copied to {st.token_path}")
    if st.running:
        print(f"  {len(st.replicas)} replica(s)")
        for r in st.replicas:
            print(
                f"    {r['model_name']}:{r['model_version']} {r['replica_id']} "
                f"from {r['peer']}: {r['state']}, {r['queries_served']} queries served"
            )


@task(
    help={
        "state_dir": "directory for state, tokens, pidfile and log "
        "(default ~/.local/state/clipper-deploy/frontend)",
        "bind": "address the query and management APIs listen on (default 127.0.0.1)",
        "query_port": f"query API port (default {DEFAULT_QUERY_PORT})",
        "admin_port": f"management API port (default {DEFAULT_ADMIN_PORT})",
        "replica_port": f"port model replicas dial (default {DEFAULT_REPLICA_PORT})",
        "replica_bind": "address the replica port listens on (default: --bind)",
        "require_query_token": "require a bearer token on the query API too",
        "max_body_bytes": f"largest request body accepted (default {DEFAULT_MAX_BODY_BYTES})",
        "metrics_open": "serve /metrics without the admin token",
        "json": "print the status as JSON",
    }
)
def start(
    c: Context,
    state_dir: str = "",
    bind: str = "127.0.0.1",
    query_port: int = DEFAULT_QUERY_PORT,
    admin_port: int = DEFAULT_ADMIN_PORT,
    replica_port: int = DEFAULT_REPLICA_PORT,
    replica_bind: str = "",
    require_query_token: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    metrics_open: bool = False,
    json: bool = False,
) -> None:
    """Start the frontend in the background and wait until it answers."""
    config = FrontendConfig(
        state_dir=Path(state_dir) if state_dir else default_state_dir(),
        bind=bind,
        query_port=query_port,
        admin_port=admin_port,
        replica_port=replica_port,
        replica_bind=replica_bind or None,
        require_query_token=require_query_token,
        max_body_bytes=max_body_bytes,
        metrics_open=metrics_open,
    )
    _report(process.start(config), json)


@task(help={"state_dir": "the frontend's state directory", "json": "print the status as JSON"})
def stop(c: Context, state_dir: str = "", json: bool = False) -> None:
    """Stop the frontend gracefully (replicas keep running and reconnect to the next one)."""
    _report(process.stop(Path(state_dir) if state_dir else default_state_dir()), json)


@task(help={"state_dir": "the frontend's state directory", "json": "print the status as JSON"})
def status(c: Context, state_dir: str = "", json: bool = False) -> None:
    """Say whether the frontend runs, where it listens, and which replicas are connected."""
    _report(process.status(Path(state_dir) if state_dir else default_state_dir()), json)

"""``invoke frontend.start|stop|status|logs|rotate-token``: the frontend, here or on its host.

Without ``--inventory``: a background process on this machine, thin wrappers over
:mod:`clipper_deploy.frontend.process`; the state directory defaults to
``$XDG_STATE_HOME/clipper-deploy/frontend`` (``~/.local/state/...``). With ``--inventory``:
the inventory's ``[clipper]`` host, a Docker container there when it is reached over SSH
(:mod:`clipper_deploy.orchestration.frontend_service`), a local process when it is
``ansible_connection=local``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from invoke import Context, Exit, task

from clipper_deploy.cli.common import INVENTORY_HELP, failing, open_clipper
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


REMOTE_HELP = INVENTORY_HELP + "; its [clipper] host runs the frontend (a container over SSH)"


def _report_inventory(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
        return
    print(doc.get("message", ""))
    uptime = doc.get("uptime_s")
    print(f"  runs:        {doc.get('where')}")
    print(f"  version:     clipper-deploy {doc.get('version') or '?'}")
    print(f"  uptime:      {f'{uptime:.0f} s' if uptime is not None else '-'}")
    print(f"  queries:     {doc.get('query_url')}/{{app}}/predict")
    print(f"  management:  {doc.get('admin_url')}/admin/")
    print(f"  state:       {doc.get('state_dir')} on {doc.get('host')}")
    if doc.get("token_path"):
        print(f"  admin token: {doc['token_path']}")


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
        "inventory": REMOTE_HELP,
        "check": "with --inventory and a remote [clipper] host: print the plan (ship-base, "
        "upload, build, start, each with its reason) and change nothing",
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
    inventory: str | None = None,
    check: bool = False,
) -> None:
    """Start the frontend (idempotent) and wait until it answers: in the background here, or,
    with --inventory, on the [clipper] host (settings from the inventory)."""
    if inventory:
        with failing("Frontend start"):
            frontend = open_clipper(c, inventory).frontend
            if check:
                print(frontend.service.plan().describe())
                return
            _report_inventory(frontend.start(), json)
        return
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


HELP = {
    "state_dir": "the frontend's state directory",
    "json": "print the status as JSON",
    "inventory": REMOTE_HELP,
}


@task(help=HELP)
def stop(c: Context, state_dir: str = "", json: bool = False, inventory: str | None = None) -> None:
    """Stop the frontend gracefully (replicas keep running and reconnect to the next one); on a
    remote [clipper] host its container is removed and its state kept."""
    if inventory:
        with failing("Frontend stop"):
            _report_inventory(open_clipper(c, inventory).frontend.stop(), json)
        return
    _report(process.stop(Path(state_dir) if state_dir else default_state_dir()), json)


@task(help=HELP)
def status(
    c: Context, state_dir: str = "", json: bool = False, inventory: str | None = None
) -> None:
    """Say whether the frontend runs, where, its version and uptime, where it listens."""
    if inventory:
        with failing("Frontend status"):
            _report_inventory(open_clipper(c, inventory).frontend.status(), json)
        return
    _report(process.status(Path(state_dir) if state_dir else default_state_dir()), json)


@task(help={"lines": "log lines to show (default 50)", "inventory": REMOTE_HELP})
def logs(c: Context, lines: int = 50, inventory: str | None = None) -> None:
    """The remote frontend's recent log lines (its container's output and frontend.log)."""
    with failing("Frontend logs"):
        frontend = open_clipper(c, inventory).frontend
        if frontend.host.is_local:
            print(process.tail(frontend.config.log_path, lines))
        else:
            print(frontend.service.logs(lines))


@task(help={"json": "print the status as JSON", "inventory": REMOTE_HELP})
def rotate_token(c: Context, json: bool = False, inventory: str | None = None) -> None:
    """Give the remote frontend a new admin token (it restarts, a few seconds) and cache it
    here; other clients read it again over SSH on their next call."""
    with failing("Token rotation"):
        frontend = open_clipper(c, inventory).frontend
        if frontend.host.is_local:
            raise Exit(
                "error: rotate-token is for a remote [clipper] host; for a local frontend, stop "
                "it, remove admin.token from its state directory, and start it again",
                code=1,
            )
        _report_inventory(frontend.service.rotate_token(), json)

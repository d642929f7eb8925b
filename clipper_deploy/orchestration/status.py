"""The fleet's status as data: the frontend, apps, models, and every replica with a true state.

:func:`status_report` reads it (the frontend's view plus ``docker ps`` on every host);
:func:`build_report` is the pure part, and its document is what ``status --json`` prints
(the shape is documented in docs/architecture.md, "status --json")::

    {"frontend": {...}, "applications": [...], "models": [...], "replicas": [...],
     "unreachable": {"h3": "why"}, "time": 1764590000.0}

A replica's ``state`` is one of:

===========  ===========================================================================
serving      running, and connected to the frontend
starting     running, not (yet) connected: loading its function, or reconnecting
restarting   Docker is restarting it after it exited (its restart policy)
retained     stopped, of a version kept for a rollback (registered, not current)
crashed      exited with a non-zero status, and not retained
stopped      exited with status 0 (stopped by hand), not retained
===========  ===========================================================================

Any other Docker state (``created``, ``paused``) is shown as Docker names it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from clipper_deploy.hosts import docker_commands as dc

_EXITED = re.compile(r"^Exited \((-?\d+)\)")


def exit_code(status: str) -> int | None:
    """The exit status in ``docker ps``'s Status (``Exited (137) 5 minutes ago``), or None."""
    match = _EXITED.match(status.strip())
    return int(match.group(1)) if match else None


def replica_state(
    docker_state: str, code: int | None, registered: Mapping[str, Any] | None, retained: bool
) -> str:
    """The state word of a replica (see the module) from Docker's state and exit ``code``,
    the frontend's record of it (``registered``), and whether its version is ``retained``."""
    if docker_state == "restarting":
        return "restarting"
    if docker_state in ("exited", "dead"):
        if retained:
            return "retained"
        return "stopped" if code == 0 and docker_state == "exited" else "crashed"
    if docker_state == "running":
        if registered and registered.get("state") != "disconnected":
            return "serving"
        return "starting"
    return docker_state


def build_report(
    frontend: Mapping[str, Any],
    apps: Sequence[Mapping[str, Any]],
    models: Sequence[Mapping[str, Any]],
    registered: Sequence[Mapping[str, Any]],
    containers: Mapping[str, Sequence[dc.ContainerInfo] | BaseException],
    now: float,
) -> dict[str, Any]:
    """The status document from what the frontend and the hosts said (pure)."""
    by_id = {r["replica_id"]: r for r in registered}
    versions = {(str(m["model_name"]), str(m["model_version"])): m for m in models}
    replicas: list[dict[str, Any]] = []
    unreachable: dict[str, str] = {}
    for host, found in containers.items():
        if isinstance(found, BaseException):
            unreachable[host] = str(found).strip().splitlines()[0] if str(found) else "error"
            continue
        for c in found:
            record = by_id.get(c.replica)
            known = versions.get((c.model, c.version))
            retained = known is not None and not known.get("is_current_version")
            code = exit_code(c.status)
            beat = record.get("last_heartbeat") if record else None
            replicas.append(
                {
                    "host": host,
                    "container": c.name,
                    "model": c.model,
                    "version": c.version,
                    "state": replica_state(c.state, code, record, retained),
                    "docker_state": c.state,
                    "exit_code": code,
                    "current": bool(known and known.get("is_current_version")),
                    "last_heartbeat": beat,
                    "heartbeat_age_s": max(0.0, now - beat) if beat else None,
                    "queries_served": record.get("queries_served", 0) if record else None,
                }
            )
    return {
        "time": now,
        "frontend": dict(frontend),
        "applications": [
            {
                "name": a["name"],
                "input_type": a.get("input_type"),
                "models": list(a.get("linked_models") or []),
                "slo_micros": a.get("latency_slo_micros"),
                "default_output": a.get("default_output"),
            }
            for a in apps
        ],
        "models": [
            {
                "name": str(m["model_name"]),
                "version": str(m["model_version"]),
                "current": bool(m.get("is_current_version")),
                "input_type": m.get("input_type"),
                "labels": list(m.get("labels") or []),
            }
            for m in models
        ],
        "replicas": replicas,
        "unreachable": unreachable,
    }


def status_report(clipper: Any) -> dict[str, Any]:
    """Read the status of ``clipper``'s fleet (every remote host of its inventory); raises
    the frontend's or the connection's error when the frontend does not answer."""
    frontend = clipper.frontend.status()
    admin = clipper.admin
    apps = admin.get_all_applications(verbose=True)
    models = admin.get_all_models(verbose=True)
    registered = admin.get_all_containers()
    containers = clipper.containers("all", warn=True, remote_only=True)
    return build_report(frontend, apps, models, registered, containers, time.time())

"""What the dashboard shows, as one JSON document: :func:`fleet_state`.

Built from the frontend's own memory and files, nothing else: the store (apps, models, current
versions), the router (replicas, their state and last heartbeat), the metrics ring (queries/s
and p50/p99 of the last 15 minutes, :mod:`~clipper_deploy.frontend.timeseries`) and the state
directory (the audit log's tail and the fleet locks, :mod:`~clipper_deploy.frontend.state_files`).

A running operation (rollout, deploy, rollback...) is known by its model's fleet lock: the
holder says who runs which action to which version since when. Its progress is what the
frontend sees of that model's replicas per host: a host whose connected replicas are all of the
target version is ``done``, one with replicas of the target and of another version is
``rolling``, one with only other versions is ``waiting``; ``switched`` says whether the target
is the current version yet. The audit events of the model since the lock was taken follow.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from clipper_deploy import __version__
from clipper_deploy.frontend.router import Router
from clipper_deploy.frontend.state_files import AuditTail, lock_holders
from clipper_deploy.frontend.store import Store
from clipper_deploy.frontend.timeseries import BUCKET_S, BUCKETS, LatencyRing

AUDIT_EVENTS = 20
#: Most replicas listed (the fleet's size is bounded by what the frontend can serve anyway).
MAX_REPLICAS = 2000


def host_of(replica: dict[str, Any]) -> str:
    """The host a replica runs on: the first part of its id (``host/container``, as
    clipper-deploy names replicas), else the address it connected from."""
    rid = str(replica.get("replica_id") or "")
    if "/" in rid:
        return rid.split("/", 1)[0]
    return str(replica.get("peer") or "?").rsplit(":", 1)[0]


def epoch_of(iso: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time such as ``2024-05-01T10:00:00Z``."""
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rollout_progress(
    holder: dict[str, Any], replicas: list[dict[str, Any]], current: str | None
) -> dict[str, Any]:
    """The progress of the operation holding a lock (see the module docstring)."""
    model = holder.get("model")
    target = holder.get("version")
    target = None if target is None else str(target)
    per_host: dict[str, set[str]] = {}
    for r in replicas:
        if r["model_name"] == model and r["state"] != "disconnected":
            per_host.setdefault(host_of(r), set()).add(str(r["model_version"]))
    hosts = []
    for host in sorted(per_host):
        versions = per_host[host]
        if target is None:
            state = "unknown"
        elif versions == {target}:
            state = "done"
        elif target in versions:
            state = "rolling"
        else:
            state = "waiting"
        hosts.append({"host": host, "state": state, "versions": sorted(versions)})
    started = epoch_of(holder.get("started"))
    return {
        "model": model,
        "action": holder.get("action"),
        "version": target,
        "user": holder.get("user"),
        "started": holder.get("started"),
        "elapsed_s": None if started is None else round(max(0.0, time.time() - started), 1),
        "current_version": current,
        "switched": target is not None and current == target,
        "hosts": hosts,
        "done": sum(h["state"] == "done" for h in hosts),
        "total": len(hosts),
        "unreadable": holder.get("unreadable"),
    }


def fleet_state(
    store: Store,
    router: Router,
    ring: LatencyRing,
    audit: AuditTail,
    *,
    started_at: float,
) -> dict[str, Any]:
    """The dashboard's whole document (shape: ``docs/architecture.md``, "Dashboard")."""
    now = time.time()
    current = store.current_versions
    replicas = router.containers()[:MAX_REPLICAS]
    for r in replicas:
        r["host"] = host_of(r)
        r["heartbeat_age_s"] = round(max(0.0, now - r["last_heartbeat"]), 1)
    connected: dict[tuple[str, str], int] = {}
    for r in replicas:
        if r["state"] != "disconnected":
            key = (r["model_name"], str(r["model_version"]))
            connected[key] = connected.get(key, 0) + 1
    names = sorted({name for name, _ in store.models})
    models = []
    for name in names:
        registered = store.versions_of(name)
        versions = []
        for m in registered:
            serving = connected.get((name, m.version), 0)
            status = "current" if current.get(name) == m.version else "registered"
            versions.append(
                {
                    "version": m.version,
                    "status": status,
                    "created": m.created,
                    "connected_replicas": serving,
                }
            )
        models.append(
            {
                "name": name,
                "input_type": registered[0].input_type,
                "current_version": current.get(name),
                "apps": sorted(a.name for a in store.apps_linked_to(name)),
                "versions": versions,
            }
        )
    hosts: dict[str, list[dict[str, Any]]] = {}
    for r in replicas:
        hosts.setdefault(r["host"], []).append(
            {
                k: r[k]
                for k in (
                    "replica_id",
                    "model_name",
                    "model_version",
                    "state",
                    "is_current_version",
                    "last_heartbeat",
                    "heartbeat_age_s",
                    "queries_served",
                    "failed_queries",
                    "peer",
                    "drop_reason",
                )
            }
        )
    events, audit_error = audit.read(AUDIT_EVENTS)
    operations = []
    for holder in lock_holders(audit.path.parent):
        progress = rollout_progress(holder, replicas, current.get(str(holder.get("model"))))
        since = epoch_of(holder.get("started")) or 0.0
        progress["events"] = [
            e
            for e in events
            if e.get("model") == holder.get("model") and (epoch_of(e.get("time")) or 0) >= since
        ]
        operations.append(progress)
    return {
        "time": now,
        "frontend": {
            "version": __version__,
            "uptime_s": round(now - started_at, 1),
            "state_dir": str(audit.path.parent),
        },
        "apps": [
            {
                "name": a.name,
                "input_type": a.input_type,
                "linked_model": a.linked_model,
                "latency_slo_micros": a.latency_slo_micros,
            }
            for a in sorted(store.apps.values(), key=lambda a: a.name)
        ],
        "models": models,
        "hosts": [{"host": h, "replicas": hosts[h]} for h in sorted(hosts)],
        "metrics": {
            "bucket_s": BUCKET_S,
            "buckets": BUCKETS,
            "models": {name: snap for name in names if (snap := ring.snapshot(name))},
        },
        "audit": {"path": str(audit.path), "events": events[::-1], "error": audit_error},
        "operations": operations,
    }

"""Waiting on replicas through the frontend: until new ones serve, until old ones are idle.

A new replica serves once it has loaded its function and dialled the frontend; one that
crashes while loading fails the wait at once, with its last log lines. A retiring replica is
drained (no batch in flight) before ``docker stop``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.facts import serving_ids
from clipper_deploy.orchestration.fleet import Fleet
from clipper_deploy.orchestration.progress import ReplicaState, clean_line
from clipper_deploy.settings import DRAIN_TIMEOUT, LOG_LINES_ON_FAILURE

Replica = tuple[str, str]
"""A replica to wait for: its container name and its replica id (``host/container``)."""


def serving_replicas(admin: object, name: str, version: str) -> set[str]:
    """Replica ids of ``name:version`` connected to the frontend."""
    return serving_ids(admin.get_all_containers(), name, version)  # type: ignore[attr-defined]


def wait_until_serving(
    fleet: Fleet, replicas: Mapping[Host, Sequence[Replica]], name: str, version: str
) -> None:
    """Until every replica registered with the frontend; a crashed one fails at once. Each
    replica's state (loading, with its latest log line; serving) goes to ``fleet.emit``.

    The frontend is asked every 50 ms. The crash probes (one SSH command per pending replica,
    at most once a second) run beside that loop, never in it: a probe on a busy host can take
    a second, and a replica that serves meanwhile is seen at once."""
    pending = {rid: (host, container) for host, rs in replicas.items() for container, rid in rs}
    deadline = time.monotonic() + fleet.ready_timeout
    next_probe = 0.0
    probes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crash-probe")
    probing: Future[None] | None = None

    def probe(targets: list[tuple[Host, str]]) -> None:
        for host, container in targets:
            line = fail_if_crashed(fleet, host, container)
            if any(c == container for _, c in list(pending.values())):
                fleet.emit(ReplicaState(host.name, container, "loading", line))

    try:
        while pending:
            for replica in serving_replicas(fleet.admin, name, version) & pending.keys():
                host, container = pending.pop(replica)
                fleet.emit(ReplicaState(host.name, container, "serving"))
                fleet.say(f"[{host.name}] {container} serving")
            if not pending:
                return
            if probing is not None and probing.done():
                probing.result()  # a crash raises its DeployError here
                probing = None
            now = time.monotonic()
            if probing is None and now >= next_probe:
                next_probe = now + 1.0
                probing = probes.submit(probe, list(pending.values()))
            if now > deadline:
                failures = {
                    host.name: f"{container} did not connect to the frontend within "
                    f"{fleet.ready_timeout:.0f} s; its last log lines:\n"
                    + log_tail(fleet, host, container)
                    for host, container in pending.values()
                }
                raise DeployError(
                    f"replicas of {name}:{version} not serving within "
                    f"{fleet.ready_timeout:.0f} s: check that the hosts reach the frontend's "
                    f"replica port at {fleet.replica_address} (clipper_replica_port; "
                    "firewalls), or raise ready_timeout for a model that loads slowly; the "
                    "previous version keeps serving",
                    failures,
                )
            time.sleep(0.05)
    finally:
        probes.shutdown(wait=False, cancel_futures=True)  # a probe in flight ends on its own


def fail_if_crashed(fleet: Fleet, host: Host, container: str) -> str:
    """Raise :class:`DeployError` with its last log lines if ``container`` crashed; else
    return its latest log line."""
    state = fleet.run_script(host, dc.replica_probe(container), warn=True)
    if not state.ok:
        raise DeployError(
            f"replica {container} vanished on {host.name}", {host.name: state.stderr.strip()}
        )
    first, _, latest = state.stdout.strip().partition("\n")
    status, exit_code, restarts, _error = [*first.split("\t"), "", "", ""][:4]
    if status in ("exited", "dead") or (status == "restarting") or int(restarts or 0) > 0:
        how = [f"exit status {exit_code}"] if exit_code not in ("", "0") else []
        how += [f"restarted {restarts} time(s)"] if int(restarts or 0) > 0 else []
        how = how or [status]
        fleet.emit(ReplicaState(host.name, container, "crashed", clean_line(latest)))
        raise DeployError(
            f"replica {container} on {host.name} crashed while loading ({', '.join(how)}); "
            "the previous version keeps serving",
            {host.name: "its last log lines:\n" + log_tail(fleet, host, container)},
        )
    return clean_line(latest)


def log_tail(fleet: Fleet, host: Host, container: str) -> str:
    """The container's last log lines, indented (or why they could not be read)."""
    try:
        argv = dc.logs(container, LOG_LINES_ON_FAILURE, timestamps=False)
        out = fleet.run(host, argv, warn=True)
        text = (out.stdout + out.stderr).strip()
    except Exception as exc:
        text = f"(could not read logs: {exc})"
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"


def drain(fleet: Fleet, replica_ids: set[str], timeout: float = DRAIN_TIMEOUT) -> None:
    """Wait until none of ``replica_ids`` has a batch in flight (two idle looks in a row):
    after a version switch no new batch reaches them, so they can then stop safely."""
    deadline = time.monotonic() + timeout
    idle_looks = 0
    while time.monotonic() < deadline and idle_looks < 2:
        busy = [
            c
            for c in fleet.admin.get_all_containers()
            if c["replica_id"] in replica_ids and c["state"] == "busy"
        ]
        idle_looks = idle_looks + 1 if not busy else 0
        time.sleep(0.05)

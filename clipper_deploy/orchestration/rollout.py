"""Rolling rollout and rollback of a model version over the fleet, host batch by batch.

Per batch (Ansible's ``serial``): start the new version's replicas on the batch's hosts, pass
the health gate (every replica connected and serving, then the playbook's smoke queries on
the new version through the frontend's ``smoke_predict``, before it takes any traffic), and
only then retire that batch's old replicas. The first healthy batch switches the model's
current version atomically in the frontend; old replicas are drained (no batch in flight)
before they stop, so traffic never sees a failed or default answer.

Retiring stops a container without removing it: a rollback ``docker start``\\ s the retained
containers of the previous version (same image, same settings) in seconds. Only the newest
``retain`` versions are kept on each host; older containers and images are pruned.

When a batch fails beyond ``max_fail_percentage`` (:mod:`.plan`), the rollout stops and every
host goes back to the previous version, which keeps serving throughout: retained containers
are started again where they were retired, the frontend switches back, and the new
version's containers and registration are removed. Unlike Kamal, no host is left on a new
version the rest of the fleet gave up on.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.deploy import (
    ContainerOptions,
    DeployError,
    Fleet,
    Made,
    prepare_host,
    replica_specs,
    retire_other_versions,
    serving_replicas,
    wait_until_serving,
)
from clipper_deploy.orchestration.placement import place_replicas
from clipper_deploy.orchestration.plan import RolloutPlan

DEFAULT_RETAIN = 3
"""Versions of a model kept on each host (the current one included), for rollbacks."""


class RolloutError(DeployError):
    """A rollout stopped; every host is back on ``previous``. ``failures`` names each host."""


@dataclass(frozen=True)
class SmokeCheck:
    """A query the new version must answer (without a default) before it takes traffic;
    ``expect`` (when not None) is compared with the output."""

    input: Any
    expect: Any = None


@dataclass
class RolloutResult:
    model: str
    version: str
    previous: str | None
    batches: list[list[str]]
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def current_version(fleet: Fleet, model: str) -> dict[str, Any] | None:
    """The frontend's record of ``model``'s current version, or None."""
    for record in fleet.admin.get_all_models(verbose=True):
        if record["model_name"] == model and record.get("is_current_version"):
            return record
    return None


def rollout_bundle(
    fleet: Fleet,
    bundle: Any,
    hosts: Sequence[Host],
    replicas: int,
    plan_serial: Any = None,
    max_fail_percentage: float | None = None,
    *,
    options: ContainerOptions | None = None,
    smoke: Sequence[SmokeCheck] = (),
    retain: int = DEFAULT_RETAIN,
) -> RolloutResult:
    """Roll ``bundle`` out over ``hosts`` batch by batch; see the module docstring.

    The model must already have a current version (the first version is a plain deploy).
    Raises :class:`RolloutError` after bringing every host back when the rollout stops.
    """
    started = time.monotonic()
    options = options or ContainerOptions()
    name, version = bundle.model["name"], str(bundle.model["version"])
    previous = current_version(fleet, name)
    if previous is None:
        raise DeployError(f"model {name} has no current version: deploy it first")
    if previous["model_version"] == version:
        raise DeployError(f"version {version} of {name} is already current: roll out a new version")
    placement = place_replicas(list(hosts), replicas)
    specs = replica_specs(fleet, bundle, placement, options)
    plan = RolloutPlan.build(list(placement), plan_serial, max_fail_percentage)
    fleet.say(plan.describe())

    if _registered(fleet, name, version) is None:
        fleet.admin.add_model(
            name,
            version,
            bundle.model["input_type"],
            list(bundle.model.get("labels", [])),
            container_name=dc.image_name(name, version),
            model_data_path=bundle.sha256,
        )
    fleet.say("Published model to Clipper")

    def start(host: Host, host_specs: list[dc.ReplicaSpec]) -> None:
        prepare_host(fleet, host, bundle, dc.image_name(name, version), host_specs, Made())

    result = _roll(fleet, name, version, previous["model_version"], specs, plan, start, smoke)
    unplaced = [h for h in hosts if h not in placement]  # fewer replicas than before
    retire_other_versions(fleet, unplaced, name, keep=version)
    prune_versions(fleet, list(placement), name, keep_current=version, retain=retain)
    result.seconds = time.monotonic() - started
    return result


def rollback(fleet: Fleet, hosts: Sequence[Host], model: str, to: str | None = None) -> str:
    """Switch ``model`` back to a retained version (default: the newest one before the
    current) by starting its retained containers; returns the version now current."""
    current = current_version(fleet, model)
    if current is None:
        raise DeployError(f"model {model} has no current version to roll back from")
    now = current["model_version"]
    retained = _retained(fleet, hosts, model)
    versions = sorted({v for per_host in retained.values() for v in per_host}, key=version_key)
    if to is None:
        older = [v for v in versions if version_key(v) < version_key(now)]
        if not older:
            raise DeployError(
                f"no version of {model} older than {now} is retained on the hosts: "
                "nothing to roll back to (deploy the old version again)"
            )
        to = older[-1]
    if to == now:
        fleet.say(f"{model}:{to} is already current")
        return to
    holders = [h for h in hosts if to in retained.get(h.name, {})]
    if not holders:
        raise DeployError(
            f"version {to} of {model} is not retained on any host (pruned, or never "
            f"deployed): deploy it again with `invoke deploy --version {to}`"
        )
    started = time.monotonic()
    specs = {h: retained[h.name][to] for h in holders}
    failures: dict[str, str] = {}

    def one(host: Host) -> None:
        try:
            names = [c.name for c in specs[host]]
            result = fleet.run(host, ["docker", "start", *names], warn=True)
            if not result.ok:
                raise DeployError(f"docker start failed: {result.stderr.strip()}")
            wait_until_serving(fleet, {host: [_spec(c, host) for c in specs[host]]}, model, to)
        except Exception as exc:
            failures[host.name] = fleet.why(host, exc)

    _parallel(fleet, holders, one)
    if failures:
        for host in holders:
            with contextlib.suppress(Exception):
                fleet.run(host, ["docker", "stop", *[c.name for c in specs[host]]], warn=True)
        raise DeployError(f"rollback of {model} to {to} failed; {now} still serves", failures)
    fleet.admin.set_model_version(model, to)
    fleet.say(f"Model {model}:{to} is current again ({time.monotonic() - started:.1f} s)")
    for host in hosts:
        retire_other_versions(fleet, [host], model, keep=to)
    return to


# ------------------------------------------------------------------ the batch loop


def _roll(
    fleet: Fleet,
    name: str,
    version: str,
    previous: str,
    specs: Mapping[Host, list[dc.ReplicaSpec]],
    plan: RolloutPlan,
    start: Callable[[Host, list[dc.ReplicaSpec]], None],
    smoke: Sequence[SmokeCheck],
) -> RolloutResult:
    done: list[Host] = []
    failed: dict[str, str] = {}
    switched = False
    batches = [[h.name for h in batch] for batch in plan.batches]
    for index, batch in enumerate(plan.batches):
        fleet.say(f"Batch {index + 1}/{len(plan.batches)}: {', '.join(h.name for h in batch)}")
        batch_failures: dict[str, str] = {}

        def one(host: Host, batch_failures: dict[str, str] = batch_failures) -> None:
            try:
                start(host, specs[host])
                wait_until_serving(fleet, {host: specs[host]}, name, version)
            except Exception as exc:
                batch_failures[host.name] = fleet.why(host, exc)

        _parallel(fleet, batch, one)
        healthy = [h for h in batch if h.name not in batch_failures]
        if healthy and smoke:
            why = _smoke_failure(fleet, name, version, smoke, sum(len(specs[h]) for h in healthy))
            if why:
                batch_failures.update({h.name: why for h in healthy})
                healthy = []
        for host in batch:
            if host.name in batch_failures:
                fleet.say(f"[{host.name}] failed: {batch_failures[host.name]}")
                _remove(fleet, host, [s.name for s in specs[host]])
        failed.update(batch_failures)
        if plan.stops_after(index, len(batch_failures)):
            _bring_back(fleet, name, version, previous, done, batch, specs, switched)
            raise RolloutError(
                f"rollout of {name}:{version} stopped at batch {index + 1} of "
                f"{len(plan.batches)} ({len(batch_failures)} of {len(batch)} host(s) failed, "
                f"max_fail_percentage {plan.max_fail_percentage or 0}); every host is back "
                f"on version {previous}, which kept serving",
                failed,
            )
        if not healthy:
            continue
        if not switched:
            fleet.admin.set_model_version(name, version)
            switched = True
            fleet.say(f"Model {name}:{version} is current (serving from {healthy[0].name} on)")
        for host in healthy:
            retire_other_versions(fleet, [host], name, keep=version)
        done.extend(healthy)
    if failed:
        fleet.say(f"Hosts left on version {previous}: {', '.join(failed)} (failures tolerated)")
    return RolloutResult(name, version, previous, batches, failed)


def _smoke_failure(
    fleet: Fleet, name: str, version: str, smoke: Sequence[SmokeCheck], rounds: int
) -> str | None:
    """Why the smoke queries fail on ``name:version``, or None. Each query runs ``rounds``
    times so that, load-balanced, every new replica sees it."""
    for check in smoke:
        for _ in range(max(1, rounds)):
            try:
                answer = fleet.admin.smoke_predict(name, version, check.input)
            except Exception as exc:
                return f"smoke query {check.input!r} failed: {exc}"
            if answer["default"]:
                return (
                    f"smoke query {check.input!r} got the default output: "
                    f"{answer.get('explanation')}"
                )
            if check.expect is not None and answer["output"] != check.expect:
                return (
                    f"smoke query {check.input!r} answered {answer['output']!r}, "
                    f"expected {check.expect!r}"
                )
    fleet.say(f"Smoke queries passed on {name}:{version}")
    return None


def _bring_back(
    fleet: Fleet,
    name: str,
    version: str,
    previous: str,
    done: list[Host],
    batch: list[Host],
    specs: Mapping[Host, list[dc.ReplicaSpec]],
    switched: bool,
) -> None:
    """Undo a stopped rollout: previous version running on every host and current again."""
    fleet.say(f"Rollout stopped: bringing every host back to {name}:{previous}")
    for host in done:
        retained = _retained(fleet, [host], name).get(host.name, {}).get(previous, [])
        if retained:
            fleet.run(host, ["docker", "start", *[c.name for c in retained]], warn=True)
            with contextlib.suppress(DeployError):
                wait_until_serving(
                    fleet, {host: [_spec(c, host) for c in retained]}, name, previous
                )
    if switched:
        fleet.admin.set_model_version(name, previous)
        fleet.say(f"Model {name}:{previous} is current again")
    for host in [*done, *batch]:
        _remove(fleet, host, [s.name for s in specs[host]])
        with contextlib.suppress(Exception):
            fleet.run(host, dc.remove_image(dc.image_name(name, version)), warn=True)
    with contextlib.suppress(Exception):
        fleet.admin.delete_versioned_model(name, version)


# ------------------------------------------------------------------ retire, retain, prune


def _retained(
    fleet: Fleet, hosts: Sequence[Host], name: str
) -> dict[str, dict[str, list[dc.ContainerInfo]]]:
    """Per host, per version: ``name``'s containers (running or stopped)."""
    found: dict[str, dict[str, list[dc.ContainerInfo]]] = {}
    for host in hosts:
        for c in fleet.containers(host, name):
            found.setdefault(host.name, {}).setdefault(c.version, []).append(c)
    return found


def prune_versions(
    fleet: Fleet, hosts: Sequence[Host], name: str, keep_current: str, retain: int
) -> dict[str, list[str]]:
    """Keep the newest ``retain`` versions of ``name`` on each host (``keep_current`` always);
    remove older versions' containers and images."""
    pruned: dict[str, list[str]] = {}
    for host in hosts:
        try:
            per_version = _retained(fleet, [host], name).get(host.name, {})
        except Exception:
            continue
        versions = sorted(per_version, key=version_key)
        keep = set(versions[-retain:]) | {keep_current}
        for old in [v for v in versions if v not in keep]:
            _remove(fleet, host, [c.name for c in per_version[old]])
            with contextlib.suppress(Exception):
                fleet.run(host, dc.remove_image(dc.image_name(name, old)), warn=True)
            pruned.setdefault(host.name, []).append(old)
        if pruned.get(host.name):
            fleet.say(f"[{host.name}] pruned versions {', '.join(pruned[host.name])}")
    return pruned


def version_key(version: str) -> tuple[Any, ...]:
    """Order versions naturally: ``"2" < "10"``, ``"v2" < "v10"``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"\d+|\D+", version)
    )


# ------------------------------------------------------------------ helpers


def _spec(container: dc.ContainerInfo, host: Host) -> dc.ReplicaSpec:
    """Enough of a spec to wait for a retained container (its replica id is what counts)."""
    index = int(container.name.rsplit("-", 1)[-1]) if container.name[-1:].isdigit() else 0
    return dc.ReplicaSpec(
        model=container.model,
        version=container.version,
        bundle=container.bundle,
        index=index,
        host=host.name,
        frontend="",
    )


def _remove(fleet: Fleet, host: Host, names: list[str]) -> None:
    if names:
        with contextlib.suppress(Exception):
            fleet.run(host, dc.remove_containers(names), warn=True)


def _registered(fleet: Fleet, name: str, version: str) -> dict[str, Any] | None:
    try:
        return fleet.admin.get_model(name, version)
    except Exception:
        return None


def _parallel(fleet: Fleet, hosts: Sequence[Host], work: Callable[[Host], None]) -> None:
    workers = max(1, min(fleet.max_parallel, len(hosts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollout") as pool:
        list(pool.map(work, hosts))


__all__ = [
    "DEFAULT_RETAIN",
    "RolloutError",
    "RolloutResult",
    "SmokeCheck",
    "current_version",
    "prune_versions",
    "rollback",
    "rollout_bundle",
    "serving_replicas",
    "version_key",
]

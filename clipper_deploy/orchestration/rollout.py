"""Rolling rollout and rollback of a model version over the fleet, host batch by batch.

Per batch (Ansible's ``serial``): start the new version's replicas on the batch's hosts, pass
the health gate (every replica connected and serving, then the playbook's smoke queries on
the new version through the frontend's ``smoke_predict``, before it takes any traffic), and
only then retire that batch's old replicas. The first healthy batch switches the model's
current version atomically in the frontend; old replicas are drained (no batch in flight)
before they stop, so traffic never sees a failed or default answer. The batches and steps
come from :func:`~clipper_deploy.orchestration.plans.plan_rollout`; each batch's facts are
read again just before it runs.

Retiring stops a container without removing it: a rollback ``docker start``\\ s the retained
containers of the previous version (same image, same settings) in seconds
(:func:`~clipper_deploy.orchestration.plans.plan_rollback`). Only the newest ``retain``
versions are kept on each host; older containers and images are pruned.

When a batch fails beyond ``max_fail_percentage`` (:mod:`.plan`), the rollout stops and every
host goes back to the previous version, which keeps serving throughout: retained containers
are started again where they were retired, the frontend switches back, and the new
version's containers and registration are removed. Unlike Kamal, no host is left on a new
version the rest of the fleet gave up on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.apply import PREPARE_KINDS, Executor
from clipper_deploy.orchestration.deploy import deploy_request, read_deploy_facts
from clipper_deploy.orchestration.errors import DeployError, RolloutError
from clipper_deploy.orchestration.facts import read_facts, read_frontend_facts
from clipper_deploy.orchestration.fleet import Fleet
from clipper_deploy.orchestration.plans.deploy import ContainerOptions, DeployRequest
from clipper_deploy.orchestration.plans.retention import plan_prune, plan_retire, version_key
from clipper_deploy.orchestration.plans.rollback import (
    plan_restore,
    plan_rollback,
    rollback_target,
)
from clipper_deploy.orchestration.plans.rollout import RolloutSteps, plan_batch, plan_rollout
from clipper_deploy.orchestration.progress import RolloutBatch, phase
from clipper_deploy.orchestration.readiness import serving_replicas
from clipper_deploy.orchestration.steps import Plan
from clipper_deploy.settings import DEFAULT_RETAIN


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
    plan: Plan | None = None


def current_version(fleet: Fleet, model: str) -> dict[str, Any] | None:
    """The frontend's record of ``model``'s current version, or None."""
    record = read_frontend_facts(fleet.admin).current(model)
    return dict(record) if record is not None else None


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
    check: bool = False,
) -> RolloutResult:
    """Roll ``bundle`` out over ``hosts`` batch by batch; see the module docstring. With
    ``check``, only print the plan.

    The model must already have a current version (the first version is a plain deploy).
    Raises :class:`RolloutError` after bringing every host back when the rollout stops.
    """
    started = time.monotonic()
    request = deploy_request(fleet, bundle, hosts, replicas, options, retain)
    with fleet.scout() as scout:  # batches connect when they run (see Fleet.scout)
        facts = read_deploy_facts(scout, request, hosts)
    steps = plan_rollout(request, facts, plan_serial, max_fail_percentage)
    batches = [list(batch) for batch in steps.batches.batches]
    result = RolloutResult(request.model, request.version, steps.previous, batches)
    result.plan = steps.plan
    if check:
        fleet.say(steps.plan.describe())
        return result
    fleet.say(steps.batches.describe())
    executor = Executor(fleet, request.model, request.version, bundle)
    for step in steps.plan.of_kind("register"):
        executor.on_frontend(step)
    fleet.say("Published model to Clipper")
    result.failed = _roll(fleet, executor, request, steps, smoke)
    final = read_facts(fleet, hosts, request.model, frontend=False)
    retire = [
        step
        for host in request.hosts
        if host not in request.placement  # fewer replicas than before
        for step in plan_retire(request.model, request.version, final.host(host))
    ]
    executor.on_hosts(retire)
    prune = [
        step
        for host in request.placement
        if final.host(host).error is None
        for step in plan_prune(
            request.model, request.version, request.retain, final.host(host), root=request.root
        )
    ]
    executor.on_hosts(prune)
    result.seconds = time.monotonic() - started
    return result


def rollback(
    fleet: Fleet, hosts: Sequence[Host], model: str, to: str | None = None, *, check: bool = False
) -> str:
    """Switch ``model`` back to a retained version (default: the newest one before the
    current) by starting its retained containers; returns the version now current (with
    ``check``: the version it would be, after printing the plan)."""
    names = [h.name for h in hosts]
    facts = read_facts(fleet, hosts, model)
    target = rollback_target(model, to, names, facts)
    plan = plan_rollback(model, target, names, facts)
    if check:
        fleet.say(plan.describe())
        return target
    if not plan.steps:
        fleet.say(f"{model}:{target} is already current")
        return target
    now = facts.frontend.current_version(model)
    started = time.monotonic()
    executor = Executor(fleet, model, target)
    failures = executor.on_hosts(plan.of_kind("start", "wait"), plan.unreadable)
    if failures:
        for step in plan.of_kind("start"):
            with contextlib.suppress(Exception):
                stopped = dc.stop_containers([c.name for c in step.payload])
                fleet.run(fleet.host(step.host), stopped, warn=True)
        raise DeployError(f"rollback of {model} to {target} failed; {now} still serves", failures)
    for step in plan.of_kind("switch"):
        executor.on_frontend(step)
    fleet.say(f"Model {model}:{target} is current again ({time.monotonic() - started:.1f} s)")
    executor.on_hosts(plan.of_kind("retire"))
    return target


# ------------------------------------------------------------------ the batch loop


def _roll(
    fleet: Fleet,
    executor: Executor,
    request: DeployRequest,
    steps: RolloutSteps,
    smoke: Sequence[SmokeCheck],
) -> dict[str, str]:
    """Run the batches; returns the tolerated failures, raises :class:`RolloutError` after
    bringing every host back when a batch stops the rollout."""
    name, version, previous = request.model, request.version, steps.previous
    plan = steps.batches
    specs = request.specs()
    done: list[str] = []
    failed: dict[str, str] = {}
    switched = False
    for index, batch in enumerate(plan.batches):
        fleet.emit(RolloutBatch(index + 1, len(plan.batches), tuple(batch)))
        fleet.say(f"Batch {index + 1}/{len(plan.batches)}: {', '.join(batch)}")
        batch_hosts = [fleet.host(h) for h in batch]
        facts = read_deploy_facts(fleet, request, batch_hosts)
        batch_steps = plan_batch(request, facts, batch)
        with phase(fleet.emit, f"batch {index + 1}/{len(plan.batches)}"):
            batch_failures = executor.on_hosts(
                [s for s in batch_steps if s.kind in (*PREPARE_KINDS, "wait")], facts.unreadable
            )
        healthy = [h for h in batch if h not in batch_failures]
        if healthy and smoke:
            rounds = sum(len(specs[h]) for h in healthy)
            why = _smoke_failure(fleet, name, version, smoke, rounds)
            if why:
                batch_failures.update({h: why for h in healthy})
                healthy = []
        for host in batch:
            if host in batch_failures:
                fleet.say(f"[{host}] failed: {batch_failures[host]}")
                _remove(fleet, fleet.host(host), [s.name for s in specs[host]])
        failed.update(batch_failures)
        if plan.stops_after(index, len(batch_failures)):
            _bring_back(fleet, request, previous, done, list(batch), switched)
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
            fleet.say(f"Model {name}:{version} is current (serving from {healthy[0]} on)")
        executor.on_hosts(
            [step for host in healthy for step in plan_retire(name, version, facts.host(host))]
        )
        done.extend(healthy)
    if failed:
        fleet.say(f"Hosts left on version {previous}: {', '.join(failed)} (failures tolerated)")
    return failed


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
    request: DeployRequest,
    previous: str,
    done: list[str],
    batch: list[str],
    switched: bool,
) -> None:
    """Undo a stopped rollout: previous version running on every host and current again."""
    name, version = request.model, request.version
    fleet.say(f"Rollout stopped: bringing every host back to {name}:{previous}")
    if done:  # their old replicas were retired: start them again (failures: best effort)
        facts = read_facts(fleet, [fleet.host(h) for h in done], name, frontend=False)
        Executor(fleet, name, previous).on_hosts(plan_restore(name, previous, done, facts))
    if switched:
        fleet.admin.set_model_version(name, previous)
        fleet.say(f"Model {name}:{previous} is current again")
    specs = request.specs()
    for host in [*done, *batch]:
        _remove(fleet, fleet.host(host), [s.name for s in specs[host]])
        with contextlib.suppress(Exception):
            fleet.run(fleet.host(host), dc.remove_image(dc.image_name(name, version)), warn=True)
    with contextlib.suppress(Exception):
        fleet.admin.delete_versioned_model(name, version)


def _remove(fleet: Fleet, host: Host, names: list[str]) -> None:
    if names:
        with contextlib.suppress(Exception):
            fleet.run(host, dc.remove_containers(names), warn=True)


__all__ = [
    "DEFAULT_RETAIN",
    "RolloutError",
    "RolloutResult",
    "SmokeCheck",
    "current_version",
    "rollback",
    "rollout_bundle",
    "serving_replicas",
    "version_key",
]

"""The rollout plan: a deploy's host steps in ``serial`` batches, switching after the first.

Per batch: the hosts' base image, upload, build and start steps and a wait (as in
:func:`~.deploy.plan_host`); the first healthy batch switches the frontend to the new version;
each healthy host then retires its old replicas. After the last batch, hosts that get no
replica retire theirs, and every host prunes beyond ``retain``. The executor re-reads a batch's
facts before it runs the batch (:func:`plan_batch`), so a plan printed by ``--check`` is the
one a rollout starts from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.facts import Facts
from clipper_deploy.orchestration.plan import RolloutPlan
from clipper_deploy.orchestration.plans.deploy import DeployRequest, plan_host, plan_sources
from clipper_deploy.orchestration.plans.retention import plan_prune, plan_retire
from clipper_deploy.orchestration.steps import FRONTEND, Plan, Step


@dataclass(frozen=True)
class RolloutSteps:
    """A rollout's batches (host names), the version it replaces, and every step it would
    take if no host failed (``plan``, for ``--check``)."""

    batches: RolloutPlan[str]
    previous: str
    plan: Plan


def plan_batch(request: DeployRequest, facts: Facts, batch: Sequence[str]) -> list[Step]:
    """The start-up steps of one batch's hosts: base image, upload, build, start, wait. Hosts
    that could not be read get none (the executor fails them with the reason)."""
    specs = request.specs()
    readable = {h: specs[h] for h in batch if facts.host(h).error is None}
    sources = plan_sources(request, facts, readable)
    order = sorted(readable, key=lambda h: max((s.round for s in sources[h].values()), default=0))
    steps: list[Step] = []
    for host in order:
        host_specs = specs[host]
        steps += plan_host(request, facts.host(host), host_specs, sources[host])
        steps.append(
            Step(
                "wait",
                host,
                ", ".join(s.name for s in host_specs),
                "until these replicas dial the frontend and pass the health gate",
                payload=tuple((s.name, s.replica_id) for s in host_specs),
            )
        )
    return steps


def plan_rollout(
    request: DeployRequest, facts: Facts, serial: Any = None, max_fail_percentage: Any = None
) -> RolloutSteps:
    """Batches and steps of rolling ``request`` out over its hosts; raises
    :class:`DeployError` when the model has no current version or this one is current, and
    :class:`~clipper_deploy.orchestration.plan.PlanError` for bad ``serial`` or
    ``max_fail_percentage``."""
    model, version = request.model, request.version
    previous = facts.frontend.current_version(model)
    if previous is None:
        raise DeployError(f"model {model} has no current version: deploy it first")
    if previous == version:
        raise DeployError(
            f"version {version} of {model} is already current: roll out a new version"
        )
    placement = request.placement
    batches = RolloutPlan.build(list(placement), serial, max_fail_percentage)
    steps: list[Step] = []
    if facts.frontend.record(model, version) is None:
        steps.append(
            Step(
                "register",
                FRONTEND,
                f"{model}:{version}",
                "the frontend does not know this version",
            )
        )
    for index, batch in enumerate(batches.batches):
        steps += plan_batch(request, facts, batch)
        if index == 0:
            steps.append(
                Step(
                    "switch",
                    FRONTEND,
                    f"{model}:{version}",
                    f"after the first healthy batch (from version {previous})",
                )
            )
        for host in batch:
            steps += plan_retire(model, version, facts.host(host))
    for host in request.hosts:
        if host not in placement:
            steps += plan_retire(model, version, facts.host(host))
    for host in placement:
        steps += plan_prune(
            model, version, request.retain, facts.host(host), [version], request.root
        )
    unreadable = {h: facts.host(h).error or "" for h in placement if facts.host(h).error}
    notes = (batches.describe(),)
    return RolloutSteps(batches, previous, Plan("rollout", tuple(steps), unreadable, notes))

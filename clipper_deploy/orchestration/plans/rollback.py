"""The rollback plan: start a retained version's stopped containers, switch, retire the rest.

The target is ``to``, or by default the newest retained version older than the current one
(natural order: ``"2" < "10"``). Refusals (no current version, nothing older retained, ``to``
retained nowhere, or retained but its model files -- the bundle its containers mount -- gone
from a host) are :class:`~clipper_deploy.orchestration.errors.DeployError`\\ s that say
what to do instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.facts import Facts
from clipper_deploy.orchestration.plans.retention import plan_retire, version_key
from clipper_deploy.orchestration.steps import FRONTEND, Plan, Step


def rollback_target(model: str, to: str | None, hosts: Sequence[str], facts: Facts) -> str:
    """The version a rollback goes to; raises :class:`DeployError` when there is none."""
    now = facts.frontend.current_version(model)
    if now is None:
        raise DeployError(f"model {model} has no current version to roll back from")
    if to is not None:
        return to
    retained = {v for h in hosts for v in facts.host(h).by_version(model)}
    older = sorted((v for v in retained if version_key(v) < version_key(now)), key=version_key)
    if not older:
        raise DeployError(
            f"no version of {model} older than {now} is retained on the hosts: "
            "nothing to roll back to (deploy the old version again)"
        )
    return older[-1]


def plan_restore(model: str, version: str, hosts: Sequence[str], facts: Facts) -> list[Step]:
    """Start ``version``'s retained (stopped) containers on ``hosts`` and wait until they
    serve: a rollback's first steps, and how a stopped rollout brings hosts back."""
    steps: list[Step] = []
    serving = facts.frontend.serving(model, version)
    for host in hosts:
        kept = facts.host(host).by_version(model).get(version, [])
        stopped = [c for c in kept if c.state != "running"]
        if stopped:
            names = [c.name for c in stopped]
            steps.append(
                Step(
                    "start",
                    host,
                    ", ".join(names),
                    f"version {version} is retained here, stopped",
                    dc.shell(dc.start_containers(names)),
                    payload=tuple(stopped),
                )
            )
        pending = [c for c in kept if c.replica not in serving or c.state != "running"]
        if pending:
            steps.append(
                Step(
                    "wait",
                    host,
                    ", ".join(c.name for c in pending),
                    "until these replicas dial the frontend and serve",
                    payload=tuple(
                        (c.name, c.replica or dc.replica_id(host, c.name)) for c in pending
                    ),
                )
            )
    return steps


def plan_rollback(model: str, to: str | None, hosts: Sequence[str], facts: Facts) -> Plan:
    """Steps that make ``model`` serve version ``to`` (default: the one before the current)
    from its retained containers on ``hosts``. Hosts that cannot be read are named in
    ``unreadable``: the executor fails the rollback with their reasons before the switch."""
    target = rollback_target(model, to, hosts, facts)
    now = facts.frontend.current_version(model)
    if target == now:
        return Plan("rollback", (), notes=(f"{model}:{target} is already current",))
    holders = [h for h in hosts if target in facts.host(h).by_version(model)]
    if not holders:
        raise DeployError(
            f"version {target} of {model} is not retained on any host (pruned, or never "
            f"deployed): deploy it again with `invoke deploy --version {target}`"
        )
    gone = {
        h: sorted({c.bundle for c in facts.host(h).by_version(model)[target]} - {""})
        for h in holders
    }
    gone = {
        h: [b for b in bundles if not facts.host(h).has_bundle(b)] for h, bundles in gone.items()
    }
    gone = {h: bundles for h, bundles in gone.items() if bundles}
    if gone:
        where = "; ".join(
            f"{h}: bundle {', '.join(b[:12] for b in bundles)}" for h, bundles in gone.items()
        )
        raise DeployError(
            f"version {target} of {model} is retained, but its model files are gone from "
            f"the hosts' bundles directory ({where}), so its containers cannot start: deploy "
            "that function again (as a new version if the frontend still has this one)"
        )
    steps = plan_restore(model, target, holders, facts)
    steps.append(Step("switch", FRONTEND, f"{model}:{target}", f"back from version {now}"))
    for host in hosts:
        if facts.host(host).error is None:
            steps += plan_retire(model, target, facts.host(host))
    unreadable = {h: facts.host(h).error or "" for h in hosts if facts.host(h).error}
    return Plan("rollback", tuple(steps), unreadable)

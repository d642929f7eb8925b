"""Stop a model: remove its containers (of some versions, or all) and their model files from
every host (images are kept)."""

from __future__ import annotations

from collections.abc import Sequence

from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.apply import Executor
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.facts import read_facts
from clipper_deploy.orchestration.fleet import Fleet
from clipper_deploy.orchestration.operation import OperationGuard
from clipper_deploy.orchestration.plans import plan_stop


def stop_model(
    fleet: Fleet,
    guard: OperationGuard,
    model: str,
    versions: Sequence[str] | None,
    hosts: Sequence[Host],
    *,
    check: bool = False,
) -> dict[str, list[str]]:
    """Remove ``model``'s containers (only ``versions`` if given) on ``hosts`` under the
    model's lock; returns the removed names per host. With ``check``, print the plan and
    return what would be removed. Raises :class:`DeployError` naming hosts that failed."""
    facts = read_facts(fleet, hosts, model, frontend=False)
    plan = plan_stop(model, versions, [h.name for h in hosts], facts, fleet.root)
    removed = {s.host: list(s.payload) for s in plan}
    if check:
        fleet.say(plan.describe())
        return removed
    version = ",".join(versions) if versions else None
    with guard.operation("stop", model, version, hosts):
        failures = Executor(fleet, model, version or "").on_hosts(plan.steps, plan.unreadable)
    if failures:
        raise DeployError(f"stop of {model} failed on {len(failures)} host(s)", failures)
    return removed

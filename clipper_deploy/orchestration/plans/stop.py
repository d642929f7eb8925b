"""The stop plan: remove a model's containers (of some versions, or all) from every host."""

from __future__ import annotations

from collections.abc import Sequence

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.orchestration.facts import Facts
from clipper_deploy.orchestration.steps import Plan, Step


def plan_stop(
    model: str, versions: Sequence[str] | None, hosts: Sequence[str], facts: Facts
) -> Plan:
    """One ``remove`` step per host holding containers of ``model`` (only ``versions`` when
    given; images are kept)."""
    steps = []
    for host in hosts:
        found = [
            c for c in facts.host(host).of_model(model) if versions is None or c.version in versions
        ]
        if found:
            names = [c.name for c in found]
            which = "every version" if versions is None else f"version {', '.join(versions)}"
            steps.append(
                Step(
                    "remove",
                    host,
                    ", ".join(names),
                    f"stop {model}: {which}",
                    dc.shell(dc.remove_containers(names)),
                    payload=tuple(names),
                )
            )
    return Plan("stop", tuple(steps), facts.unreadable)

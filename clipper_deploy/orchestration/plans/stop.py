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
    given; images are kept, the replicas' keys are removed)."""
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
                    " && ".join(
                        [
                            dc.shell(dc.remove_containers(names)),
                            *(dc.remove_keys(model, v) for v in sorted({c.version for c in found})),
                        ]
                    ),
                    payload=tuple(names),
                )
            )
    return Plan("stop", tuple(steps), facts.unreadable)

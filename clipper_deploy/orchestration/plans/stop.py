"""The stop plan: remove a model's containers (of some versions, or all) from every host, and
the bundles they were started from (the versions' model files, which only their containers
mount); images are kept."""

from __future__ import annotations

from collections.abc import Sequence

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.upload import is_bundle_hash, remove_bundles_command
from clipper_deploy.orchestration.facts import Facts
from clipper_deploy.orchestration.steps import Plan, Step
from clipper_deploy.settings import REMOTE_ROOT


def plan_stop(
    model: str,
    versions: Sequence[str] | None,
    hosts: Sequence[str],
    facts: Facts,
    root: str = REMOTE_ROOT,
) -> Plan:
    """One ``remove`` step per host holding containers of ``model`` (only ``versions`` when
    given): the containers, their replicas' keys, then their bundles under ``root`` that no
    remaining container of the model uses; images are kept."""
    steps = []
    for host in hosts:
        mine = facts.host(host).of_model(model)
        found = [c for c in mine if versions is None or c.version in versions]
        if found:
            names = [c.name for c in found]
            still_used = {c.bundle for c in mine if c not in found}
            bundles = sorted(b for b in {c.bundle for c in found} - still_used if is_bundle_hash(b))
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
                            remove_bundles_command(bundles, root),
                        ]
                    ),
                    payload=tuple(names),
                )
            )
    return Plan("stop", tuple(steps), facts.unreadable)

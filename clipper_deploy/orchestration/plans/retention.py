"""Which of a model's versions to retire (stop, keep) and prune (remove) on each host.

Retiring stops a running container of another version without removing it, so a rollback
only has to ``docker start`` it (its replicas' keys stay on the host with it); the newest
``retain`` versions per host are kept (the current one always), older ones' containers,
images, replica keys and bundles are pruned: the bundle holds the version's model files (its
pickle, mounted into its containers), so pruning it frees the version's state on the host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.upload import is_bundle_hash, remove_bundles_command
from clipper_deploy.orchestration.facts import HostFacts
from clipper_deploy.orchestration.steps import Step
from clipper_deploy.settings import REMOTE_ROOT, STOP_TIMEOUT


def version_key(version: str) -> tuple[Any, ...]:
    """Order versions naturally: ``"2" < "10"``, ``"v2" < "v10"``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"\d+|\D+", version)
    )


def plan_retire(model: str, keep: str, host: HostFacts) -> list[Step]:
    """Stop ``model``'s running containers of versions other than ``keep`` on ``host``."""
    old = [c for c in host.of_model(model) if c.version != keep and c.state == "running"]
    if not old:
        return []
    names = [c.name for c in old]
    versions = ", ".join(sorted({c.version for c in old}, key=version_key))
    return [
        Step(
            "retire",
            host.host,
            ", ".join(names),
            f"version {versions} still runs; {keep} replaces it (kept stopped for rollback)",
            dc.shell(dc.stop_containers(names, STOP_TIMEOUT)),
            payload=tuple(old),
        )
    ]


def plan_prune(
    model: str,
    keep_current: str,
    retain: int,
    host: HostFacts,
    adding: Iterable[str] = (),
    root: str = REMOTE_ROOT,
) -> list[Step]:
    """Remove ``model``'s versions beyond the newest ``retain`` on ``host`` (``keep_current``
    is always kept): their containers, their image and their bundles (model files) under
    ``root``, but not a bundle a kept container still uses; ``adding`` are versions the same
    operation puts on the host first."""
    per_version = host.by_version(model)
    versions = sorted(set(per_version) | set(adding), key=version_key)
    keep = set(versions[-retain:] if retain > 0 else []) | {keep_current}
    kept_bundles = {c.bundle for v in keep for c in per_version.get(v, [])}
    steps = []
    for old in [v for v in versions if v not in keep and v in per_version]:
        names = [c.name for c in per_version[old]]
        image = dc.image_name(model, old)
        bundles = sorted({c.bundle for c in per_version[old]} - kept_bundles)
        bundles = [b for b in bundles if is_bundle_hash(b)]
        steps.append(
            Step(
                "prune",
                host.host,
                f"version {old} ({', '.join(names)})",
                f"older than the newest {retain} version(s) kept (retain: {retain})",
                f"{dc.shell(dc.remove_containers(names))}; "
                f"{dc.shell(dc.remove_image(image))} >/dev/null 2>&1; "
                f"{remove_bundles_command(bundles, root)}; "
                f"{dc.remove_keys(model, old)} || true",
                payload=old,
            )
        )
    return steps

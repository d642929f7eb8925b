"""Deploy a bundle to Docker hosts: read the facts, plan, apply.

The order, with the seed's lines::

    Published model to Clipper                      (the version is registered, not yet current)
    Found <image> on <host>                         (or shipped from the client: no registry)
    Copied model data to host <host> (...)          (only blobs the host lacks)
    [<host>] built <image> ...                      (or tagged: an image of the environment)
    [<host>] started <container> ...
    [<host>] <container> serving                    (it dialled the frontend and registered)

Only when every replica serves does the new version become current. Any failure removes
what this deploy made (its containers, its freshly built images, its registration) and
leaves the previous version serving, untouched. A deploy that already succeeded, run again,
changes nothing: its plan has no steps (``deploy --check`` says "nothing to change").
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipper_deploy.frontend.client import AdminClient, FrontendError
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.apply import PREPARE_KINDS, Executor, build_failure_tail
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.facts import Facts, read_facts
from clipper_deploy.orchestration.fleet import Fleet
from clipper_deploy.orchestration.plans.deploy import ContainerOptions, DeployRequest, plan_deploy
from clipper_deploy.orchestration.progress import phase
from clipper_deploy.orchestration.readiness import serving_replicas
from clipper_deploy.orchestration.steps import Plan
from clipper_deploy.settings import DEFAULT_RETAIN


@dataclass
class DeployResult:
    """What a deploy did: ``changed`` is False when it was already deployed and serving;
    ``plan`` is what it applied (or, with ``check``, would apply)."""

    model: str
    version: str
    replicas: dict[str, list[str]]
    changed: bool = True
    seconds: float = 0.0
    plan: Plan | None = None


def bundle_blobs(bundle: Any) -> dict[str, int]:
    """The bundle's blobs: sha256 -> size. The facts ask which of them every host holds, so
    the plan knows who can pass large ones on and an upload sends what a host lacks without
    asking it first."""
    return {sha: (Path(bundle.path) / rel).stat().st_size for rel, sha in bundle.files.items()}


def deploy_request(
    fleet: Fleet,
    bundle: Any,
    hosts: Sequence[Host],
    replicas: int = 1,
    options: ContainerOptions | None = None,
    retain: int = DEFAULT_RETAIN,
) -> DeployRequest:
    """The request to deploy ``bundle`` (from :func:`clipper_deploy.packaging.build_bundle`)."""
    model = bundle.model
    return DeployRequest(
        model=model["name"],
        version=str(model["version"]),
        bundle=bundle.sha256,
        environment=getattr(bundle, "environment", "") or bundle.sha256,
        hosts=tuple(h.name for h in hosts),
        replicas=replicas,
        input_type=model["input_type"],
        labels=tuple(model.get("labels", [])),
        frontend=fleet.replica_address,
        options=options or ContainerOptions(),
        base_image=fleet.base_image.name,
        base_shipped=fleet.base_image.shipped,
        retain=retain,
        root=fleet.root,
        blobs=bundle_blobs(bundle),
        relay_width=fleet.relay_width,
        image_id=getattr(bundle, "image_id", None) or "",
        load_files=tuple(getattr(bundle, "load_files", ())),
    )


def read_deploy_facts(fleet: Fleet, request: DeployRequest, hosts: Sequence[Host]) -> Facts:
    """The facts a deploy plan reads: each host's containers of the model, the version's
    image, the base image and the bundle; the frontend's versions and replicas."""
    return read_facts(
        fleet,
        hosts,
        request.model,
        image=request.image,
        base_image=request.base_image,
        bundle_dir=request.bundle_dir,
        environment=request.environment,
        blobs=sorted(request.blobs),
    )


def deploy_bundle(
    fleet: Fleet,
    bundle: Any,
    hosts: Sequence[Host],
    replicas: int = 1,
    options: ContainerOptions | None = None,
    *,
    retain: int = DEFAULT_RETAIN,
    check: bool = False,
) -> DeployResult:
    """Deploy ``bundle`` to ``hosts``: ``replicas`` containers spread over them; once every
    one serves, this version becomes current, the model's other versions are retired (kept
    stopped for rollback) and versions beyond ``retain`` pruned. With ``check``, only the
    plan is computed (and printed); nothing changes. Raises :class:`DeployError`."""
    started = time.monotonic()
    require_frontend(fleet.admin)
    request = deploy_request(fleet, bundle, hosts, replicas, options, retain)
    plan = plan_deploy(request, read_deploy_facts(fleet, request, hosts))
    layout = {h: [s.name for s in ss] for h, ss in request.specs().items()}
    result = DeployResult(request.model, request.version, layout, plan=plan)
    if check:
        fleet.say(plan.describe())
        result.changed = bool(plan.steps)
        return result
    apply_deploy(fleet, request, bundle, plan)
    result.changed = plan.changes_serving
    result.seconds = time.monotonic() - started
    return result


def apply_deploy(fleet: Fleet, request: DeployRequest, bundle: Any, plan: Plan) -> None:
    """Run a deploy plan: register, prepare the hosts, wait, switch; undo all on failure;
    then retire and prune."""
    name, version = request.model, request.version
    executor = Executor(fleet, name, version, bundle)
    if not plan.changes_serving:
        fleet.say(f"Model {name}:{version} is already deployed and serving: nothing to do")
    else:
        with phase(fleet.emit, "register"):
            for step in plan.of_kind("register"):
                executor.on_frontend(step)
        fleet.say("Published model to Clipper")
        try:
            with phase(fleet.emit, "prepare"):
                failures = executor.on_hosts(plan.of_kind(*PREPARE_KINDS), plan.unreadable)
            if failures:
                raise DeployError(
                    f"deploy failed on {len(failures)} of {len(request.placement)} host(s); "
                    "the previous version keeps serving",
                    failures,
                )
            with phase(fleet.emit, "wait"):
                executor.wait({s.host: s.payload for s in plan.of_kind("wait")})
            with phase(fleet.emit, "switch"):
                for step in plan.of_kind("switch"):
                    executor.on_frontend(step)
            fleet.say(f"Model {name}:{version} is current: {request.replicas} replica(s) serving")
        except BaseException as exc:
            fleet.say(f"Deploy of {name}:{version} failed; removing what it made")
            executor.undo()
            if isinstance(exc, DeployError | KeyboardInterrupt):
                raise
            raise DeployError(f"deploy of {name}:{version} failed: {exc}") from exc
    for note in plan.notes:
        fleet.say(note)
    retire = plan.of_kind("retire", "prune")
    if retire:
        with phase(fleet.emit, "retire"):
            executor.on_hosts(retire)


def require_frontend(admin: AdminClient) -> None:
    """Raise :class:`DeployError` saying how to start the frontend when nothing answers at
    its admin address (an answer of any kind is enough: later calls report their errors)."""
    try:
        admin.ping()
    except FrontendError as exc:
        if exc.status is not None:
            return
        reason = exc.cause.removeprefix(f"{admin.base_url}: ")
        raise DeployError(
            f"cannot reach the frontend at {admin.base_url} ({reason}): start it with "
            "clipper.start() or `invoke frontend.start`; nothing was deployed"
        ) from None


__all__ = [
    "ContainerOptions",
    "DeployError",
    "DeployRequest",
    "DeployResult",
    "Fleet",
    "build_failure_tail",
    "deploy_bundle",
    "require_frontend",
    "serving_replicas",
]

"""The deploy plan: what it takes for a bundle's version to serve with every replica.

Per host, from its facts: ship the base image if it is missing, upload the bundle if it is not
assembled there (its model files are mounted into the replicas, so it is uploaded even when
the image is already there); unless the version's image is of the bundle's environment, tag
an image of that environment the host already has (a new version of a function in the same
environment: no build at all) or else load the image the client made from the bundle
(``docker load``: no build either), or else build it; start each replica that does not already run
this bundle, wait for the new replicas. The base image and a bundle's large blobs are sent by
the client once: hosts that hold them pass them on (:mod:`.fanout`), and the hosts' steps are
ordered so a holder comes before its receivers. On the frontend: register the version if it
is not, switch to it unless it is current. Then retire the other versions' running
containers and prune versions beyond ``retain``. A version already deployed and serving gives
no steps but retire/prune ones (none after a deploy: "nothing to change").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.upload import bundle_dir, model_dir
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.facts import Facts, HostFacts
from clipper_deploy.orchestration.placement import place_replicas
from clipper_deploy.orchestration.plans.fanout import Source, fan_out
from clipper_deploy.orchestration.plans.retention import plan_prune, plan_retire
from clipper_deploy.orchestration.steps import FRONTEND, Plan, Step
from clipper_deploy.settings import (
    DEFAULT_REPLICA_PORT,
    DEFAULT_RETAIN,
    RELAY_MIN_BYTES,
    RELAY_WIDTH,
    REMOTE_ROOT,
)


@dataclass(frozen=True)
class ContainerOptions:
    """Resource limits and environment of the model containers."""

    cpus: float | None = None
    memory: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    network: str = dc.DEFAULT_NETWORK


@dataclass(frozen=True)
class DeployRequest:
    """What to deploy: ``model:version`` from bundle ``bundle`` (its sha256), whose image is
    built from ``environment`` (the bundle's hash without its model files; "" means the
    bundle's own hash), ``replicas`` spread over ``hosts`` (names, in order), reaching the
    frontend at ``frontend`` (``address:port``), built FROM ``base_image`` (``base_shipped``:
    from the client's tarball; else the host pulls it). ``blobs`` maps the bundle's blobs
    to their sizes and ``base_size`` is the base image's; ``relay_width`` is how many
    hosts one holder passes a layer to at once (0: the client sends to every host). With an
    ``image_id``, a host that needs the image loads it from the bundle instead of building."""

    model: str
    version: str
    bundle: str
    hosts: tuple[str, ...]
    environment: str = ""
    replicas: int = 1
    input_type: str = "doubles"
    labels: tuple[str, ...] = ()
    frontend: str = f"127.0.0.1:{DEFAULT_REPLICA_PORT}"
    options: ContainerOptions = field(default_factory=ContainerOptions)
    base_image: str = "clipper-deploy/base"
    base_shipped: bool = True
    retain: int = DEFAULT_RETAIN
    root: str = REMOTE_ROOT
    blobs: Mapping[str, int] = field(default_factory=dict)
    base_size: int = 0
    relay_width: int = RELAY_WIDTH
    image_id: str = ""
    """The ID of the image the client made ("" when hosts build the bundle's Dockerfile)."""
    load_files: tuple[str, ...] = ()
    """The bundle files a host streams into ``docker load`` to make that image."""

    @property
    def image(self) -> str:
        return dc.image_name(self.model, self.version)

    @property
    def bundle_dir(self) -> str:
        return bundle_dir(self.bundle, self.root)

    @property
    def image_environment(self) -> str:
        """What the version's image must be built from (:attr:`environment`, else the bundle)."""
        return self.environment or self.bundle

    @property
    def model_dir(self) -> str:
        """The bundle's model files on a host (mounted read-only into the replicas)."""
        return model_dir(self.bundle, self.root)

    @property
    def placement(self) -> dict[str, list[int]]:
        """Host name -> replica indexes (hosts without replicas are left out)."""
        return place_replicas(list(self.hosts), self.replicas)

    def specs(self) -> dict[str, list[dc.ReplicaSpec]]:
        """The containers to run, per host name."""
        return {
            host: [
                dc.ReplicaSpec(
                    model=self.model,
                    version=self.version,
                    bundle=self.bundle,
                    index=i,
                    host=host,
                    frontend=self.frontend,
                    model_dir=self.model_dir,
                    input_type=self.input_type,
                    cpus=self.options.cpus,
                    memory=self.options.memory,
                    env=dict(self.options.env),
                    network=self.options.network,
                )
                for i in indexes
            ]
            for host, indexes in self.placement.items()
        }


def plan_deploy(request: DeployRequest, facts: Facts) -> Plan:
    """The steps that make ``request`` serve, given ``facts``; see the module docstring.

    Raises :class:`DeployError` when the version is registered with another bundle.
    """
    model, version = request.model, request.version
    record = facts.frontend.record(model, version)
    if record is not None and record.get("model_data_path") not in ("", request.bundle):
        raise DeployError(
            f"version {version} of model {model} is already deployed with another bundle "
            f"({str(record.get('model_data_path', ''))[:12]}), not {request.bundle[:12]}: "
            f"deploy it as a new version, or stop version {version} first "
            f"(`invoke stop {model} --version {version}`)"
        )
    specs = request.specs()
    unreadable = {h: facts.host(h).error or "" for h in specs if facts.host(h).error}
    readable = {h: ss for h, ss in specs.items() if h not in unreadable}
    steps: list[Step] = []
    if record is None:
        steps.append(
            Step(
                "register",
                FRONTEND,
                f"{model}:{version}",
                "the frontend does not know this version",
                payload=request,
            )
        )
    replace_running = record is None
    sources = plan_sources(request, facts, readable, replace_running=replace_running)
    order = sorted(readable, key=lambda h: max((s.round for s in sources[h].values()), default=0))
    for host in order:
        steps += plan_host(
            request,
            facts.host(host),
            readable[host],
            sources[host],
            replace_running=replace_running,
        )
    serving = facts.frontend.serving(model, version)
    started = {s.subject for s in steps if s.kind == "start"}
    for host, host_specs in readable.items():
        pending = [s for s in host_specs if s.replica_id not in serving or s.name in started]
        if pending:
            steps.append(
                Step(
                    "wait",
                    host,
                    ", ".join(s.name for s in pending),
                    "until these replicas dial the frontend and serve",
                    payload=tuple((s.name, s.replica_id) for s in pending),
                )
            )
    current = record is not None and bool(record.get("is_current_version"))
    if steps or not current or unreadable:
        steps.append(
            Step(
                "switch",
                FRONTEND,
                f"{model}:{version}",
                "make it current once every replica serves"
                if not current
                else "it is current; keep it so once every replica serves",
            )
        )
    notes = tuple(
        f"[{host}] could not list old containers: {why}"
        for host, why in facts.unreadable.items()
        if host not in unreadable
    )
    steps += plan_retention(request, facts)
    return Plan("deploy", tuple(steps), unreadable, notes)


@dataclass(frozen=True)
class Transfer:
    """What a ``ship-base`` or ``upload`` step carries: the request, who sends (``source``: a
    host that holds the layer, or None for the client) and, for an upload, the bundle's blobs
    the host lacked when its facts were read (None: ask the host first)."""

    request: DeployRequest
    source: str | None = None
    missing: tuple[str, ...] | None = None


@dataclass(frozen=True)
class HostNeeds:
    """What one host lacks for ``specs``: replicas to start, an image of the version (and
    whether it must be built, or an image of its environment can be tagged), the base image,
    the bundle."""

    to_start: tuple[dc.ReplicaSpec, ...]
    image: bool
    build: bool
    base: bool
    bundle: bool
    missing_bytes: int
    """Bytes of the bundle's large blobs the host does not hold."""


def host_needs(
    request: DeployRequest,
    host: HostFacts,
    specs: Sequence[dc.ReplicaSpec],
    *,
    replace_running: bool = False,
) -> HostNeeds:
    """What ``host`` lacks for ``specs``. With ``replace_running`` (the frontend does not know
    the version, so replicas already running it hold keys of an earlier registration),
    running containers are replaced too."""
    running_bundle = {
        c.name
        for c in host.of_model(request.model)
        if c.state == "running" and c.bundle == request.bundle and not replace_running
    }
    to_start = tuple(s for s in specs if s.name not in running_bundle)
    image = bool(to_start) and host.image_environment != request.image_environment
    build = image and not host.environment_image
    return HostNeeds(
        to_start,
        image,
        build,
        base=build and not host.base_image_present,
        bundle=bool(to_start) and not host.bundle_present,
        missing_bytes=sum(n for sha, n in request.blobs.items() if sha not in host.blobs),
    )


def plan_sources(
    request: DeployRequest,
    facts: Facts,
    specs: Mapping[str, Sequence[dc.ReplicaSpec]],
    *,
    replace_running: bool = False,
) -> dict[str, dict[str, Source]]:
    """Per host of ``specs``: where its ``ship-base`` and ``upload`` come from (:func:`fan_out`
    over the request's readable hosts). A host that lacks less than ``RELAY_MIN_BYTES`` of
    the bundle gets it from the client, and then holds it for others; a pulled base image is
    never relayed."""
    needs = {
        h: host_needs(request, facts.host(h), ss, replace_running=replace_running)
        for h, ss in specs.items()
    }
    readable = [h for h in request.hosts if facts.host(h).error is None]
    base_holders = [h for h in readable if facts.host(h).base_image_present]
    bundle_holders = [h for h in readable if facts.host(h).bundle_present]
    width = request.relay_width
    base = fan_out(
        [h for h, n in needs.items() if n.base], base_holders, width if request.base_shipped else 0
    )
    small = [h for h, n in needs.items() if n.bundle and n.missing_bytes < RELAY_MIN_BYTES]
    large = [h for h, n in needs.items() if n.bundle and n.missing_bytes >= RELAY_MIN_BYTES]
    bundle = {h: Source(None, 0) for h in small}
    bundle.update(fan_out(large, [*bundle_holders, *small], width))
    sources: dict[str, dict[str, Source]] = {h: {} for h in specs}
    for host, source in base.items():
        sources[host]["ship-base"] = source
    for host, source in bundle.items():
        sources[host]["upload"] = source
    return sources


def plan_host(
    request: DeployRequest,
    host: HostFacts,
    specs: Sequence[dc.ReplicaSpec],
    sources: Mapping[str, Source] | None = None,
    *,
    replace_running: bool = False,
) -> list[Step]:
    """One host's base image, upload, build (or tag) and start steps for ``specs``;
    ``sources`` says which host passes it the base image and the bundle (default: the
    client); ``replace_running`` as for :func:`host_needs`."""
    steps: list[Step] = []
    needs = host_needs(request, host, specs, replace_running=replace_running)
    to_start, needs_image, needs_build = needs.to_start, needs.image, needs.build
    if not to_start:
        return steps
    sources = sources or {}
    if needs.base:
        source = sources.get("ship-base", Source(None, 0)).host
        if source is not None:
            how = f"{source} passes on the compressed tarball it kept: docker import"
        elif request.base_shipped:
            how = "stream the client's tarball into docker import"
        else:
            how = "docker pull"
        steps.append(
            Step(
                "ship-base",
                host.host,
                request.base_image + (f" from {source}" if source else ""),
                f"not on the host ({how})",
                payload=Transfer(request, source),
            )
        )
    if needs.bundle:
        source = sources.get("upload", Source(None, 0)).host
        sender = f"{source} passes on" if source else "the client sends"
        steps.append(
            Step(
                "upload",
                host.host,
                f"bundle {request.bundle[:12]}" + (f" from {source}" if source else ""),
                f"{request.bundle_dir} is not on the host ({sender} only the missing blobs)"
                if needs_image
                else f"the image is there but not {request.bundle_dir}, whose model files "
                f"the replicas mount ({sender} only the missing blobs)",
                payload=Transfer(
                    request,
                    source,
                    tuple(sorted(set(request.blobs) - host.blobs)) if request.blobs else None,
                ),
            )
        )
    why = (
        "no image of this version on the host"
        if not host.image_environment
        else f"the image is of environment {host.image_environment[:12]}"
    )
    if needs_image and not needs_build:
        steps.append(
            Step(
                "tag",
                host.host,
                request.image,
                f"{why}; the host has an image of this environment "
                f"({host.environment_image.removeprefix('sha256:')[:12]}): no build",
                dc.shell(dc.tag(host.environment_image, request.image)),
                payload=request,
            )
        )
    elif needs_build and request.image_id:
        steps.append(
            Step(
                "load",
                host.host,
                request.image,
                f"{why}; docker load of the image made on the client "
                f"({request.image_id.removeprefix('sha256:')[:12]}): no build",
                dc.load_bundle_image(
                    request.bundle_dir, request.load_files, request.image_id, request.image
                ),
                payload=request,
            )
        )
    elif needs_build:
        labels = {dc.MANAGED: "true", dc.ENVIRONMENT: request.image_environment}
        steps.append(
            Step(
                "build",
                host.host,
                request.image,
                why,
                dc.shell(dc.build(request.bundle_dir, request.image, labels)),
                payload=request,
            )
        )
    for spec in to_start:
        existing = host.container(spec.name)
        if existing is None:
            why = "no such container"
        elif existing.bundle != request.bundle:
            why = f"the container runs bundle {existing.bundle[:12]}; replaced"
        elif existing.state == "running":
            why = "the frontend does not know this version: its key is new; replaced"
        else:
            why = f"the container is {existing.state}; replaced"
        steps.append(
            Step(
                "start",
                host.host,
                spec.name,
                why,
                dc.start_new(spec) if existing is None else dc.start_unless_running(spec),
                payload=spec,
            )
        )
    return steps


def plan_retention(request: DeployRequest, facts: Facts) -> list[Step]:
    """Retire the other versions on every readable host, then prune beyond ``retain``."""
    placement = request.placement
    steps: list[Step] = []
    for host in request.hosts:
        host_facts = facts.host(host)
        if host_facts.error is None:
            steps += plan_retire(request.model, request.version, host_facts)
    for host in request.hosts:
        host_facts = facts.host(host)
        if host_facts.error is None:
            adding = [request.version] if host in placement else []
            steps += plan_prune(
                request.model, request.version, request.retain, host_facts, adding, request.root
            )
    return steps

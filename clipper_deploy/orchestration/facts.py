"""Facts: what an operation needs to know, read once per host and once from the frontend.

A host's facts come from one SSH command (:func:`~clipper_deploy.hosts.docker_commands.host_facts`):
the model's managed containers with their labels and state, the environment hash of the image
of the version being deployed and an image of that environment if the host has one (a new
version of a function in the same environment is then a ``docker tag``), whether the base
image and the bundle are there, and which of the
bundles the containers were started from are still there (a container mounts its version's
model files from its bundle, so a retained version is only startable while its bundle is).
The frontend's facts are its model versions (with the current one) and its connected
replicas. Plans
(:mod:`clipper_deploy.orchestration.plans`) are pure functions of these; nothing here decides.

A host that cannot be read (unreachable, engine stopped) has ``error`` set to the reason, worded
for the user; plans leave it alone and the executor reports it as that host's failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.upload import bundles_root


@dataclass(frozen=True)
class HostFacts:
    """One host as an operation found it. ``error``: why it could not be read (else None)."""

    host: str
    containers: tuple[dc.ContainerInfo, ...] = ()
    image_environment: str = ""
    """Environment hash of the deployed version's image on the host; "" when it has no such
    image (or one without the label)."""
    environment_image: str = ""
    """ID of an image of the requested environment on the host ("" when there is none)."""
    base_image_present: bool = False
    bundle_present: bool = False
    blobs: frozenset[str] = frozenset()
    """Of the bundle's large blobs asked about, those the host holds."""
    error: str | None = None
    bundles: frozenset[str] | None = None
    """Bundles (hashes) of the listed containers whose directory is on the host; None when
    not read (then every one is taken to be there)."""

    def has_bundle(self, bundle: str) -> bool:
        """Whether ``bundle``'s directory (its model files) is on the host."""
        return self.bundles is None or bundle in self.bundles

    def of_model(self, model: str) -> list[dc.ContainerInfo]:
        """The model's containers, running or not."""
        return [c for c in self.containers if c.model == model]

    def by_version(self, model: str) -> dict[str, list[dc.ContainerInfo]]:
        """The model's containers per version (running or stopped), in ``docker ps`` order."""
        found: dict[str, list[dc.ContainerInfo]] = {}
        for c in self.of_model(model):
            found.setdefault(c.version, []).append(c)
        return found

    def container(self, name: str) -> dc.ContainerInfo | None:
        return next((c for c in self.containers if c.name == name), None)


@dataclass(frozen=True)
class FrontendFacts:
    """The frontend's model versions (``get_all_models(verbose=True)``) and replicas
    (``get_all_containers()``)."""

    models: tuple[Mapping[str, Any], ...] = ()
    replicas: tuple[Mapping[str, Any], ...] = ()

    def record(self, model: str, version: str) -> Mapping[str, Any] | None:
        """The frontend's record of ``model:version``, or None when it is not registered."""
        return next(
            (
                m
                for m in self.models
                if m["model_name"] == model and str(m["model_version"]) == version
            ),
            None,
        )

    def current(self, model: str) -> Mapping[str, Any] | None:
        """The record of ``model``'s current version, or None."""
        return next(
            (m for m in self.models if m["model_name"] == model and m.get("is_current_version")),
            None,
        )

    def current_version(self, model: str) -> str | None:
        record = self.current(model)
        return None if record is None else str(record["model_version"])

    def serving(self, model: str, version: str) -> set[str]:
        """Replica ids of ``model:version`` connected to the frontend."""
        return serving_ids(self.replicas, model, version)


def serving_ids(replicas: Iterable[Mapping[str, Any]], model: str, version: str) -> set[str]:
    """Of the frontend's replica records, the ids of ``model:version``'s connected ones."""
    return {
        r["replica_id"]
        for r in replicas
        if r["model_name"] == model
        and str(r["model_version"]) == version
        and r["state"] != "disconnected"
    }


@dataclass(frozen=True)
class Facts:
    """Everything a plan reads: each host's facts (by name, in inventory order) and the
    frontend's."""

    hosts: Mapping[str, HostFacts] = field(default_factory=dict)
    frontend: FrontendFacts = field(default_factory=FrontendFacts)

    def host(self, name: str) -> HostFacts:
        return self.hosts.get(name) or HostFacts(name)

    @property
    def unreadable(self) -> dict[str, str]:
        """Hosts that could not be read, and why."""
        return {n: f.error for n, f in self.hosts.items() if f.error is not None}


# ------------------------------------------------------------------ reading


def read_frontend_facts(admin: Any) -> FrontendFacts:
    """The frontend's facts, from its admin API (two calls)."""
    return FrontendFacts(
        models=tuple(admin.get_all_models(verbose=True)),
        replicas=tuple(admin.get_all_containers()),
    )


def read_host_facts(
    fleet: Any,
    host: Host,
    model: str | None,
    *,
    image: str | None = None,
    base_image: str | None = None,
    bundle_dir: str | None = None,
    environment: str | None = None,
    blobs: Sequence[str] = (),
) -> HostFacts:
    """One host's facts, in one SSH command; a failure is recorded as ``error``."""
    command = dc.host_facts(
        model, image, base_image, bundle_dir, bundles_root(fleet.root), environment, blobs
    )
    try:
        result = fleet.run_script(host, command, warn=True)
    except Exception as exc:  # recorded: the executor reports it as the host's failure
        return HostFacts(host.name, error=fleet.why(host, exc))
    if not result.ok:
        return HostFacts(
            host.name, error=dc.docker_failure(host.name, result.return_code, result.stderr)
        )
    reading = dc.parse_host_facts(result.stdout)
    return HostFacts(
        host.name,
        containers=reading.containers,
        image_environment=reading.image_environment,
        environment_image=reading.environment_image,
        base_image_present=reading.base_image_present,
        bundle_present=reading.bundle_present,
        bundles=reading.bundles,
        blobs=reading.blobs,
    )


def read_facts(
    fleet: Any,
    hosts: Sequence[Host],
    model: str | None,
    *,
    image: str | None = None,
    base_image: str | None = None,
    bundle_dir: str | None = None,
    environment: str | None = None,
    blobs: Sequence[str] = (),
    frontend: bool = True,
) -> Facts:
    """Every host's facts (in parallel, at most ``fleet.max_parallel`` at once) and, with
    ``frontend``, the frontend's."""

    def one(host: Host) -> HostFacts:
        return read_host_facts(
            fleet,
            host,
            model,
            image=image,
            base_image=base_image,
            bundle_dir=bundle_dir,
            environment=environment,
            blobs=blobs,
        )

    read: dict[str, HostFacts] = {}
    if hosts:
        workers = max(1, min(fleet.max_parallel, len(hosts)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facts") as pool:
            for host, facts in zip(hosts, pool.map(one, hosts), strict=True):
                read[host.name] = facts
    return Facts(read, read_frontend_facts(fleet.admin) if frontend else FrontendFacts())

"""Deploy a bundle to Docker hosts: register, ship, build, start, wait until it serves.

The order, with the seed's lines::

    Published model to Clipper                      (the version is registered, not yet current)
    Found <image> on <host>                         (or shipped from the client: no registry)
    Copied model data to host <host> (...)          (only blobs the host lacks)
    [<host>] built <image> ...                      (layer cache: a new function = last layer)
    [<host>] started <container> ...
    [<host>] <container> serving                    (it dialled the frontend and registered)

Only when every replica serves does the new version become current. Any failure removes
what this deploy made (its containers, its freshly built images, its registration) and
leaves the previous version serving, untouched. A deploy that already succeeded, run again,
changes nothing.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.frontend.client import AdminClient, FrontendError
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.base_image import HostImageError, ensure_on_host
from clipper_deploy.hosts.connection import HostGroup, connect_error_message
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.upload import REMOTE_ROOT, UploadError, upload_bundle
from clipper_deploy.images.base import BaseImageSpec
from clipper_deploy.orchestration.placement import place_replicas

READY_TIMEOUT = 120.0
DRAIN_TIMEOUT = 10.0
LOG_LINES_ON_FAILURE = 30


class DeployError(ClipperDeployError, RuntimeError):
    """A deploy failed; ``failures`` maps each failed host to what went wrong there."""

    def __init__(self, message: str, failures: Mapping[str, str] | None = None) -> None:
        self.failures = dict(failures or {})
        lines = [message] + [f"  {host}: {why}" for host, why in self.failures.items()]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class ContainerOptions:
    """Resource limits and environment of the model containers."""

    cpus: float | None = None
    memory: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


class BaseImage:
    """The image bundles build FROM, and how a host that lacks it gets it.

    ``spec`` and ``build`` (which returns the cached root file system tarball, building it
    if needed) are for the registry-free default image; the tarball is made only when first
    asked for, so operations that start no new image (rollback, stop) never build it. Without
    them, hosts pull ``name`` from a registry.
    """

    def __init__(
        self,
        name: str,
        spec: BaseImageSpec | None = None,
        build: Callable[[], Path] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self._build = build
        self._tarball: Path | None = None
        self._lock = threading.Lock()

    @property
    def tarball(self) -> Path | None:
        with self._lock:
            if self._tarball is None and self._build is not None:
                self._tarball = self._build()
            return self._tarball


@dataclass
class Fleet:
    """What a deploy talks to: the hosts (over SSH), the frontend, and the base image."""

    group: HostGroup
    admin: AdminClient
    replica_address: str
    """``address:port`` where replicas reach the frontend, as seen from the hosts."""
    base_image: BaseImage
    say: Callable[[str], None] = print
    root: str = REMOTE_ROOT
    max_parallel: int = 4
    ready_timeout: float = READY_TIMEOUT

    def run(self, host: Host, argv: Sequence[str], **kwargs: Any) -> Any:
        """Run a docker argv on ``host`` (output hidden; ``warn`` as given)."""
        kwargs.setdefault("hide", True)
        kwargs.setdefault("in_stream", False)
        return self.group.connection(host).run(dc.shell(argv), **kwargs)

    def run_script(self, host: Host, script: str, **kwargs: Any) -> Any:
        """Run a shell command line built by :mod:`~clipper_deploy.hosts.docker_commands`."""
        kwargs.setdefault("hide", True)
        kwargs.setdefault("in_stream", False)
        return self.group.connection(host).run(script, **kwargs)

    def containers(self, host: Host, model: str | None = None) -> list[dc.ContainerInfo]:
        return dc.parse_ps(self.run(host, dc.ps(model)).stdout)

    def why(self, host: Host, exc: BaseException) -> str:
        if isinstance(exc, HostImageError | DeployError | UploadError):
            return str(exc)
        return connect_error_message(host, exc, known_hosts=self.group.known_hosts)


@dataclass
class DeployResult:
    """What a deploy did: ``changed`` is False when it was already deployed and serving."""

    model: str
    version: str
    replicas: dict[str, list[str]]
    changed: bool = True
    seconds: float = 0.0


@dataclass
class Made:
    """What this deploy created on each host, to undo on failure."""

    containers: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def deploy_bundle(
    fleet: Fleet,
    bundle: Any,
    hosts: Sequence[Host],
    replicas: int = 1,
    options: ContainerOptions | None = None,
    *,
    retire_old: bool = True,
) -> DeployResult:
    """Deploy ``bundle`` (from :func:`clipper_deploy.packaging.build_bundle`) to ``hosts``.

    Starts ``replicas`` containers spread over the hosts, waits until every one serves, then
    makes this version current; with ``retire_old`` the model's other versions' containers
    are then stopped (kept, with their images, for rollback). Raises :class:`DeployError`.
    """
    started = time.monotonic()
    require_frontend(fleet.admin)
    options = options or ContainerOptions()
    model = bundle.model
    name, version, input_type = model["name"], str(model["version"]), model["input_type"]
    image = dc.image_name(name, version)
    placement = place_replicas(list(hosts), replicas)
    specs = replica_specs(fleet, bundle, placement, options)
    layout = {h.name: [s.name for s in ss] for h, ss in specs.items()}

    registered = _registered_version(fleet.admin, name, version)
    if registered is not None and registered.get("model_data_path") not in ("", bundle.sha256):
        raise DeployError(
            f"version {version} of model {name} is already deployed with another bundle "
            f"({registered.get('model_data_path', '')[:12]}), not {bundle.sha256[:12]}: "
            f"deploy it as a new version, or stop version {version} first "
            f"(`invoke stop {name} --version {version}`)"
        )
    if registered is not None and _already_serving(fleet, specs, name, version, bundle.sha256):
        fleet.say(f"Model {name}:{version} is already deployed and serving: nothing to do")
        return DeployResult(name, version, layout, changed=False)

    if registered is None:
        fleet.admin.add_model(
            name,
            version,
            input_type,
            list(model.get("labels", [])),
            container_name=image,
            model_data_path=bundle.sha256,
        )
    fleet.say("Published model to Clipper")

    made = Made()
    try:
        prepare_hosts(fleet, bundle, image, specs, made)
        wait_until_serving(fleet, specs, name, version)
        fleet.admin.set_model_version(name, version)
        fleet.say(f"Model {name}:{version} is current: {replicas} replica(s) serving")
    except BaseException as exc:
        fleet.say(f"Deploy of {name}:{version} failed; removing what it made")
        undo(fleet, made, name, version, registered_before=registered is not None)
        if isinstance(exc, DeployError | KeyboardInterrupt):
            raise
        raise DeployError(f"deploy of {name}:{version} failed: {exc}") from exc
    if retire_old:
        retire_other_versions(fleet, fleet.group.hosts, name, keep=version)
    return DeployResult(name, version, layout, seconds=time.monotonic() - started)


# ------------------------------------------------------------------ steps


def replica_specs(
    fleet: Fleet, bundle: Any, placement: Mapping[Host, list[int]], options: ContainerOptions
) -> dict[Host, list[dc.ReplicaSpec]]:
    """The containers to start for ``bundle``: ``placement`` maps hosts to replica indexes."""
    model = bundle.model
    return {
        host: [
            dc.ReplicaSpec(
                model=model["name"],
                version=str(model["version"]),
                bundle=bundle.sha256,
                index=i,
                host=host.name,
                frontend=fleet.replica_address,
                cpus=options.cpus,
                memory=options.memory,
                env=dict(options.env),
            )
            for i in indexes
        ]
        for host, indexes in placement.items()
    }


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


def _registered_version(admin: AdminClient, name: str, version: str) -> dict[str, Any] | None:
    try:
        return admin.get_model(name, version)
    except FrontendError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            return None
        raise


def _already_serving(
    fleet: Fleet,
    specs: Mapping[Host, list[dc.ReplicaSpec]],
    name: str,
    version: str,
    bundle_sha: str,
) -> bool:
    """The same bundle runs in every planned container, each one serving, and is current."""
    try:
        running = {
            (c.name, c.bundle)
            for host in specs
            for c in fleet.containers(host, name)
            if c.state == "running"
        }
    except Exception:
        return False
    wanted = {(s.name, bundle_sha) for ss in specs.values() for s in ss}
    if not wanted <= running:
        return False
    serving = serving_replicas(fleet.admin, name, version)
    current = fleet.admin.get_model(name, version).get("is_current_version", True)
    return {s.replica_id for ss in specs.values() for s in ss} <= serving and bool(current)


def prepare_hosts(
    fleet: Fleet,
    bundle: Any,
    image: str,
    specs: Mapping[Host, list[dc.ReplicaSpec]],
    made: Made,
) -> None:
    """Per host, in parallel: base image, upload, build, start. Raises naming every failure."""
    failures: dict[str, str] = {}

    def one(host: Host) -> None:
        try:
            prepare_host(fleet, host, bundle, image, specs[host], made)
        except Exception as exc:  # reported per host
            failures[host.name] = fleet.why(host, exc)

    workers = max(1, min(fleet.max_parallel, len(specs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deploy") as pool:
        list(pool.map(one, specs))
    if failures:
        raise DeployError(
            f"deploy failed on {len(failures)} of {len(specs)} host(s); "
            "the previous version keeps serving",
            failures,
        )


def prepare_host(
    fleet: Fleet,
    host: Host,
    bundle: Any,
    image: str,
    specs: list[dc.ReplicaSpec],
    made: Made,
) -> None:
    base = fleet.base_image
    conn = fleet.group.connection(host)
    ensure_on_host(conn, host.name, base.name, base.tarball, base.spec, say=fleet.say)

    started = time.monotonic()
    report = upload_bundle(conn, Path(bundle.path), bundle.files, bundle.sha256, fleet.root)
    sent = (
        "already there"
        if report.already_there
        else f"{report.uploaded} new file(s), {report.uploaded_bytes / 2**20:.1f} MiB sent"
    )
    fleet.say(f"Copied model data to host {host.name} ({sent}, {time.monotonic() - started:.1f} s)")

    started = time.monotonic()
    labels = {dc.MANAGED: "true", dc.BUNDLE: bundle.sha256}
    build = fleet.run_script(
        host, dc.build_unless_current(report.bundle_dir, image, labels), warn=True, timeout=1800
    )
    if not build.ok:
        raise DeployError(
            f"docker build of {image} failed on {host.name}:\n"
            f"{build_failure_tail(build.stdout + build.stderr)}\n"
            "    Fix that step (your template_dir's Dockerfile.j2, or the base image) and "
            f"deploy again; to retry by hand: `docker build {report.bundle_dir}` on the host"
        )
    if dc.IMAGE_CURRENT not in build.stdout:
        with made.lock:
            made.images[host.name] = image
        fleet.say(f"[{host.name}] built {image} in {time.monotonic() - started:.1f} s")

    for spec in specs:
        result = fleet.run_script(host, dc.start_unless_running(spec), warn=True)
        if not result.ok:
            raise DeployError(
                f"docker run of {spec.name} failed on {host.name}: {result.stderr.strip()}"
            )
        if dc.ALREADY_RUNNING in result.stdout:
            fleet.say(f"[{host.name}] {spec.name} already running")
            continue
        with made.lock:
            made.containers.setdefault(host.name, []).append(spec.name)
        fleet.say(f"[{host.name}] started {spec.name}")


def serving_replicas(admin: AdminClient, name: str, version: str) -> set[str]:
    return {
        c["replica_id"]
        for c in admin.get_all_containers()
        if c["model_name"] == name
        and str(c["model_version"]) == version
        and c["state"] != "disconnected"
    }


def wait_until_serving(
    fleet: Fleet, specs: Mapping[Host, list[dc.ReplicaSpec]], name: str, version: str
) -> None:
    """Until every replica registered with the frontend; a crashed one fails at once."""
    pending = {s.replica_id: (host, s) for host, ss in specs.items() for s in ss}
    deadline = time.monotonic() + fleet.ready_timeout
    next_probe = 0.0
    while pending:
        for replica in serving_replicas(fleet.admin, name, version) & pending.keys():
            host, spec = pending.pop(replica)
            fleet.say(f"[{host.name}] {spec.name} serving")
        if not pending:
            return
        now = time.monotonic()
        if now >= next_probe:
            next_probe = now + 1.0
            for host, spec in list(pending.values()):
                _fail_if_crashed(fleet, host, spec)
        if now > deadline:
            failures = {
                host.name: f"{spec.name} did not connect to the frontend within "
                f"{fleet.ready_timeout:.0f} s; its last log lines:\n"
                + _log_tail(fleet, host, spec.name)
                for host, spec in pending.values()
            }
            raise DeployError(
                f"replicas of {name}:{version} not serving within {fleet.ready_timeout:.0f} s: "
                f"check that the hosts reach the frontend's replica port at "
                f"{fleet.replica_address} (clipper_replica_port; firewalls), or raise "
                "ready_timeout for a model that loads slowly; the previous version keeps serving",
                failures,
            )
        time.sleep(0.05)


def _fail_if_crashed(fleet: Fleet, host: Host, spec: dc.ReplicaSpec) -> None:
    state = fleet.run(host, dc.inspect_state(spec.name), warn=True)
    if not state.ok:
        raise DeployError(
            f"replica {spec.name} vanished on {host.name}",
            {host.name: state.stderr.strip()},
        )
    status, exit_code, restarts, _error = [*state.stdout.strip().split("\t"), "", "", ""][:4]
    if status in ("exited", "dead") or (status == "restarting") or int(restarts or 0) > 0:
        how = [f"exit status {exit_code}"] if exit_code not in ("", "0") else []
        how += [f"restarted {restarts} time(s)"] if int(restarts or 0) > 0 else []
        how = how or [status]
        raise DeployError(
            f"replica {spec.name} on {host.name} crashed while loading ({', '.join(how)}); "
            "the previous version keeps serving",
            {host.name: "its last log lines:\n" + _log_tail(fleet, host, spec.name)},
        )


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def build_failure_tail(output: str, lines: int = 25) -> str:
    """What of ``docker build``'s output says why it failed, indented: from the classic
    builder's last ``Step n/m`` on (the failing one, without its bookkeeping lines), else the
    last ``lines`` lines (BuildKit ends with its ``ERROR``), without colour codes."""
    text = [line.rstrip() for line in _ANSI.sub("", output).strip().splitlines()]
    steps = [i for i, line in enumerate(text) if line.startswith("Step ")]
    if steps:
        text = [text[steps[-1]]] + [
            line
            for line in text[steps[-1] + 1 :]
            if not line.startswith((" ---> ", "Removing intermediate container"))
        ]
    return "\n".join(f"    {line}" for line in text[-lines:] if line.strip())


def _log_tail(fleet: Fleet, host: Host, container: str) -> str:
    try:
        out = fleet.run(
            host, ["docker", "logs", "--tail", str(LOG_LINES_ON_FAILURE), container], warn=True
        )
        text = (out.stdout + out.stderr).strip()
    except Exception as exc:
        text = f"(could not read logs: {exc})"
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"


def undo(fleet: Fleet, made: Made, name: str, version: str, registered_before: bool) -> None:
    """Remove this deploy's containers and images; unregister the version if it added it."""
    by_name = {h.name: h for h in fleet.group.hosts}
    for host_name, containers in made.containers.items():
        with contextlib.suppress(Exception):
            fleet.run(by_name[host_name], dc.remove_containers(containers), warn=True)
    for host_name, image in made.images.items():
        with contextlib.suppress(Exception):
            fleet.run(by_name[host_name], dc.remove_image(image), warn=True)
    if not registered_before:
        with contextlib.suppress(Exception):
            fleet.admin.delete_versioned_model(name, version)


def retire_other_versions(
    fleet: Fleet, hosts: Sequence[Host], name: str, keep: str
) -> dict[str, list[str]]:
    """Drain and stop (not remove) ``name``'s running containers of versions other than
    ``keep``: their images and settings stay, so a rollback only has to start them."""
    retired: dict[str, list[str]] = {}
    for host in hosts:
        try:
            old = [
                c
                for c in fleet.containers(host, name)
                if c.version != keep and c.state == "running"
            ]
        except Exception as exc:
            fleet.say(f"[{host.name}] could not list old containers: {fleet.why(host, exc)}")
            continue
        if not old:
            continue
        drain(fleet, {c.replica for c in old})
        fleet.run(host, ["docker", "stop", "--time", "10", *[c.name for c in old]], warn=True)
        retired[host.name] = [c.name for c in old]
        fleet.say(f"[{host.name}] retired {', '.join(retired[host.name])} (kept for rollback)")
    return retired


def drain(fleet: Fleet, replica_ids: set[str], timeout: float = DRAIN_TIMEOUT) -> None:
    """Wait until none of ``replica_ids`` has a batch in flight (two idle looks in a row):
    after a version switch no new batch reaches them, so they can then stop safely."""
    deadline = time.monotonic() + timeout
    idle_looks = 0
    while time.monotonic() < deadline and idle_looks < 2:
        busy = [
            c
            for c in fleet.admin.get_all_containers()
            if c["replica_id"] in replica_ids and c["state"] == "busy"
        ]
        idle_looks = idle_looks + 1 if not busy else 0
        time.sleep(0.05)

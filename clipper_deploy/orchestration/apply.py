"""Apply: the one executor that runs a plan's steps on the hosts and the frontend.

Host steps run per host in order, hosts in parallel (at most ``fleet.max_parallel`` at once),
except that a host's base image and bundle (its leading ``ship-base`` and ``upload``) travel
at the same time;
a host's first failing step ends that host's work and is reported per host (fail-fast: the
caller does not go on to the next stage). What the executor creates (containers, images, the
version's registration) is recorded, so :meth:`Executor.undo` can remove it after a failure
and leave the previous version serving. Progress lines are the product's own (the seed's
``Published model to Clipper``, ``Found <image> on <host>``, ``Copied model data to host ...``);
progress events (:mod:`.progress`) follow each host step: its start and end, the bytes sent,
the build's steps and output lines, the replicas' states.

A ``ship-base`` or ``upload`` step whose plan names a source host is a relay
(:mod:`clipper_deploy.hosts.relay`): it waits until that host holds the layer (when the
source gets it in this same operation), then has it pass the layer on with a key made for
that one relay. When the source failed, or the relay does, the client sends the layer itself,
so a relay never makes a deploy fail that would have worked without it.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fabric

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts import upload as up
from clipper_deploy.hosts.base_image import ship_to_host
from clipper_deploy.hosts.connection import known_hosts_path
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.relay import RelayKey, relay
from clipper_deploy.hosts.transfer import stream_into
from clipper_deploy.hosts.upload import upload_bundle
from clipper_deploy.images.base import import_message
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.fleet import Fleet
from clipper_deploy.orchestration.plans.deploy import Transfer
from clipper_deploy.orchestration.progress import (
    BuildWatcher,
    ReplicaState,
    TransferMeter,
    builder_notice,
    phase,
)
from clipper_deploy.orchestration.readiness import Replica, drain, wait_until_serving
from clipper_deploy.orchestration.steps import FRONTEND, Step
from clipper_deploy.settings import BUILD_TIMEOUT, RELAY_MIN_BYTES

TRANSFER_KINDS = ("ship-base", "upload")
"""Kinds that move a layer to a host (from the client or, relayed, from another host)."""

PREPARE_KINDS = ("ship-base", "upload", "build", "load", "tag", "start")
"""Kinds that bring a host's new replicas up (run before the wait)."""


@dataclass
class Made:
    """What this operation created on each host, to undo on failure."""

    containers: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    registered: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Executor:
    """Runs steps for one operation on ``model:version`` (``bundle``: the packaged bundle,
    for upload steps)."""

    def __init__(self, fleet: Fleet, model: str, version: str, bundle: Any = None) -> None:
        self.fleet = fleet
        self.model = model
        self.version = version
        self.bundle = bundle
        self.made = Made()
        self.keys: dict[str, str] = {}
        self._pruned: dict[str, list[str]] = {}
        self._holds: dict[tuple[str, str], threading.Event] = {}
        self._held: dict[tuple[str, str], bool] = {}

    # ------------------------------------------------------------------ the frontend

    def on_frontend(self, step: Step) -> None:
        """Run a frontend step: ``register`` the version or ``switch`` to it."""
        admin = self.fleet.admin
        if step.kind == "register":
            model = self.bundle.model
            admin.add_model(
                self.model,
                self.version,
                model["input_type"],
                list(model.get("labels", [])),
                container_name=dc.image_name(self.model, self.version),
                model_data_path=self.bundle.sha256,
            )
            self.made.registered = True
        elif step.kind == "switch":
            admin.set_model_version(self.model, self.version)
        else:
            raise ValueError(f"{step.kind} is not a frontend step")

    # ------------------------------------------------------------------ the hosts

    def on_hosts(
        self, steps: Sequence[Step], unreadable: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Run ``steps`` (host steps only) per host, hosts in parallel; returns ``{host:
        why}`` for each host that failed, hosts in ``unreadable`` failing with their reason."""
        failures: dict[str, str] = dict(unreadable or {})
        by_host: dict[str, list[Step]] = {}
        for step in steps:
            if step.host == FRONTEND:
                raise ValueError(f"{step.line} is not a host step")
            if step.host not in failures:
                by_host.setdefault(step.host, []).append(step)
        for name, host_steps in by_host.items():
            for step in host_steps:
                if step.kind in TRANSFER_KINDS:
                    self._holds[(name, step.kind)] = threading.Event()

        def run(host: Host, step: Step) -> None:
            with phase(self.fleet.emit, step.kind, host.name, step.subject):
                self.on_host(host, step)
            if step.kind in TRANSFER_KINDS:
                self._now_holds(host.name, step.kind, True)

        def one(name: str) -> None:
            host = self.fleet.host(name)
            try:
                self._announce(host, by_host[name])
                transfers, rest = leading_transfers(by_host[name])
                if len(transfers) > 1:
                    with ThreadPoolExecutor(len(transfers), f"apply-{name}") as both:
                        for done in [both.submit(run, host, step) for step in transfers]:
                            done.result()  # the first failure ends the host's work
                else:
                    rest = by_host[name]
                for step in rest:
                    run(host, step)
            except Exception as exc:  # reported per host
                failures[name] = self.fleet.why(host, exc)
            finally:
                for step in by_host[name]:  # receivers waiting on this host go on
                    if step.kind in TRANSFER_KINDS:
                        self._now_holds(name, step.kind, False)
            self._report_pruned(name)

        if by_host:
            workers = max(1, min(self.fleet.max_parallel, len(by_host)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply") as pool:
                list(pool.map(one, by_host))
        return failures

    def _announce(self, host: Host, steps: Sequence[Step]) -> None:
        """The seed's lines for what a host starting new replicas already has: ``Found
        <image> on <host>`` for the base image, and ``Copied model data to host <host>
        (already there ...)`` for the bundle."""
        kinds = {s.kind for s in steps}
        if self.bundle is None or not kinds & {"upload", "build", "load", "tag", "start"}:
            return
        if "ship-base" not in kinds:
            self.fleet.say(f"Found {self.fleet.base_image.name} on {host.name}")
        if "upload" not in kinds:
            self.fleet.say(f"Copied model data to host {host.name} (already there, 0.0 s)")

    def on_host(self, host: Host, step: Step) -> None:
        """Run one host step; raises :class:`DeployError` (or the connection's error)."""
        getattr(self, "_" + step.kind.replace("-", "_"))(host, step)

    # ------------------------------------------------------------------ transfers

    def _now_holds(self, host: str, kind: str, ok: bool) -> None:
        event = self._holds.get((host, kind))
        if event is not None and not event.is_set():
            self._held[(host, kind)] = ok
            event.set()

    def _source(self, step: Step) -> Host | None:
        """The host to relay ``step``'s layer from, once it holds it; None: the client sends
        (no source planned, or the source failed to get the layer)."""
        source = step.payload.source if isinstance(step.payload, Transfer) else None
        if source is None:
            return None
        event = self._holds.get((source, step.kind))
        if event is not None:  # the source gets the layer in this operation
            event.wait(BUILD_TIMEOUT)
            if not self._held.get((source, step.kind), False):
                self.fleet.say(f"[{step.host}] {source} does not hold it; the client sends it")
                return None
        return self.fleet.host(source)

    def _relay(self, source: Host, host: Host, what: str, nbytes: int, **commands: str) -> bool:
        """Relay a layer from ``source`` to ``host``; False (said why) when it failed."""
        group = self.fleet.group
        started = time.monotonic()
        try:
            relay(
                group.connection(source),
                source,
                group.connection(host),
                host,
                key=RelayKey.generate(),  # one per relay: hosts may share authorized_keys
                known_hosts=known_hosts_path(
                    group.known_hosts if group.known_hosts is not None else host.known_hosts
                ),
                nbytes=nbytes,
                what=what,
                root=self.fleet.root,
                timeout=120 + nbytes / 1e6,  # at least 1 MB/s on a busy host
                **commands,
            )
        except Exception as exc:
            self.fleet.say(
                f"[{host.name}] relay from {source.name} failed "
                f"({self.fleet.why(host, exc)}); the client sends it"
            )
            return False
        self.fleet.say(
            f"[{host.name}] got {what} from {source.name} ({nbytes / 2**20:.1f} MiB in "
            f"{time.monotonic() - started:.1f} s)"
        )
        return True

    def _ship_base(self, host: Host, step: Step) -> None:
        base = self.fleet.base_image
        source = self._source(step) if base.shipped else None
        packed = base.shipping_file if base.shipped else None
        keep = posixpath.join(self.fleet.root, "base", packed.name) if packed else None
        if source is not None and base.spec is not None and packed is not None and keep:
            size = packed.stat().st_size
            if self._relay(
                source,
                host,
                base.name,
                size,
                source_command=dc.base_relay_source(base.name, keep),
                receive_script=dc.base_relay_receive(base.name, import_message(base.spec), keep),
            ):
                return
        conn = self.fleet.group.connection(host)
        meter = TransferMeter(self.fleet.emit, host.name, "base image")
        ship_to_host(
            conn,
            host.name,
            base.name,
            packed,
            base.spec,
            say=self.fleet.say,
            on_sent=meter,
            keep=keep,
        )

    def _relay_bundle(
        self, source: Host, host: Host, missing: Sequence[str] | None
    ) -> up.UploadReport | None:
        """Have ``source`` pass the bundle's blobs ``host`` lacks (``missing``, from its facts;
        None: ask it); None when the client should send them (few bytes missing, or the relay
        failed)."""
        bundle, root = self.bundle, self.fleet.root
        target = up.bundle_dir(bundle.sha256, root)
        by_hash = {sha: path for path, sha in bundle.files.items()}
        conn = self.fleet.group.connection(host)
        if missing is None:
            missing = up.missing_blobs(conn, bundle.files, bundle.sha256, root)
            if missing is None:
                return up.UploadReport(target, 0, 0, already_there=True)
        missing = [h for h in missing if h in by_hash]
        size = sum((Path(bundle.path) / by_hash[h]).stat().st_size for h in missing)
        if size < RELAY_MIN_BYTES:
            return None
        token = uuid.uuid4().hex[:12]
        assemble = up.assemble_command(bundle.files, bundle.sha256, missing, token, root)
        done = self._relay(
            source,
            host,
            f"bundle {bundle.sha256[:12]}",
            size,
            token=token,
            source_command=up.send_blobs_command(missing, token, root),
            receive_script=up.receive_command(assemble, root),
        )
        if not done:
            with contextlib.suppress(Exception):
                conn.run(up.cleanup_command(bundle.sha256, token, root), hide=True, warn=True)
            return None
        return up.UploadReport(target, len(missing), size, already_there=False)

    def _upload(self, host: Host, step: Step) -> None:
        bundle = self.bundle
        started = time.monotonic()
        source = self._source(step)
        missing = step.payload.missing if isinstance(step.payload, Transfer) else None
        report = self._relay_bundle(source, host, missing) if source is not None else None
        by = f"from {source.name}" if report is not None and source is not None else "sent"
        if report is None:
            conn = self.fleet.group.connection(host)
            report = upload_bundle(
                conn,
                Path(bundle.path),
                bundle.files,
                bundle.sha256,
                self.fleet.root,
                receiver=host.name,
                on_sent=TransferMeter(self.fleet.emit, host.name, "bundle"),
                missing=missing,
            )
        sent = (
            "already there"
            if report.already_there
            else f"{report.uploaded} new file(s), {report.uploaded_bytes / 2**20:.1f} MiB {by}"
        )
        self.fleet.say(
            f"Copied model data to host {host.name} ({sent}, {time.monotonic() - started:.1f} s)"
        )

    def _build(self, host: Host, step: Step) -> None:
        started = time.monotonic()
        image = step.subject
        # The output streams back over SSH as the build goes (captured all the same).
        watcher = BuildWatcher(self.fleet.emit, host.name)
        build = self.fleet.run_script(
            host,
            step.command,
            warn=True,
            timeout=BUILD_TIMEOUT,
            hide=False,
            out_stream=watcher,
            err_stream=watcher,
        )
        if not build.ok:
            context = step.payload.bundle_dir if step.payload is not None else "the bundle"
            raise DeployError(
                f"docker build of {image} failed on {host.name}:\n"
                f"{build_failure_tail(build.stdout + build.stderr)}\n"
                "    Fix that step (your template_dir's Dockerfile.j2, or the base image) and "
                f"deploy again; to retry by hand: `docker build {context}` on the host"
            )
        with self.made.lock:
            self.made.images[host.name] = image
        self.fleet.say(f"[{host.name}] built {image} in {time.monotonic() - started:.1f} s")

    def replica_key(self, spec: dc.ReplicaSpec) -> str:
        """The key the frontend gives replica ``spec`` (asked once per replica)."""
        with self.made.lock:
            key = self.keys.get(spec.replica_id)
        if key is None:
            key = self.fleet.admin.replica_keys(spec.model, spec.version, [spec.replica_id])[
                spec.replica_id
            ]
            with self.made.lock:
                self.keys[spec.replica_id] = key
        return key

    def _load(self, host: Host, step: Step) -> None:
        started = time.monotonic()
        result = self.fleet.run_script(host, step.command, warn=True, timeout=BUILD_TIMEOUT)
        if not result.ok:
            raise DeployError(
                f"docker load of the image of {step.subject} (made on the client) failed on "
                f"{host.name}: {(result.stderr or result.stdout).strip()[-800:]}\n"
                "    Check the host's free disk space (`df /var/lib/docker`) and that dockerd "
                "runs, then deploy again. `invalid diffID` means a file in the host's blobs "
                f"is not what its name says: remove the files of {self.fleet.root}/blobs "
                "whose sha256 differs from their name, and the bundle (docs/errors.md, "
                '"Image load failure").'
            )
        with self.made.lock:
            self.made.images[host.name] = step.subject
        self.fleet.say(
            f"[{host.name}] loaded {step.subject} (made on the client, no build) in "
            f"{time.monotonic() - started:.1f} s"
        )

    def _tag(self, host: Host, step: Step) -> None:
        started = time.monotonic()
        result = self.fleet.run_script(host, step.command, warn=True)
        if not result.ok:
            raise DeployError(
                f"docker tag of {step.subject} failed on {host.name}: {result.stderr.strip()}"
            )
        with self.made.lock:
            self.made.images[host.name] = step.subject  # undo removes the tag, not the image
        self.fleet.say(
            f"[{host.name}] tagged {step.subject} from the environment's image "
            f"(no build) in {time.monotonic() - started:.1f} s"
        )

    def _start(self, host: Host, step: Step) -> None:
        spec = step.payload
        data = ""
        if isinstance(spec, dc.ReplicaSpec):
            # The replica's key, then the user's environment, travel on the SSH channel's
            # input into 0600 files (start_unless_running reads them), never on a command
            # line; in one write (Fabric's in_stream sends a byte per 10 ms).
            env = dc.env_file_text(spec.env) if spec.env else ""
            data = f"{self.replica_key(spec)}\n{env}"
        conn = self.fleet.group.connection(host)
        if data and isinstance(conn, fabric.Connection):
            result = stream_into(conn, ["sh", "-c", step.command], io.BytesIO(data.encode()))
        else:
            stdin = io.StringIO(data) if data else False
            result = self.fleet.run_script(host, step.command, warn=True, in_stream=stdin)
        if not isinstance(step.payload, dc.ReplicaSpec):  # retained containers (rollback)
            if not result.ok:
                raise DeployError(f"docker start failed: {result.stderr.strip()}")
            return
        if not result.ok:
            raise DeployError(
                f"docker run of {step.subject} failed on {host.name}: {result.stderr.strip()}"
            )
        if dc.ALREADY_RUNNING in result.stdout:
            self.fleet.say(f"[{host.name}] {step.subject} already running")
            return
        with self.made.lock:
            self.made.containers.setdefault(host.name, []).append(step.subject)
        self.fleet.emit(ReplicaState(host.name, step.subject, "starting"))
        self.fleet.say(f"[{host.name}] started {step.subject}")

    def _wait(self, host: Host, step: Step) -> None:
        self.wait({host.name: step.payload})

    def _retire(self, host: Host, step: Step) -> None:
        drain(self.fleet, {c.replica for c in step.payload})
        self.fleet.run_script(host, step.command, warn=True)
        self.fleet.say(f"[{host.name}] retired {step.subject} (kept for rollback)")

    def _prune(self, host: Host, step: Step) -> None:
        with contextlib.suppress(Exception):
            self.fleet.run_script(host, step.command, warn=True)
        with self.made.lock:
            self._pruned.setdefault(host.name, []).append(step.payload)

    def _remove(self, host: Host, step: Step) -> None:
        self.fleet.run_script(host, step.command)
        self.fleet.say(f"[{host.name}] stopped {step.subject}")

    def _report_pruned(self, host: str) -> None:
        versions = self._pruned.pop(host, [])
        if versions:
            self.fleet.say(f"[{host}] pruned versions {', '.join(versions)}")

    # ------------------------------------------------------------------ waiting, undoing

    def wait(self, replicas: Mapping[str, Sequence[Replica]]) -> None:
        """Until every replica in ``replicas`` (per host name) serves; raises
        :class:`DeployError` naming the hosts whose replicas crashed or never connected."""
        by_host = {self.fleet.host(name): list(rs) for name, rs in replicas.items() if rs}
        if by_host:
            wait_until_serving(self.fleet, by_host, self.model, self.version)

    def undo(self) -> None:
        """Remove what this executor made: its containers, its images, its registration."""
        fleet = self.fleet
        for host_name, containers in self.made.containers.items():
            with contextlib.suppress(Exception):
                fleet.run(fleet.host(host_name), dc.remove_containers(containers), warn=True)
            if self.made.registered:  # the version's keys die with its registration
                with contextlib.suppress(Exception):
                    fleet.run_script(
                        fleet.host(host_name), dc.remove_keys(self.model, self.version), warn=True
                    )
        for host_name, image in self.made.images.items():
            with contextlib.suppress(Exception):
                fleet.run(fleet.host(host_name), dc.remove_image(image), warn=True)
        if self.made.registered:
            with contextlib.suppress(Exception):
                fleet.admin.delete_versioned_model(self.model, self.version)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def leading_transfers(steps: Sequence[Step]) -> tuple[list[Step], list[Step]]:
    """A host's first steps that move layers (``ship-base`` and ``upload``: they do not depend
    on each other), and the steps after them. The executor runs the former at once, so the
    bundle travels while the base image does: the host needs both before it loads, builds or
    tags."""
    count = 0
    while count < len(steps) and steps[count].kind in TRANSFER_KINDS:
        count += 1
    return list(steps[:count]), list(steps[count:])


def build_failure_tail(output: str, lines: int = 25) -> str:
    """What of ``docker build``'s output says why it failed, indented: from the classic
    builder's last ``Step n/m`` on (the failing one, without its bookkeeping lines), else the
    last ``lines`` lines (BuildKit ends with its ``ERROR``), without colour codes or Docker's
    notice that the classic builder is deprecated."""
    text = [
        line.rstrip()
        for line in _ANSI.sub("", output).strip().splitlines()
        if not builder_notice(line)
    ]
    steps = [i for i, line in enumerate(text) if line.startswith("Step ")]
    if steps:
        text = [text[steps[-1]]] + [
            line
            for line in text[steps[-1] + 1 :]
            if not line.startswith((" ---> ", "Removing intermediate container"))
        ]
    return "\n".join(f"    {line}" for line in text[-lines:] if line.strip())

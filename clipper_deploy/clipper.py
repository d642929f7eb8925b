"""The seed's API in one object: ``Clipper(inventory)``.

::

    from clipper_deploy import Clipper
    clipper = Clipper("inventory.ini")        # or the test bed's inventory
    clipper.start()                           # frontend up on the [clipper] host; idempotent
    clipper.register_application("example", "doubles", default_output="-1.0", slo_micros=100000)
    clipper.deploy_predict_function("example-model", 1, centered_predict, ["example"], "doubles")
    clipper.link_model_to_app("example", "example-model")
    clipper.predict("example", [1.0, 2.0, 3.0, 4.0])

Inventory variables read on the ``[clipper]`` host (all optional): ``clipper_state_dir``
(the frontend's state; relative to the inventory's folder), ``clipper_query_port`` (1337),
``clipper_admin_port`` (1338), ``clipper_replica_port`` (7000), ``clipper_metrics_open``
(``false``: ``/metrics`` needs the admin token), and the frontend's limits
``clipper_max_body_bytes``, ``clipper_max_batch_inputs``, ``clipper_max_queue``,
``clipper_idle_timeout``, ``clipper_batch_timeout`` (see ``docs/errors.md``, "Limits of the
frontend"). Model containers are started on the ``[model_hosts]`` group unless a deploy names
other hosts.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from clipper_deploy.frontend import process as frontend_process
from clipper_deploy.frontend.client import AdminClient, FrontendError, QueryClient
from clipper_deploy.frontend.config import (
    DEFAULT_ADMIN_PORT,
    DEFAULT_BATCH_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_BATCH_INPUTS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_QUERY_PORT,
    DEFAULT_REPLICA_PORT,
    FrontendConfig,
)
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.connection import HostGroup, connection_for
from clipper_deploy.hosts.inventory import Host, Inventory
from clipper_deploy.images.base import BaseImageSpec
from clipper_deploy.images.build import build_base_tarball
from clipper_deploy.orchestration.audit import AuditLog
from clipper_deploy.orchestration.deploy import (
    BaseImage,
    ContainerOptions,
    DeployError,
    Fleet,
    deploy_bundle,
    require_frontend,
)
from clipper_deploy.orchestration.lock import FleetLock
from clipper_deploy.orchestration.playbook import Playbook
from clipper_deploy.orchestration.rollout import (
    DEFAULT_RETAIN,
    RolloutResult,
    SmokeCheck,
    current_version,
    prune_versions,
    rollback,
    rollout_bundle,
)

DEFAULT_STATE_DIR = "/var/lib/clipper-deploy/frontend"
FRONTEND_GROUP = "clipper"
MODEL_HOSTS_GROUP = "model_hosts"


class ClipperError(RuntimeError):
    """A management call failed; the message says what, where and how to fix it."""


class Clipper:
    """Manage a frontend and the model containers on an inventory's Docker hosts.

    Args:
        inventory: an Ansible INI inventory file (or a parsed :class:`Inventory`).
        base_image: image bundles build FROM; default the registry-free Debian image built
            by ``invoke base-image`` (shipped to hosts that lack it). Any image with the
            client's Python works on hosts that can pull it, e.g. ``python:3.11-slim``.
        say: where progress lines go (default ``print``).
    """

    def __init__(
        self,
        inventory: str | os.PathLike[str] | Inventory = "inventory.ini",
        *,
        base_image: str | None = None,
        say: Callable[[str], None] = print,
        connect_timeout: float = 10.0,
        ready_timeout: float = 120.0,
    ) -> None:
        self.inventory = (
            inventory if isinstance(inventory, Inventory) else Inventory.from_file(inventory)
        )
        self.say = say
        self.connect_timeout = connect_timeout
        self.ready_timeout = ready_timeout
        self._base_image_name = base_image
        if any(h.vars.get("clipper_example_inventory") for h in self.inventory.hosts("all")):
            raise ClipperError(
                f"{self.inventory.source} is the repository's example inventory: copy it, put "
                "your own hosts in, remove `clipper_example_inventory`, and pass it with "
                "--inventory; or bring up the local test bed with `invoke testbed.up`"
            )
        frontends = self.inventory.hosts(FRONTEND_GROUP)
        if len(frontends) != 1:
            raise ClipperError(
                f"{self.inventory.source}: the [{FRONTEND_GROUP}] group must hold exactly one "
                f"host (the frontend), not {len(frontends)}"
            )
        self.frontend_host: Host = frontends[0]

    # ------------------------------------------------------------------ frontend

    @property
    def frontend_config(self) -> FrontendConfig:
        """The frontend's settings, from the ``[clipper]`` host's inventory variables."""
        host = self.frontend_host
        state_dir = Path(host.vars.get("clipper_state_dir", DEFAULT_STATE_DIR)).expanduser()
        if not state_dir.is_absolute():
            state_dir = Path(self.inventory.source).resolve().parent / state_dir
        return FrontendConfig(
            state_dir=state_dir,
            bind=host.address,
            query_port=int(host.vars.get("clipper_query_port", DEFAULT_QUERY_PORT)),
            admin_port=int(host.vars.get("clipper_admin_port", DEFAULT_ADMIN_PORT)),
            replica_port=int(host.vars.get("clipper_replica_port", DEFAULT_REPLICA_PORT)),
            metrics_open=inventory_flag(host.vars.get("clipper_metrics_open", "false")),
            max_body_bytes=int(host.vars.get("clipper_max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
            max_batch_inputs=int(
                host.vars.get("clipper_max_batch_inputs", DEFAULT_MAX_BATCH_INPUTS)
            ),
            max_queue=int(host.vars.get("clipper_max_queue", DEFAULT_MAX_QUEUE)),
            idle_timeout_s=float(host.vars.get("clipper_idle_timeout", DEFAULT_IDLE_TIMEOUT_S)),
            batch_timeout_s=float(host.vars.get("clipper_batch_timeout", DEFAULT_BATCH_TIMEOUT_S)),
        )

    def start(self) -> dict[str, Any]:
        """Start the frontend on the ``[clipper]`` host (idempotent); returns its status."""
        self._require_local_frontend("start the frontend")
        status = frontend_process.start(self.frontend_config)
        self.say(f"Frontend {status.message}: queries at {status.query_url}")
        return status.to_json()

    def stop(self) -> dict[str, Any]:
        """Stop the frontend (model containers keep running and reconnect when it is back)."""
        self._require_local_frontend("stop the frontend")
        return frontend_process.stop(self.frontend_config.state_dir).to_json()

    @property
    def admin(self) -> AdminClient:
        config = self.frontend_config
        token = None
        token_file = config.state_dir / "admin.token"
        if self.frontend_host.is_local and token_file.exists():
            token = token_file.read_text().strip()
        return AdminClient(f"http://{config.bind}:{config.admin_port}", token)

    @property
    def query(self) -> QueryClient:
        config = self.frontend_config
        return QueryClient(f"http://{config.bind}:{config.query_port}")

    def _require_local_frontend(self, what: str) -> None:
        if not self.frontend_host.is_local:
            raise ClipperError(
                f"cannot {what} on {self.frontend_host.name}: clipper-deploy runs the frontend "
                "on the machine it is called from; set `ansible_connection=local` on the "
                "[clipper] host and run this there (`invoke frontend.start`)"
            )

    # ------------------------------------------------------------------ apps and models

    def register_application(
        self, name: str, input_type: str, default_output: Any, slo_micros: int = 100_000
    ) -> None:
        """Register an app (idempotent when it exists with the same settings)."""
        admin = self.admin
        try:
            existing = admin.get_application(name)
        except FrontendError:
            existing = None
        if existing is not None:
            self.say(f"Application {name} already registered")
            return
        admin.add_app(name, input_type, default_output, slo_micros)
        self.say(f"Registered application {name} ({input_type}, SLO {slo_micros} us)")

    def link_model_to_app(self, app_name: str, model_name: str) -> None:
        """Route ``app_name``'s queries to ``model_name``'s current version."""
        if model_name in self.admin.get_linked_models(app_name):
            return
        self.admin.add_model_links(app_name, [model_name])
        self.say(f"Linked model {model_name} to application {app_name}")

    def deploy_predict_function(
        self,
        name: str,
        version: str | int,
        predict_function: Callable[..., Any],
        labels: Sequence[str],
        input_type: str,
        num_containers: int = 1,
        *,
        hosts: str = MODEL_HOSTS_GROUP,
        mode: str = "full",
        sample_input: Any = None,
        cpus: float | None = None,
        memory: str | None = None,
        env: dict[str, str] | None = None,
        retain: int = DEFAULT_RETAIN,
        lock_wait: float = 0.0,
        **packaging: Any,
    ) -> bool:
        """Package ``predict_function``, ship it to ``hosts``, and return True once every one
        of ``num_containers`` replicas serves. Raises on any failure (the previous version
        keeps serving); see the README's "Errors you can encounter". Holds the model's fleet
        lock (waiting up to ``lock_wait`` s for another operation) and writes the audit log;
        keeps the newest ``retain`` versions on the hosts for rollbacks."""
        require_frontend(self.admin)  # before packaging: a stopped frontend fails at once
        bundle = self._package(
            predict_function, name, version, input_type, labels, mode, sample_input, **packaging
        )
        targets = self.inventory.hosts(hosts)
        options = ContainerOptions(cpus=cpus, memory=memory, env=env or {})
        version = str(version)
        with (
            self.operation("deploy", name, version, targets, lock_wait) as event,
            self.fleet(targets) as fleet,
        ):
            result = deploy_bundle(fleet, bundle, targets, num_containers, options)
            if not result.changed:
                event["detail"] = "already deployed and serving: nothing changed"
            prune_versions(fleet, targets, name, keep_current=version, retain=retain)
        return True

    deploy_prediction_func = deploy_predict_function
    """The seed uses both names."""

    def deploy_playbook(
        self, playbook: Playbook, version: str | int | None = None, lock_wait: float = 0.0
    ) -> bool:
        """Deploy what a playbook describes: its app (registered and linked, when given) and
        its function as ``version`` (default: the playbook's)."""
        require_frontend(self.admin)
        self._register_playbook_app(playbook)
        self.deploy_predict_function(
            playbook.model,
            version if version is not None else playbook.version,
            playbook.load_function(),
            list(playbook.labels),
            playbook.input_type,
            playbook.replicas,
            hosts=playbook.hosts,
            mode=playbook.mode,
            sample_input=sample_batch(playbook.input_type, playbook.sample_input),
            cpus=playbook.cpus,
            memory=playbook.memory,
            env=playbook.env,
            retain=playbook.retain,
            lock_wait=lock_wait,
        )
        self._link_playbook_app(playbook)
        return True

    # ------------------------------------------------------------------ fleet operations

    def rollout_playbook(
        self,
        playbook: Playbook,
        version: str | int | None = None,
        *,
        lock_wait: float = 0.0,
    ) -> RolloutResult | None:
        """Roll ``version`` of a playbook's function out batch by batch (``serial``,
        ``max_fail_percentage``, ``smoke`` from the playbook). A model without a current
        version is deployed instead (returns None)."""
        version = str(version if version is not None else playbook.version)
        targets = self.inventory.hosts(playbook.hosts)
        require_frontend(self.admin)
        with self.operation("rollout", playbook.model, version, targets, lock_wait):
            return self._rollout(playbook, version, playbook.load_function(), targets)

    def _rollout(
        self,
        playbook: Playbook,
        version: str,
        function: Callable[..., Any],
        targets: Sequence[Host],
    ) -> RolloutResult | None:
        """Package and roll out (or first deploy) without taking the lock: the caller has."""
        self._register_playbook_app(playbook)
        bundle = self._package(
            function,
            playbook.model,
            version,
            playbook.input_type,
            playbook.labels,
            playbook.mode,
            sample_batch(playbook.input_type, playbook.sample_input),
        )
        options = ContainerOptions(playbook.cpus, playbook.memory, playbook.env)
        with self.fleet(targets) as fleet:
            if current_version(fleet, playbook.model) is None:
                deploy_bundle(fleet, bundle, targets, playbook.replicas, options)
                result = None
            else:
                result = rollout_bundle(
                    fleet,
                    bundle,
                    targets,
                    playbook.replicas,
                    playbook.serial,
                    playbook.max_fail_percentage,
                    options=options,
                    smoke=[SmokeCheck(q.input, q.expect) for q in playbook.smoke],
                    retain=playbook.retain,
                )
        self._link_playbook_app(playbook)
        return result

    def _package(
        self,
        function: Callable[..., Any],
        name: str,
        version: str | int,
        input_type: str,
        labels: Sequence[str],
        mode: str,
        sample_input: Any,
        **packaging: Any,
    ) -> Any:
        """The function's bundle, built FROM the configured base image."""
        from clipper_deploy.packaging import build_bundle

        return build_bundle(
            function,
            name,
            version,
            input_type,
            list(labels),
            mode=mode,  # type: ignore[arg-type]
            sample_input=sample_input,
            base_image=self.base_image.name,
            printer=self.say,
            **packaging,
        )

    def _register_playbook_app(self, playbook: Playbook) -> None:
        if playbook.app is not None:
            app = playbook.app
            self.register_application(
                app.name, playbook.input_type, app.default_output, app.slo_micros
            )

    def _link_playbook_app(self, playbook: Playbook) -> None:
        if playbook.app is not None:
            self.link_model_to_app(playbook.app.name, playbook.model)

    def rollback(
        self,
        model: str,
        to: str | int | None = None,
        *,
        hosts: str = MODEL_HOSTS_GROUP,
        lock_wait: float = 0.0,
    ) -> str:
        """Switch ``model`` back to a retained version (default: the one before the current);
        returns the version now serving."""
        targets = self.inventory.hosts(hosts)
        wanted = None if to is None else str(to)
        require_frontend(self.admin)
        with (
            self.operation("rollback", model, wanted, targets, lock_wait) as event,
            self.fleet(targets) as fleet,
        ):
            event["version"] = rollback(fleet, targets, model, wanted)
            return event["version"]

    def redeploy(
        self, playbook: Playbook, *, lock_wait: float = 0.0, action: str = "redeploy"
    ) -> str:
        """Build a fresh function with the playbook's factory (e.g. retrain), as the next
        version, and roll it out; on failure (the factory's too) the current version keeps
        serving and the audit log says why. Returns the new version."""
        targets = self.inventory.hosts(playbook.hosts)
        require_frontend(self.admin)
        with self.operation(action, playbook.model, None, targets, lock_wait) as event:
            function = playbook.load_function()
            version = event["version"] = self.next_version(playbook.model)
            self.say(f"Redeploying {playbook.model} as version {version}")
            self._rollout(playbook, version, function, targets)
            return version

    def next_version(self, model: str) -> str:
        """One more than the highest numeric version the frontend knows of ``model`` (1 for a
        new model); other version names cannot be bumped and are an error."""
        versions = [
            str(m["model_version"])
            for m in self.admin.get_all_models(verbose=True)
            if m["model_name"] == model
        ]
        if not all(v.isdigit() for v in versions):
            raise ClipperError(
                f"cannot pick the next version of {model} after {', '.join(versions)}: "
                "versions are not all numbers; give one with --version"
            )
        return str(max((int(v) for v in versions), default=0) + 1)

    def schedule_redeploys(
        self,
        playbook: Playbook,
        *,
        max_runs: int | None = None,
        stop_event: Any = None,
        clock: Callable[[], Any] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> list[Any]:
        """Run :meth:`redeploy` at every tick of the playbook's ``schedule`` (cron), until
        ``stop_event`` is set or ``max_runs`` ran. A failed run is logged and audited, the
        current version keeps serving, and the next tick runs; ticks missed while down (the
        last run is read from the audit log) give one catch-up run, not a pile."""
        from clipper_deploy.orchestration.schedule import Scheduler

        if not playbook.schedule:
            raise ClipperError(f"{playbook.path}: no `schedule` (a cron expression) to follow")
        last = [
            e
            for e in self.audit_log().read(playbook.model)
            if e.get("action") == "scheduled-redeploy"
        ]
        last_run = _parse_time(last[-1]["time"]) if last else None
        kwargs: dict[str, Any] = {"sleep": sleep}
        if clock is not None:
            kwargs["clock"] = clock
        scheduler = Scheduler(
            playbook.schedule,
            lambda: self.redeploy(playbook, action="scheduled-redeploy"),
            log=self.say,
            last_run=last_run,
            name=f"redeploy {playbook.model}",
            **kwargs,
        )
        return scheduler.run(max_runs=max_runs, stop_event=stop_event)

    # ------------------------------------------------------------------ lock and audit

    @property
    def state_root(self) -> str:
        """Where locks and the audit log live on the ``[clipper]`` host."""
        return str(self.frontend_config.state_dir)

    def audit_log(self) -> AuditLog:
        return AuditLog(connection_for(self.frontend_host), self.state_root)

    def lock(self, model: str, action: str = "deploy", version: str | None = None) -> FleetLock:
        return FleetLock(
            connection_for(self.frontend_host),
            self.state_root,
            model=model,
            action=action,
            version=version,
        )

    @contextlib.contextmanager
    def operation(
        self,
        action: str,
        model: str,
        version: str | None,
        hosts: Sequence[Host],
        lock_wait: float = 0.0,
    ) -> Iterator[dict[str, Any]]:
        """Hold ``model``'s fleet lock and audit the block as ``action``."""
        lock = self.lock(model, action, version)
        lock.acquire(wait=lock_wait)
        try:
            with self.audit_log().track(
                action, model, version=version, hosts=[h.name for h in hosts]
            ) as event:
                yield event
        finally:
            lock.release()

    def predict(self, app_name: str, value: Any) -> dict[str, Any]:
        """Query ``app_name`` through the frontend; Clipper's JSON reply."""
        return self.query.predict(app_name, value)

    def set_model_version(self, name: str, version: str | int) -> None:
        self.admin.set_model_version(name, str(version))

    def get_all_models(self, verbose: bool = False) -> list[Any]:
        return self.admin.get_all_models(verbose)

    def get_all_apps(self, verbose: bool = False) -> list[Any]:
        return self.admin.get_all_applications(verbose)

    # ------------------------------------------------------------------ containers

    def containers(self, hosts: str = MODEL_HOSTS_GROUP) -> dict[str, list[dc.ContainerInfo]]:
        """Every managed container on ``hosts`` (unreachable hosts raise)."""
        targets = self.inventory.hosts(hosts)
        with HostGroup(targets, connect_timeout=self.connect_timeout) as group:
            result = group.run(dc.shell(dc.ps()))
        return {host.name: dc.parse_ps(res.stdout) for host, res in result.items()}

    def get_logs(
        self, model: str | None = None, *, hosts: str = MODEL_HOSTS_GROUP, lines: int = 100
    ) -> list[dict[str, Any]]:
        """Recent log lines of ``model``'s containers (all models if None), per host/replica."""
        logs = []
        targets = self.inventory.hosts(hosts)
        with HostGroup(targets, connect_timeout=self.connect_timeout) as group:
            for host in targets:
                conn = group.connection(host)
                found = dc.parse_ps(
                    conn.run(dc.shell(dc.ps(model)), hide=True, in_stream=False).stdout
                )
                for c in found:
                    out = conn.run(
                        dc.shell(dc.logs(c.name, lines)), hide=True, warn=True, in_stream=False
                    )
                    logs.append(
                        {
                            "host": host.name,
                            "container": c.name,
                            "model": c.model,
                            "version": c.version,
                            "lines": (out.stdout + out.stderr).splitlines(),
                        }
                    )
        return logs

    def stop_models(
        self, model: str, versions: Sequence[str] | None = None, *, hosts: str = "all"
    ) -> dict[str, list[str]]:
        """Stop and remove ``model``'s containers (only ``versions`` if given) everywhere."""
        from clipper_deploy.packaging.validation import validate_name

        validate_name(model)
        removed: dict[str, list[str]] = {}
        targets = [h for h in self.inventory.hosts(hosts) if not h.is_local]
        version = ",".join(versions) if versions else None
        with (
            self.operation("stop", model, version, targets),
            HostGroup(targets, connect_timeout=self.connect_timeout) as group,
        ):
            for host in targets:
                conn = group.connection(host)
                found = dc.parse_ps(
                    conn.run(dc.shell(dc.ps(model)), hide=True, in_stream=False).stdout
                )
                names = [c.name for c in found if versions is None or c.version in versions]
                if names:
                    conn.run(dc.shell(dc.remove_containers(names)), hide=True, in_stream=False)
                    removed[host.name] = names
                    self.say(f"[{host.name}] stopped {', '.join(names)}")
        return removed

    # ------------------------------------------------------------------ plumbing

    @functools.cached_property
    def base_image(self) -> BaseImage:
        """The configured base image; the default one's tarball is built (once, cached on
        disk) when a host first needs it."""
        if self._base_image_name:
            return BaseImage(self._base_image_name)
        spec = BaseImageSpec()
        return BaseImage(spec.tag, spec, lambda: build_base_tarball(spec, say=self.say))

    def fleet(self, targets: Sequence[Host]) -> _FleetContext:
        config = self.frontend_config
        return _FleetContext(
            Fleet(
                group=HostGroup(targets, connect_timeout=self.connect_timeout),
                admin=self.admin,
                replica_address=f"{config.bind}:{config.replica_port}",
                base_image=self.base_image,
                say=self.say,
                ready_timeout=self.ready_timeout,
            )
        )


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


NUMPY_DTYPES = {"doubles": "float64", "floats": "float32", "ints": "int32"}


def sample_batch(input_type: str, sample: Any) -> Any:
    """A playbook's sample inputs shaped as the container will pass them: numeric inputs as a
    2-D numpy array (as Clipper does), others as a list."""
    if sample is None or input_type not in NUMPY_DTYPES:
        return sample
    import numpy as np

    return np.asarray(sample, dtype=NUMPY_DTYPES[input_type])


class _FleetContext:
    """``with clipper.fleet(hosts) as fleet:`` closes the fleet's SSH connections."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def __enter__(self) -> Fleet:
        return self.fleet

    def __exit__(self, *exc: object) -> None:
        self.fleet.group.close()


__all__ = ["Clipper", "ClipperError", "DeployError"]


def inventory_flag(value: str) -> bool:
    """An inventory variable read as a boolean, the way Ansible reads ``true``/``yes``/``1``."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    raise ClipperError(f"expected true or false for an inventory flag, got {value!r}")

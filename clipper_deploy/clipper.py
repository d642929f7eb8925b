"""The seed's API in one object: ``Clipper(inventory)``, a facade over the library's parts.

::

    from clipper_deploy import Clipper
    clipper = Clipper("inventory.ini")        # or the test bed's inventory
    clipper.start()                           # frontend up on the [clipper] host; idempotent
    clipper.register_application("example", "doubles", default_output="-1.0", slo_micros=100000)
    clipper.deploy_predict_function("example-model", 1, centered_predict, ["example"], "doubles")
    clipper.link_model_to_app("example", "example-model")
    clipper.predict("example", [1.0, 2.0, 3.0, 4.0])

The frontend and its settings: :mod:`.orchestration.frontend_access`; lock and audit around
every operation: :mod:`.orchestration.operation`; deploys, rollouts, rollbacks and stops read
facts, plan and apply (:mod:`.orchestration.deploy`, :mod:`.orchestration.rollout`; with
``check=True`` they print the plan and change nothing). Model containers go to the
``[model_hosts]`` group unless a call names other hosts.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

from clipper_deploy import settings
from clipper_deploy.hosts.connection import HostGroup
from clipper_deploy.hosts.inventory import Inventory
from clipper_deploy.images.configured import BaseImage, configured_base_image
from clipper_deploy.orchestration import observe
from clipper_deploy.orchestration.deploy import DeployError, deploy_bundle, require_frontend
from clipper_deploy.orchestration.fleet import Fleet
from clipper_deploy.orchestration.frontend_access import ClipperError, FrontendAccess, frontend_host
from clipper_deploy.orchestration.operation import OperationGuard
from clipper_deploy.orchestration.plans import ContainerOptions
from clipper_deploy.orchestration.playbook_runs import PlaybookRuns, package_function
from clipper_deploy.orchestration.progress import Emit, ignore, operation, phase, safe
from clipper_deploy.orchestration.rollout import rollback
from clipper_deploy.orchestration.stop import stop_model
from clipper_deploy.packaging.validation import validate_name

MODEL_HOSTS = settings.MODEL_HOSTS_GROUP


class Clipper:
    """Manage a frontend and the model containers on an inventory's Docker hosts.

    Args:
        inventory: an Ansible INI inventory file (or a parsed :class:`Inventory`).
        base_image: image bundles build FROM; default the registry-free Debian image built
            by ``invoke base-image`` (shipped to hosts that lack it). Any image with the
            client's Python works on hosts that can pull it, e.g. ``python:3.11-slim``.
        say: where progress lines go (default ``print``).
        progress: where progress events go (:mod:`.orchestration.progress`; e.g. a view of
            :mod:`clipper_deploy.display`). By default, with ``say`` left as ``print``, a
            live display when standard output is a terminal (or a notebook with ipywidgets),
            else none: the lines alone, as before.

    Besides the methods below, each instance carries the operations of its parts: ``start()``
    and ``stop()`` of the frontend, ``register_application``, ``link_model_to_app`` and
    ``next_version`` (:class:`~.orchestration.frontend_access.FrontendAccess`);
    ``deploy_playbook``, ``rollout_playbook``, ``redeploy`` and ``schedule_redeploys``
    (:class:`~.orchestration.playbook_runs.PlaybookRuns`); ``lock``, ``audit_log`` and
    ``operation`` (:class:`~.orchestration.operation.OperationGuard`).
    """

    def __init__(
        self,
        inventory: str | os.PathLike[str] | Inventory = "inventory.ini",
        *,
        base_image: str | None = None,
        say: Callable[[str], None] = print,
        progress: Emit | None = None,
        connect_timeout: float = settings.CONNECT_TIMEOUT,
        ready_timeout: float = settings.READY_TIMEOUT,
    ) -> None:
        self.inventory = (
            inventory if isinstance(inventory, Inventory) else Inventory.from_file(inventory)
        )
        if progress is None and say is print:
            from clipper_deploy.display import interactive_view

            view = interactive_view()
            if view is not None:
                say, progress = view.say, view
        self.say = say
        self.emit: Emit = safe(progress) if progress is not None else ignore
        self.connect_timeout = connect_timeout
        self.ready_timeout = ready_timeout
        self._base_image_name = base_image
        self.frontend_host = frontend_host(self.inventory)
        self.frontend = FrontendAccess(
            self.inventory,
            self.frontend_host,
            say,
            base_image=lambda: self.base_image,
            connect_timeout=connect_timeout,
        )
        self.frontend_config = self.frontend.config
        self.guard = OperationGuard(self.frontend_host, str(self.frontend_config.state_dir))
        self.start, self.stop = self.frontend.start, self.frontend.stop
        self.register_application = self.frontend.register_application
        self.link_model_to_app = self.frontend.link_model_to_app
        self.next_version = self.frontend.next_version
        self.audit_log, self.lock, self.operation = (
            self.guard.audit_log,
            self.guard.lock,
            self.guard.operation,
        )
        self.playbooks = PlaybookRuns(self)
        self.deploy_playbook = self.playbooks.deploy
        self.rollout_playbook = self.playbooks.rollout
        self.redeploy = self.playbooks.redeploy
        self.schedule_redeploys = self.playbooks.schedule

    admin = property(lambda self: self.frontend.admin, doc="The frontend's admin client.")
    query = property(lambda self: self.frontend.query, doc="The frontend's query client.")
    state_root = property(lambda self: self.guard.state_root, doc="Locks and audit log root.")

    def predict(self, app_name: str, value: Any) -> dict[str, Any]:
        """Query ``app_name`` through the frontend; Clipper's JSON reply."""
        return self.query.predict(app_name, value)

    def set_model_version(self, name: str, version: str | int) -> None:
        self.admin.set_model_version(name, str(version))

    def get_all_models(self, verbose: bool = False) -> list[Any]:
        return self.admin.get_all_models(verbose)

    def get_all_apps(self, verbose: bool = False) -> list[Any]:
        return self.admin.get_all_applications(verbose)

    # ------------------------------------------------------------------ deploys

    def deploy_predict_function(
        self,
        name: str,
        version: str | int,
        predict_function: Callable[..., Any],
        labels: Sequence[str],
        input_type: str,
        num_containers: int = 1,
        *,
        hosts: str = MODEL_HOSTS,
        mode: str = "full",
        sample_input: Any = None,
        cpus: float | None = None,
        memory: str | None = None,
        env: dict[str, str] | None = None,
        network: str = settings.DEFAULT_NETWORK,
        retain: int = settings.DEFAULT_RETAIN,
        lock_wait: float = 0.0,
        check: bool = False,
        **packaging: Any,
    ) -> bool:
        """Package ``predict_function``, ship it to ``hosts``, and return True once every
        one of ``num_containers`` replicas serves. Raises on any failure (the previous version
        keeps serving); see the README's "Errors you can encounter". Holds the model's fleet
        lock (waiting up to ``lock_wait`` s) and writes the audit log; keeps the newest
        ``retain`` versions on the hosts for rollbacks. With ``check``, prints the plan and
        changes nothing (returns whether the deploy would change anything)."""
        require_frontend(self.admin)  # before packaging: a stopped frontend fails at once
        with self.progress_of(check, "deploy", f"{name}:{version}"):
            with phase(self.emit, "package"):
                bundle = package_function(
                    predict_function,
                    name,
                    version,
                    input_type,
                    labels,
                    mode=mode,
                    sample_input=sample_input,
                    base_image=self.base_image,
                    say=self.say,
                    **packaging,
                )
            targets = self.inventory.hosts(hosts)
            options = ContainerOptions(cpus, memory, env or {}, network)
            with (
                self.guarded(check, "deploy", name, str(version), targets, lock_wait) as event,
                self.fleet(targets) as fleet,
            ):
                result = deploy_bundle(
                    fleet, bundle, targets, num_containers, options, retain=retain, check=check
                )
                if not result.changed:
                    event["detail"] = "already deployed and serving: nothing changed"
        return result.changed if check else True

    deploy_prediction_func = deploy_predict_function
    """The seed uses both names."""

    def rollback(
        self,
        model: str,
        to: str | int | None = None,
        *,
        hosts: str = MODEL_HOSTS,
        lock_wait: float = 0.0,
        check: bool = False,
    ) -> str:
        """Switch ``model`` back to a retained version (default: the one before the current);
        returns the version now serving. With ``check``, prints the plan."""
        targets = self.inventory.hosts(hosts)
        wanted = None if to is None else str(to)
        require_frontend(self.admin)
        with (
            self.progress_of(check, "rollback", model),
            self.guarded(check, "rollback", model, wanted, targets, lock_wait) as event,
            self.fleet(targets) as fleet,
        ):
            event["version"] = rollback(fleet, targets, model, wanted, check=check)
            return event["version"]

    # ------------------------------------------------------------------ containers

    def containers(
        self, hosts: str = MODEL_HOSTS, *, warn: bool = False, remote_only: bool = False
    ) -> dict[str, Any]:
        """Every managed container per host (unreachable hosts raise; with ``warn`` they map
        to their error); ``remote_only`` skips ``ansible_connection=local`` hosts."""
        targets = [h for h in self.inventory.hosts(hosts) if not (remote_only and h.is_local)]
        return observe.containers(targets, self.connect_timeout, warn=warn)

    def get_logs(
        self, model: str | None = None, *, hosts: str = MODEL_HOSTS, lines: int = 100
    ) -> list[dict[str, Any]]:
        """Recent log lines of ``model``'s containers (all models if None), per host/replica."""
        return observe.recent_logs(self.inventory.hosts(hosts), self.connect_timeout, model, lines)

    def follow_logs(
        self, model: str, emit: Callable[[str], None], *, hosts: str = MODEL_HOSTS, lines: int = 100
    ) -> None:
        """Stream ``model``'s container logs through ``emit`` until Ctrl-C."""
        observe.follow_logs(self.inventory.hosts(hosts), self.connect_timeout, model, lines, emit)

    def stop_models(
        self,
        model: str,
        versions: Sequence[str] | None = None,
        *,
        hosts: str = "all",
        check: bool = False,
    ) -> dict[str, list[str]]:
        """Stop and remove ``model``'s containers (only ``versions`` if given) everywhere;
        with ``check``, print what would be removed."""
        validate_name(model)
        targets = [h for h in self.inventory.hosts(hosts) if not h.is_local]
        with self.fleet(targets) as fleet:
            return stop_model(fleet, self.guard, model, versions, targets, check=check)

    # ------------------------------------------------------------------ plumbing

    @functools.cached_property
    def base_image(self) -> BaseImage:
        """The configured base image (the default one's tarball is built when first needed)."""
        return configured_base_image(self._base_image_name, say=self.say)

    def fleet(self, targets: Sequence[Any]) -> Fleet:
        """The hosts ``targets`` with the frontend: ``with clipper.fleet(hosts) as fleet:``."""
        return Fleet(
            group=HostGroup(targets, connect_timeout=self.connect_timeout),
            admin=self.admin,
            replica_address=self.frontend.replica_address,
            base_image=self.base_image,
            say=self.say,
            emit=self.emit,
            ready_timeout=self.ready_timeout,
        )

    def progress_of(self, check: bool, action: str, subject: str) -> Any:
        """Operation events around an operation (none for a ``check``: it only prints)."""
        return contextlib.nullcontext() if check else operation(self.emit, action, subject)

    def guarded(self, check: bool, *operation: Any) -> Any:
        """The model's lock and audit around an operation (``operation``'s arguments); a
        ``check`` changes nothing, so it takes neither."""
        return contextlib.nullcontext({}) if check else self.operation(*operation)


__all__ = ["Clipper", "ClipperError", "DeployError"]

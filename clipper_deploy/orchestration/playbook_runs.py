"""What the ``Clipper`` facade does with a playbook's function: package it, then deploy it or
roll it out (a model without a current version is deployed, not rolled out); and
:class:`PlaybookRuns`, the facade's deploy, rollout and (scheduled) redeploy of a playbook."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from clipper_deploy.hosts.inventory import Host
from clipper_deploy.images.configured import BaseImage
from clipper_deploy.orchestration.deploy import deploy_bundle, require_frontend
from clipper_deploy.orchestration.fleet import Fleet
from clipper_deploy.orchestration.plans import ContainerOptions
from clipper_deploy.orchestration.playbook import Playbook, sample_batch
from clipper_deploy.orchestration.progress import phase
from clipper_deploy.orchestration.rollout import RolloutResult, current_version, rollout_bundle
from clipper_deploy.orchestration.schedule import schedule_redeploys


def package_function(
    function: Callable[..., Any],
    name: str,
    version: str | int,
    input_type: str,
    labels: Sequence[str],
    *,
    mode: str,
    sample_input: Any,
    base_image: BaseImage,
    say: Callable[[str], None],
    **packaging: Any,
) -> Any:
    """The function's bundle (:func:`clipper_deploy.packaging.build_bundle`) FROM ``base_image``
    (with its layer, when the client knows it: hosts then load the image the client made)."""
    from clipper_deploy.packaging import build_bundle

    return build_bundle(
        function,
        name,
        version,
        input_type,
        list(labels),
        mode=mode,  # type: ignore[arg-type]
        sample_input=sample_input,
        base_image=base_image.name,
        base_layer=base_image.layer,
        printer=say,
        **packaging,
    )


def package_playbook(
    playbook: Playbook,
    version: str,
    function: Callable[..., Any],
    base_image: BaseImage,
    say: Callable[[str], None],
) -> Any:
    """``function`` packaged as ``version`` with the playbook's settings."""
    return package_function(
        function,
        playbook.model,
        version,
        playbook.input_type,
        playbook.labels,
        mode=playbook.mode,
        sample_input=sample_batch(playbook.input_type, playbook.sample_input),
        base_image=base_image,
        say=say,
    )


def roll_or_deploy(
    fleet: Fleet, bundle: Any, playbook: Playbook, targets: Sequence[Host], check: bool = False
) -> RolloutResult | None:
    """Roll ``bundle`` out with the playbook's ``serial``, ``max_fail_percentage`` and
    ``smoke``; deploy it instead (returning None) when the model has no current version."""
    options = ContainerOptions(playbook.cpus, playbook.memory, playbook.env, playbook.network)
    if current_version(fleet, playbook.model) is None:
        deploy_bundle(
            fleet, bundle, targets, playbook.replicas, options, retain=playbook.retain, check=check
        )
        return None
    return rollout_bundle(
        fleet,
        bundle,
        targets,
        playbook.replicas,
        playbook.serial,
        playbook.max_fail_percentage,
        options=options,
        smoke=playbook.smoke_checks,
        retain=playbook.retain,
        check=check,
    )


class PlaybookRuns:
    """A ``Clipper``'s operations on playbooks: deploy, roll out, redeploy (also on a
    schedule); the app a playbook names is registered before and linked after."""

    def __init__(self, clipper: Any) -> None:
        self.clipper = clipper

    def deploy(
        self,
        playbook: Playbook,
        version: str | int | None = None,
        lock_wait: float = 0.0,
        check: bool = False,
    ) -> bool:
        """Deploy what a playbook describes: its app (registered and linked, when given) and
        its function as ``version`` (default: the playbook's)."""
        require_frontend(self.clipper.admin)
        if not check:
            self._register_app(playbook)
        changed = self.clipper.deploy_predict_function(
            playbook.model,
            version if version is not None else playbook.version,
            playbook.load_function(),
            list(playbook.labels),
            playbook.input_type,
            playbook.replicas,
            **playbook.deploy_settings(),
            lock_wait=lock_wait,
            check=check,
        )
        if not check:
            self._link_app(playbook)
        return changed

    def rollout(
        self,
        playbook: Playbook,
        version: str | int | None = None,
        *,
        lock_wait: float = 0.0,
        check: bool = False,
    ) -> Any:
        """Roll ``version`` of a playbook's function out batch by batch (``serial``,
        ``max_fail_percentage``, ``smoke`` from the playbook). A model without a current
        version is deployed instead (returns None). With ``check``, prints the plan."""
        version = str(version if version is not None else playbook.version)
        targets = self.clipper.inventory.hosts(playbook.hosts)
        require_frontend(self.clipper.admin)
        with (
            self.clipper.progress_of(check, "rollout", f"{playbook.model}:{version}"),
            self.clipper.guarded(check, "rollout", playbook.model, version, targets, lock_wait),
        ):
            return self._rollout(playbook, version, playbook.load_function(), targets, check)

    def _rollout(
        self, playbook: Playbook, version: str, function: Any, targets: Any, check: bool = False
    ) -> Any:
        """Package and roll out (or first deploy) without taking the lock: the caller has."""
        if not check:
            self._register_app(playbook)
        with phase(self.clipper.emit, "package"):
            bundle = package_playbook(
                playbook, version, function, self.clipper.base_image, self.clipper.say
            )
        with self.clipper.fleet(targets) as fleet:
            result = roll_or_deploy(fleet, bundle, playbook, targets, check)
        if not check:
            self._link_app(playbook)
        return result

    def redeploy(
        self, playbook: Playbook, *, lock_wait: float = 0.0, action: str = "redeploy"
    ) -> str:
        """Build a fresh function with the playbook's factory (e.g. retrain), as the next
        version, and roll it out; on failure (the factory's too) the current version keeps
        serving and the audit log says why. Returns the new version."""
        targets = self.clipper.inventory.hosts(playbook.hosts)
        require_frontend(self.clipper.admin)
        with (
            self.clipper.progress_of(False, action, playbook.model),
            self.clipper.operation(action, playbook.model, None, targets, lock_wait) as event,
        ):
            function = playbook.load_function()
            version = event["version"] = self.clipper.next_version(playbook.model)
            self.clipper.say(f"Redeploying {playbook.model} as version {version}")
            self._rollout(playbook, version, function, targets)
            return version

    def schedule(self, playbook: Playbook, **kwargs: Any) -> list[Any]:
        """Run :meth:`redeploy` at every tick of the playbook's ``schedule`` (cron); see
        :func:`clipper_deploy.orchestration.schedule.schedule_redeploys` for the keywords."""
        return schedule_redeploys(
            playbook,
            lambda: self.redeploy(playbook, action="scheduled-redeploy"),
            self.clipper.audit_log(),
            say=self.clipper.say,
            **kwargs,
        )

    def _register_app(self, playbook: Playbook) -> None:
        if playbook.app is not None:
            app = playbook.app
            self.clipper.register_application(
                app.name, playbook.input_type, app.default_output, app.slo_micros
            )

    def _link_app(self, playbook: Playbook) -> None:
        if playbook.app is not None:
            self.clipper.link_model_to_app(playbook.app.name, playbook.model)

"""Helpers for the deploy tests: what a deploy printed, and what is really on the bed's hosts.

Hosts are inspected from the control machine, through each host's own engine socket and its
upload directory on disk, never over SSH: a fault injected into a host's SSH sessions (or a
pulled cable) does not blind the checks, and the checks do not go through the code under test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipper_deploy import Clipper
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.inventory import Inventory
from clipper_deploy.shell import run
from clipper_deploy.testbed import commands
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testbed.layout import HostLayout

CONNECT_TIMEOUT = 5.0
"""Seconds the tests' Clippers wait for a host's SSH: a cut host fails fast."""


class Transcript:
    """A ``say`` for :class:`Clipper` that records every line (and prints it: ``pytest -s``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
        print(line)

    def mark(self) -> int:
        """Where the transcript is now; :meth:`since` returns what came after."""
        return len(self.lines)

    def since(self, mark: int) -> list[str]:
        return self.lines[mark:]


@dataclass(frozen=True)
class HostView:
    """One bed host as the control machine sees it: its Docker engine and upload directory."""

    layout: HostLayout

    @property
    def name(self) -> str:
        return self.layout.name

    def docker(self, *args: str, check: bool = True) -> str:
        return run(commands.docker_cli(self.layout, *args), check=check).stdout

    def containers(self, model: str | None = None) -> list[dc.ContainerInfo]:
        """Managed containers (running or not), as ``docker ps`` on the host lists them."""
        return dc.parse_ps(self.docker(*dc.ps(model)[1:]))

    def running_ids(self, model: str, version: str) -> dict[str, str]:
        """``{container name: id}`` of the model version's running containers."""
        return {
            c.name: c.id
            for c in self.containers(model)
            if c.version == version and c.state == "running"
        }

    def unmanaged_containers(self) -> list[str]:
        """Containers not made as replicas, e.g. what a failed ``docker build`` left."""
        out = self.docker(
            "ps", "--all", "--format", f'{{{{.Names}}}}\t{{{{.Label "{dc.MANAGED}"}}}}'
        )
        return [line.split("\t")[0] for line in out.splitlines() if not line.endswith("\ttrue")]

    def has_image(self, image: str) -> bool:
        argv = commands.docker_cli(self.layout, *dc.image_exists(image)[1:])  # no 2nd "docker"
        return run(argv, check=False).returncode == 0

    @property
    def upload_dir(self) -> Path:
        """``/var/lib/clipper-deploy`` of the host, as the control machine sees it."""
        return self.layout.private_dirs["/var/lib/clipper-deploy"]

    def blobs(self) -> set[str]:
        blobs = self.upload_dir / "blobs"
        return {p.name for p in blobs.iterdir()} if blobs.is_dir() else set()

    def partial_uploads(self) -> list[str]:
        """Half-made uploads: ``.part`` blobs and bundle directories being assembled."""
        found = [f"blobs/{b}" for b in self.blobs() if ".part-" in b]
        bundles = self.upload_dir / "bundles"
        if bundles.is_dir():
            found += [f"bundles/{p.name}" for p in bundles.iterdir() if p.name.startswith(".")]
        return found


def host_views(bed: Testbed) -> dict[str, HostView]:
    return {h.name: HostView(h) for h in bed.layout.all_hosts()}


def leftovers(views: Iterable[HostView], model: str, version: str) -> list[str]:
    """Everything of ``model:version`` still on the hosts, plus half-made things of any deploy
    (intermediate build containers, partial uploads). Empty when nothing was left behind."""
    found = []
    image = dc.image_name(model, version)
    for view in views:
        found += [
            f"{view.name}: container {c.name} ({c.state})"
            for c in view.containers(model)
            if c.version == version
        ]
        if view.has_image(image):
            found.append(f"{view.name}: image {image}")
        found += [f"{view.name}: unmanaged container {n}" for n in view.unmanaged_containers()]
        found += [f"{view.name}: partial upload {p}" for p in view.partial_uploads()]
    return found


@dataclass
class Failure:
    """A deploy that raised: the error, the lines printed before it, and how long it took."""

    model: str
    version: str
    error: BaseException
    lines: list[str]
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)
    """What the provoking fixture observed while the fault was in place."""

    @property
    def message(self) -> str:
        return str(self.error)


def provoke(
    clipper: Clipper,
    transcript: Transcript,
    model: str,
    version: str | int,
    function: Callable[..., Any],
    replicas: int = 1,
    **kwargs: Any,
) -> Failure:
    """Deploy ``function`` as ``model:version`` and return how it failed; a deploy that
    succeeds fails the test."""
    kwargs.setdefault("mode", "auto")
    mark, started = transcript.mark(), time.monotonic()
    try:
        clipper.deploy_predict_function(
            model, version, function, [model], "doubles", replicas, **kwargs
        )
    except Exception as exc:
        return Failure(model, str(version), exc, transcript.since(mark), time.monotonic() - started)
    raise AssertionError(f"the deploy of {model}:{version} succeeded, but should have failed")


def inventory_variant(bed: Testbed, replace: dict[str, str]) -> Inventory:
    """The bed's inventory with text replaced (``{old: new}``), read as if it were the bed's
    own file: relative paths and the frontend's state directory stay the bed's."""
    text = bed.layout.inventory.read_text()
    for old, new in replace.items():
        assert old in text, f"{old!r} is not in the bed's inventory"
        text = text.replace(old, new)
    return Inventory.parse(text, source=str(bed.layout.inventory), base_dir=bed.layout.directory)


def forget(clipper: Clipper, model: str, app: str | None = None) -> None:
    """Remove a model's containers from every host and its versions (and ``app``) from the
    frontend, so later tests on the same bed and frontend start clean."""
    clipper.stop_models(model)
    admin = clipper.admin
    for entry in admin.get_all_models():
        name, _, version = entry.partition(":")
        if name == model:
            admin.delete_versioned_model(name, version)
    if app is not None and app in admin.get_all_applications():
        admin.delete_app(app)


@dataclass(frozen=True)
class CondaWorld:
    """A client conda prefix and the linux-64 channels a container could use."""

    prefix: Path
    client: str
    """The channel the prefix was installed from (it has ``tinypkg``)."""
    container: str
    """The same packages without ``tinypkg``: an unavailable package."""
    conflict: str
    """Its ``libb`` needs ``liba >=2`` while the prefix pins ``liba 1.0``: a conflict."""

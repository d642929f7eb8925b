"""What an operation talks to: the hosts (over SSH), the frontend, and the base image."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clipper_deploy.frontend.client import AdminClient
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.base_image import HostImageError
from clipper_deploy.hosts.connection import HostGroup, connect_error_message
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.relay import RelayError
from clipper_deploy.hosts.upload import UploadError
from clipper_deploy.images.configured import BaseImage
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.progress import Emit, ignore
from clipper_deploy.settings import MAX_PARALLEL_HOSTS, READY_TIMEOUT, RELAY_WIDTH, REMOTE_ROOT


@dataclass
class Fleet:
    """The hosts of one operation (``group``), the frontend (``admin``), where replicas reach
    it (``replica_address``, ``address:port`` as seen from the hosts), and the base image.
    ``say`` takes the progress lines, ``emit`` the progress events (:mod:`.progress`)."""

    group: HostGroup
    admin: AdminClient
    replica_address: str
    base_image: BaseImage
    say: Callable[[str], None] = print
    emit: Emit = ignore
    root: str = REMOTE_ROOT
    max_parallel: int = MAX_PARALLEL_HOSTS
    ready_timeout: float = READY_TIMEOUT
    relay_width: int = RELAY_WIDTH
    """Hosts one holder of a layer passes it to at once (0: the client sends to every host)."""

    def host(self, name: str) -> Host:
        return next(h for h in self.group.hosts if h.name == name)

    def run(self, host: Host, argv: Sequence[str], **kwargs: Any) -> Any:
        """Run a docker argv on ``host`` (output hidden; ``warn`` as given)."""
        return self.run_script(host, dc.shell(argv), **kwargs)

    def run_script(self, host: Host, script: str, **kwargs: Any) -> Any:
        """Run a shell command line built by :mod:`~clipper_deploy.hosts.docker_commands`."""
        kwargs.setdefault("hide", True)
        kwargs.setdefault("in_stream", False)
        return self.group.connection(host).run(script, **kwargs)

    def containers(self, host: Host, model: str | None = None) -> list[dc.ContainerInfo]:
        return dc.parse_ps(self.run(host, dc.ps(model)).stdout)

    def why(self, host: Host, exc: BaseException) -> str:
        """What went wrong on ``host``, in one line for the user."""
        if isinstance(exc, HostImageError | DeployError | UploadError | RelayError):
            return str(exc)
        return connect_error_message(host, exc, known_hosts=self.group.known_hosts)

    def scout(self) -> Fleet:
        """The same fleet on connections of its own, to read facts and close again: a kept
        SSH connection to a host whose network is cut later blocks instead of failing, so an
        operation that runs long after its first read (a rollout) connects afresh."""
        group = self.group
        fresh = HostGroup(
            group.hosts,
            known_hosts=group.known_hosts,
            connect_timeout=group.connect_timeout,
            max_workers=group.max_workers,
            config=group.config,
        )
        return dataclasses.replace(self, group=fresh)

    def close(self) -> None:
        self.group.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

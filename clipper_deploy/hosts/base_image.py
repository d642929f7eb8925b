"""Make sure hosts have the base image: find it, or ship it from the client (no registry).

For each host, in parallel: ``docker image inspect TAG``; when missing, stream the cached root
file system tarball over SSH into ``docker import -``. Prints ``Found <image> on <host>`` (the
seed's line) or what was shipped, and raises one error naming every host that failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.connection import HostGroup, connect_error_message
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.transfer import Sent, stream_into
from clipper_deploy.images.base import BaseImageSpec, import_argv, import_message


class BaseImageShipError(ClipperDeployError, RuntimeError):
    """Some hosts could not get the base image; ``failures`` maps host name to reason."""

    def __init__(self, image: str, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = [f"base image {image} could not be made available on {len(failures)} host(s):"]
        lines += [f"  {name}: {why}" for name, why in failures.items()]
        super().__init__("\n".join(lines))


def ensure_on_host(
    connection: Any,
    host: str,
    image: str,
    tarball: Path | None,
    spec: BaseImageSpec | None = None,
    *,
    say: Callable[[str], None] = print,
) -> str:
    """Make ``image`` present on one host; returns ``"found"``, ``"shipped"`` or ``"pulled"``.

    With a ``tarball`` (and its ``spec``) a missing image is streamed into ``docker import``;
    without one (a registry image such as ``python:3.11-slim``) the host pulls it. Raises
    :class:`HostImageError` with the reason.
    """
    probe = connection.run(dc.shell(dc.image_exists(image)), hide=True, warn=True, in_stream=False)
    if probe.ok:
        say(f"Found {image} on {host}")
        return "found"
    if probe.return_code == 127 or "Cannot connect to the Docker daemon" in probe.stderr:
        raise HostImageError(dc.docker_failure(host, probe.return_code, probe.stderr))
    return ship_to_host(connection, host, image, tarball, spec, say=say)


def ship_to_host(
    connection: Any,
    host: str,
    image: str,
    tarball: Path | None,
    spec: BaseImageSpec | None = None,
    *,
    say: Callable[[str], None] = print,
    on_sent: Sent | None = None,
    keep: str | None = None,
) -> str:
    """Put ``image`` on a host known to lack it: stream ``tarball`` into ``docker import``
    (``on_sent(sent, total)`` follows the bytes; with ``keep``, the host keeps a copy there
    to pass on), or (without one) let the host pull it. Returns ``"shipped"`` or
    ``"pulled"``; raises :class:`HostImageError` with the reason."""
    started = time.monotonic()
    if tarball is None or spec is None:
        pulled = connection.run(dc.shell(dc.pull(image)), hide=True, warn=True, in_stream=False)
        if not pulled.ok:
            raise HostImageError(
                f"{image} is not on {host} and could not be pulled: {pulled.stderr.strip()}. "
                "Use the default registry-free base image, or give the host registry access."
            )
        say(f"Pulled {image} on {host} in {time.monotonic() - started:.1f} s")
        return "pulled"
    argv = (
        ["sh", "-c", dc.import_keeping(spec.tag, import_message(spec), keep)]
        if keep
        else import_argv(spec)
    )
    result = stream_into(connection, argv, tarball, receiver=host, on_sent=on_sent)
    if not result.ok:
        raise HostImageError(f"docker import on {host} failed: {result.stderr.strip()[-500:]}")
    size = tarball.stat().st_size / 2**20
    say(f"Shipped {image} to {host} ({size:.0f} MiB in {time.monotonic() - started:.1f} s)")
    return "shipped"


class HostImageError(ClipperDeployError, RuntimeError):
    """One host cannot get the base image; the message names the host and the reason."""


def ensure_base_image(
    group: HostGroup,
    spec: BaseImageSpec,
    tarball: Path,
    *,
    say: Callable[[str], None] = print,
    max_parallel: int = 4,
) -> dict[str, str]:
    """Load ``spec``'s image on every host of ``group`` that lacks it, in parallel.

    Returns ``{host name: "found" | "shipped"}``; raises :class:`BaseImageShipError` naming
    each host that could not be reached or could not import the image.
    """
    outcome: dict[str, str] = {}
    failures: dict[str, str] = {}

    def one(host: Host) -> None:
        try:
            outcome[host.name] = ensure_on_host(
                group.connection(host), host.name, spec.tag, tarball, spec, say=say
            )
        except HostImageError as exc:
            failures[host.name] = str(exc)
        except Exception as exc:  # reported per host
            failures[host.name] = connect_error_message(host, exc, known_hosts=group.known_hosts)

    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(group)))) as pool:
        list(pool.map(one, group.hosts))
    if failures:
        raise BaseImageShipError(spec.tag, failures)
    return outcome

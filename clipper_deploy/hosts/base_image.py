"""Make sure hosts have the base image: find it, or ship it from the client (no registry).

For each host, in parallel: ``docker image inspect TAG``; when missing, stream the cached root
file system tarball over SSH into ``docker import -``. Prints ``Found <image> on <host>`` (the
seed's line) or what was shipped, and raises one error naming every host that failed.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from clipper_deploy.hosts.connection import HostGroup, connect_error_message
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.transfer import stream_into
from clipper_deploy.images.base import BaseImageSpec, import_argv


class BaseImageShipError(RuntimeError):
    """Some hosts could not get the base image; ``failures`` maps host name to reason."""

    def __init__(self, image: str, failures: dict[str, str]) -> None:
        self.failures = failures
        lines = [f"base image {image} could not be made available on {len(failures)} host(s):"]
        lines += [f"  {name}: {why}" for name, why in failures.items()]
        super().__init__("\n".join(lines))


def ensure_base_image(
    group: HostGroup,
    spec: BaseImageSpec,
    tarball: Path,
    *,
    say: Callable[[str], None] = print,
    max_parallel: int = 4,
) -> dict[str, str]:
    """Load ``spec``'s image on every host of ``group`` that lacks it.

    Returns ``{host name: "found" | "shipped"}``; raises :class:`BaseImageShipError` naming
    each host that could not be reached or could not import the image.
    """
    outcome: dict[str, str] = {}
    failures: dict[str, str] = {}

    def one(host: Host) -> None:
        conn = group.connection(host)
        try:
            probe = conn.run(
                f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(spec.tag)}",
                hide=True,
                warn=True,
                in_stream=False,
            )
            if probe.ok:
                say(f"Found {spec.tag} on {host.name}")
                outcome[host.name] = "found"
                return
            if "docker: command not found" in probe.stderr or probe.return_code == 127:
                failures[host.name] = "docker is not installed (install docker.io)"
                return
            started = time.monotonic()
            result = stream_into(conn, import_argv(spec), tarball)
            if not result.ok:
                failures[host.name] = f"docker import failed: {result.stderr.strip()[-500:]}"
                return
            size = tarball.stat().st_size / 2**20
            say(
                f"Shipped {spec.tag} to {host.name} "
                f"({size:.0f} MiB in {time.monotonic() - started:.1f} s)"
            )
            outcome[host.name] = "shipped"
        except Exception as exc:  # reported per host
            failures[host.name] = connect_error_message(host, exc, known_hosts=group.known_hosts)

    hosts: Iterable[Host] = group.hosts
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(group)))) as pool:
        list(pool.map(one, hosts))
    if failures:
        raise BaseImageShipError(spec.tag, failures)
    return outcome

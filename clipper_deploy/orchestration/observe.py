"""Looking at the fleet without changing it: managed containers per host, and their logs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.connection import HostGroup
from clipper_deploy.hosts.inventory import Host


def containers(
    hosts: Sequence[Host], connect_timeout: float, *, warn: bool = False
) -> dict[str, list[dc.ContainerInfo] | BaseException]:
    """Every managed container per host name; with ``warn`` an unreachable host maps to its
    error instead of raising."""
    with HostGroup(hosts, connect_timeout=connect_timeout) as group:
        result = group.run(dc.shell(dc.ps()), warn=warn)
    return {
        host.name: res if isinstance(res, BaseException) else dc.parse_ps(res.stdout)
        for host, res in result.items()
    }


def recent_logs(
    hosts: Sequence[Host], connect_timeout: float, model: str | None, lines: int
) -> list[dict[str, Any]]:
    """The last ``lines`` log lines of ``model``'s containers (every model's if None)."""
    logs = []
    with HostGroup(hosts, connect_timeout=connect_timeout) as group:
        for host in hosts:
            conn = group.connection(host)
            found = dc.parse_ps(conn.run(dc.shell(dc.ps(model)), hide=True, in_stream=False).stdout)
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


class _PrefixedWriter:
    """A stream that hands each complete line to ``emit`` with ``prefix`` before it."""

    def __init__(self, prefix: str, emit: Callable[[str], None]) -> None:
        self.prefix = prefix
        self.emit = emit
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.emit(f"{self.prefix} {line}")
        return len(text)

    def flush(self) -> None:
        pass


def follow_logs(
    hosts: Sequence[Host],
    connect_timeout: float,
    model: str,
    lines: int,
    emit: Callable[[str], None],
) -> None:
    """Print (through ``emit``) ``model``'s containers' logs as ``host/container line``,
    following new lines until every stream ends or Ctrl-C."""
    with HostGroup(hosts, connect_timeout=connect_timeout) as group:
        threads = []
        for host in hosts:
            conn = group.connection(host)
            found = dc.parse_ps(conn.run(dc.shell(dc.ps(model)), hide=True, in_stream=False).stdout)
            for c in found:
                writer = _PrefixedWriter(f"{host.name}/{c.name}", emit)
                command = dc.shell(dc.logs(c.name, lines, follow=True))
                thread = threading.Thread(
                    target=conn.run,
                    args=(command,),
                    kwargs={
                        "out_stream": writer,
                        "err_stream": writer,
                        "warn": True,
                        "in_stream": False,
                    },
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
        try:
            while any(t.is_alive() for t in threads):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass

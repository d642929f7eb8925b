"""Every fleet operation holds its model's lock and is written to the audit log.

Both live on the ``[clipper]`` host, next to the frontend's state (:mod:`.lock`, :mod:`.audit`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from clipper_deploy.hosts.connection import connection_for
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.audit import AuditLog
from clipper_deploy.orchestration.lock import FleetLock


class OperationGuard:
    """Locks and audit log of the fleet whose state is in ``state_root`` on ``host``."""

    def __init__(self, host: Host, state_root: str) -> None:
        self.host = host
        self.state_root = state_root

    def audit_log(self) -> AuditLog:
        return AuditLog(connection_for(self.host), self.state_root)

    def lock(self, model: str, action: str = "deploy", version: str | None = None) -> FleetLock:
        return FleetLock(
            connection_for(self.host), self.state_root, model=model, action=action, version=version
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
        """Hold ``model``'s fleet lock and audit the block as ``action``; yields the audit
        event (set ``detail`` or ``version`` on it)."""
        lock = self.lock(model, action, version)
        lock.acquire(wait=lock_wait)
        try:
            with self.audit_log().track(
                action, model, version=version, hosts=[h.name for h in hosts]
            ) as event:
                yield event
        finally:
            lock.release()

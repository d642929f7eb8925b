"""The errors of fleet operations: a deploy, a rollout or a rollback that failed."""

from __future__ import annotations

from collections.abc import Mapping

from clipper_deploy.errors import ClipperDeployError


class DeployError(ClipperDeployError, RuntimeError):
    """A deploy failed; ``failures`` maps each failed host to what went wrong there."""

    def __init__(self, message: str, failures: Mapping[str, str] | None = None) -> None:
        self.failures = dict(failures or {})
        lines = [message] + [f"  {host}: {why}" for host, why in self.failures.items()]
        super().__init__("\n".join(lines))


class RolloutError(DeployError):
    """A rollout stopped; every host is back on ``previous``. ``failures`` names each host."""


__all__ = ["DeployError", "RolloutError"]

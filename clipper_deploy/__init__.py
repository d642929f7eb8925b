"""clipper-deploy: put a Python prediction function into production on your own Docker hosts.

``from clipper_deploy import Clipper`` is the seed's API. The names below are imported on
first use, so a part that needs none of them (the frontend, in its own image) loads only what
it uses.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Clipper": "clipper_deploy.clipper",
    "ClipperError": "clipper_deploy.clipper",
    "DeployError": "clipper_deploy.orchestration.deploy",
    "RolloutError": "clipper_deploy.orchestration.rollout",
}

__all__ = ["Clipper", "ClipperError", "DeployError", "RolloutError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clipper_deploy' has no attribute {name!r}")

"""clipper-deploy: put a Python prediction function into production on your own Docker hosts."""

__version__ = "0.1.0"

from clipper_deploy.clipper import Clipper, ClipperError
from clipper_deploy.orchestration.deploy import DeployError
from clipper_deploy.orchestration.rollout import RolloutError

__all__ = ["Clipper", "ClipperError", "DeployError", "RolloutError", "__version__"]

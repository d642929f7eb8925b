"""clipper-deploy: put a Python prediction function into production on your own Docker hosts."""

__version__ = "0.1.0"

from clipper_deploy.clipper import Clipper, ClipperError

__all__ = ["Clipper", "ClipperError", "__version__"]

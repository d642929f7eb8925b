"""``python -m clipper_deploy.frontend --state-dir DIR [...]``: run the frontend in the foreground.

See :mod:`clipper_deploy.frontend.config` for the flags and
:mod:`clipper_deploy.frontend.process` to run it in the background.
"""

from __future__ import annotations

import sys

from clipper_deploy.frontend.config import from_args
from clipper_deploy.frontend.server import run

if __name__ == "__main__":
    sys.exit(run(from_args()))

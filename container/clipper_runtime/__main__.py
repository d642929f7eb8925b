"""``python -m clipper_runtime``: run the model-container runtime."""

from __future__ import annotations

import sys

from clipper_runtime.main import main

if __name__ == "__main__":
    sys.exit(main())

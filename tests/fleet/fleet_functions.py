"""Prediction functions for the fleet tests; playbooks name them as ``file.py:factory()``.

Outputs say which build answered, so a test can tell versions apart.
"""

from __future__ import annotations

import os
from pathlib import Path


def tagged():
    """A function answering ``$FLEET_TAG`` (read when the factory runs) for every input."""
    tag = os.environ.get("FLEET_TAG", "untagged")

    def predict(inputs):
        return [tag for _ in inputs]

    return predict


def flaky():
    """A "training" factory that fails on every odd call (no data yet) and builds a tagged
    function on even ones; calls are counted in the file ``$FLEET_FLAKY_COUNTER``."""
    counter = Path(os.environ["FLEET_FLAKY_COUNTER"])
    calls = (int(counter.read_text()) if counter.exists() else 0) + 1
    counter.write_text(str(calls))
    if calls % 2:
        raise RuntimeError(f"training data is not there yet (call {calls})")
    os.environ["FLEET_TAG"] = f"trained-{calls}"
    return tagged()

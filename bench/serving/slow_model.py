"""A prediction function with a known cost, for the overload benchmark.

``build(batch_ms, per_input_ms)`` returns a function that sleeps ``batch_ms`` plus
``per_input_ms`` per input (sleeping, so the cost is the same on a busy machine and takes no
CPU), then returns the first feature of each input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def build(batch_ms: float, per_input_ms: float) -> Callable[[Any], Any]:
    """The function: ``batch_ms + per_input_ms * len(inputs)`` milliseconds per batch."""

    def predict(inputs: Any) -> Any:
        import time

        time.sleep((batch_ms + per_input_ms * len(inputs)) / 1000)
        return [float(x[0]) for x in inputs]

    return predict

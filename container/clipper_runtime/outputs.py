"""Turn what the prediction function returned into one JSON value per input.

The function must return one output per input, as a list, tuple or numpy array. A wrong count
fails the whole batch; an output that cannot be expressed in JSON fails that input only.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


class OutputError(Exception):
    """The function's return value as a whole is unusable (wrong type or count)."""


def to_json_value(value: Any) -> Any:
    """Return ``value`` as plain JSON data (numpy scalars and arrays become Python values)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, bytes):
        raise TypeError("bytes outputs cannot be sent as JSON; decode them to str first")
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"{value} is not valid JSON")
    json.dumps(value, allow_nan=False)  # raises TypeError/ValueError when not serializable
    return value


def normalize(result: Any, count: int) -> tuple[list[Any], dict[int, str]]:
    """Return ``(outputs, errors)`` for a batch of ``count`` inputs.

    ``errors`` maps the index of each unserializable output to a message; those outputs are
    ``None`` in ``outputs``. Raise :class:`OutputError` for a wrong type or count.
    """
    if isinstance(result, np.ndarray):
        if result.ndim == 0:
            raise OutputError("the function returned a scalar; return one output per input")
        if result.dtype.kind in "biuf" and result.shape[0] == count:
            try:
                values = result.tolist()
                json.dumps(values, allow_nan=False)
                return values, {}
            except ValueError:
                pass  # NaN or infinity somewhere: check item by item below
        result = list(result)
    elif isinstance(result, (list, tuple)):
        result = list(result)
    else:
        raise OutputError(
            f"the function returned a {type(result).__name__}; "
            "return a list or numpy array with one output per input"
        )
    if len(result) != count:
        raise OutputError(
            f"the function returned {len(result)} outputs for {count} inputs; "
            "return exactly one output per input"
        )
    outputs: list[Any] = []
    errors: dict[int, str] = {}
    for i, value in enumerate(result):
        try:
            outputs.append(to_json_value(value))
        except (TypeError, ValueError) as exc:
            outputs.append(None)
            errors[i] = f"output {i} is not JSON-serializable ({type(value).__name__}): {exc}"
    return outputs, errors

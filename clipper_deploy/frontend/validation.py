"""Check a query's JSON body against its application's input type.

Pure functions, no I/O: :func:`parse_query` turns the raw body into the list of inputs to
predict, each already in the form the replica protocol sends (a flat list of numbers, or bytes),
or raises :class:`~clipper_deploy.frontend.errors.ClipperError` (400) saying what is wrong.

Input types, as in Clipper: ``doubles``, ``floats`` and ``ints`` take a flat JSON array of
numbers per input; ``strings`` takes a JSON string; ``bytes`` takes a base64-encoded string.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from clipper_deploy.frontend.errors import bad_json

NUMERIC_TYPES = ("doubles", "floats", "ints")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT32_MAX = 3.4028234663852886e38


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json(body: bytes) -> Any:
    """Parse a request body as strict JSON (no NaN or Infinity), or raise a 400."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_json(f"the request body is not valid JSON ({exc})") from None


def _numeric(input_type: str, value: Any, where: str) -> list[int | float]:
    if not isinstance(value, list):
        raise bad_json(
            f"{where} must be a JSON array of numbers for {input_type} input, "
            f"got {json_type(value)}"
        )
    if not value:
        raise bad_json(f"{where} is an empty array; send at least one number")
    want_int = input_type == "ints"
    for x in value:
        t = type(x)
        if t is float:
            if want_int:
                raise bad_json(f"{where} holds {x!r}, but ints input takes integers only")
            if input_type == "floats" and abs(x) > FLOAT32_MAX:
                raise bad_json(f"{where} holds {x!r}, out of range for floats (32-bit) input")
        elif t is int:
            if want_int and not INT64_MIN <= x <= INT64_MAX:
                raise bad_json(f"{where} holds {x}, out of range for ints (64-bit) input")
        elif t is list:
            lengths = {len(v) if isinstance(v, list) else -1 for v in value}
            shape = "ragged (rows of unequal length)" if len(lengths) > 1 else "nested"
            raise bad_json(
                f"{where} is a {shape} array; each input must be one flat array of numbers "
                "(send several inputs with 'input_batch')"
            )
        else:
            raise bad_json(f"{where} holds {json_type(x)}, but {input_type} input takes numbers")
    return value


def validate_input(input_type: str, value: Any, where: str = "'input'") -> Any:
    """Return ``value`` as the protocol sends it, or raise a 400 naming the problem."""
    if input_type in NUMERIC_TYPES:
        return _numeric(input_type, value, where)
    if input_type == "strings":
        if not isinstance(value, str):
            raise bad_json(
                f"{where} must be a JSON string for strings input, got {json_type(value)}"
            )
        return value.encode()
    if input_type == "bytes":
        if not isinstance(value, str):
            raise bad_json(
                f"{where} must be a base64-encoded string for bytes input, got {json_type(value)}"
            )
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_json(f"{where} is not valid base64 ({exc})") from None
    raise ValueError(f"unknown input type {input_type!r}")


def parse_query(input_type: str, body: bytes) -> tuple[list[Any], bool]:
    """Return ``(inputs, is_batch)`` for a ``/{app}/predict`` body, or raise a 400.

    ``{"input": x}`` gives one input; ``{"input_batch": [x, ...]}`` several, which for numeric
    input types must all have the same length.
    """
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise bad_json(f"the request body must be a JSON object, got {json_type(doc)}")
    if "input" in doc:
        return [validate_input(input_type, doc["input"])], False
    if "input_batch" in doc:
        batch = doc["input_batch"]
        if not isinstance(batch, list) or not batch:
            raise bad_json("'input_batch' must be a non-empty JSON array of inputs")
        inputs = [validate_input(input_type, x, f"'input_batch'[{i}]") for i, x in enumerate(batch)]
        if input_type in NUMERIC_TYPES:
            lengths = sorted({len(x) for x in inputs})
            if len(lengths) > 1:
                raise bad_json(
                    f"'input_batch' is ragged: its inputs have lengths {lengths}; "
                    "all inputs of one batch must have the same length"
                )
        return inputs, True
    raise bad_json("the request body must have an 'input' field (or 'input_batch')")


def json_type(value: Any) -> str:
    """Name ``value``'s JSON type for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

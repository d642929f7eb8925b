"""Check a query's JSON body against its application's input type.

Pure functions, no I/O: :func:`parse_query` turns the raw body into the list of inputs to
predict, each already in the form the replica protocol sends (a flat list of numbers, or bytes),
or raises :class:`~clipper_deploy.frontend.errors.ClipperError` (400) saying what is wrong.

Input types, as in Clipper: ``doubles``, ``floats`` and ``ints`` take a flat JSON array of
numbers per input; ``strings`` takes a JSON string; ``bytes`` takes a base64-encoded string.

Every value is range-checked for its input type here, so that what passes can always be packed
into a ``BATCH`` frame: a number too large for a 64-bit float (``1e400`` parses as infinity, a
400-digit integer does not fit), for a 32-bit float or for a 64-bit integer is a 400, and so is
a string holding a lone surrogate (it has no UTF-8 form). Nothing that fails here ever reaches a
replica's connection.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from typing import Any

from clipper_deploy.frontend.errors import bad_json

NUMERIC_TYPES = ("doubles", "floats", "ints")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT64_MAX = sys.float_info.max
FLOAT32_MAX = 3.4028234663852886e38
#: Deepest nesting accepted in a management request body (a query never needs more than 3).
MAX_JSON_DEPTH = 32

_LIMITS = {"doubles": FLOAT64_MAX, "floats": FLOAT32_MAX}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_json(body: bytes) -> Any:
    """Parse a request body as strict JSON (no NaN or Infinity), or raise a 400.

    Nesting deeper than the parser's recursion limit is a 400 too, not a ``RecursionError``.
    """
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise bad_json(
            "the request body is nested too deeply (arrays or objects inside each other "
            "hundreds of levels deep); a query needs at most 3 levels"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_json(f"the request body is not valid JSON ({exc})") from None


def check_depth(doc: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise a 400 if ``doc`` nests arrays or objects deeper than ``max_depth`` levels."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            raise bad_json(
                f"the request body nests arrays or objects more than {max_depth} levels deep"
            )
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _numeric(input_type: str, value: Any, where: str) -> list[int | float]:
    if not isinstance(value, list):
        raise bad_json(
            f"{where} must be a JSON array of numbers for {input_type} input, "
            f"got {json_type(value)}"
        )
    if not value:
        raise bad_json(f"{where} is an empty array; send at least one number")
    if input_type == "ints":
        for x in value:
            t = type(x)
            if t is int:
                if not INT64_MIN <= x <= INT64_MAX:
                    raise bad_json(
                        f"{where} holds {_short(x)}, out of range for ints (64-bit) input"
                    )
            elif t is float:
                raise bad_json(f"{where} holds {_short(x)}, but ints input takes integers only")
            else:
                _not_a_number(input_type, value, x, where)
        return value
    limit = _LIMITS[input_type]
    for x in value:
        t = type(x)
        if t is float or t is int:
            if not -limit <= x <= limit:
                bits = "64" if input_type == "doubles" else "32"
                raise bad_json(
                    f"{where} holds {_short(x)}, out of range for {input_type} ({bits}-bit) "
                    f"input (largest magnitude {limit:.6g})"
                )
        else:
            _not_a_number(input_type, value, x, where)
    return value


def _not_a_number(input_type: str, value: list[Any], x: Any, where: str) -> None:
    if type(x) is list:
        lengths = {len(v) if isinstance(v, list) else -1 for v in value}
        shape = "ragged (rows of unequal length)" if len(lengths) > 1 else "nested"
        raise bad_json(
            f"{where} is a {shape} array; each input must be one flat array of numbers "
            "(send several inputs with 'input_batch')"
        )
    raise bad_json(f"{where} holds {json_type(x)}, but {input_type} input takes numbers")


def _short(x: int | float) -> str:
    """A number for an error message, shortened if it has hundreds of digits."""
    if isinstance(x, int) and not -(10**30) < x < 10**30:
        digits = len(str(abs(x)))
        return f"an integer of {digits} digits"
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return "a number beyond the 64-bit float range (it reads as infinity)"
    return repr(x)


def _utf8(value: str, where: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise bad_json(
            f"{where} holds a lone surrogate (U+{ord(bad):04X} at character {exc.start}), which "
            "is not valid Unicode; send well-formed text (a surrogate pair needs both halves)"
        ) from None


def validate_input(input_type: str, value: Any, where: str = "'input'") -> Any:
    """Return ``value`` as the protocol sends it, or raise a 400 naming the problem."""
    if input_type in NUMERIC_TYPES:
        return _numeric(input_type, value, where)
    if input_type == "strings":
        if not isinstance(value, str):
            raise bad_json(
                f"{where} must be a JSON string for strings input, got {json_type(value)}"
            )
        return _utf8(value, where)
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


def parse_query(
    input_type: str, body: bytes, max_batch_inputs: int | None = None
) -> tuple[list[Any], bool]:
    """Return ``(inputs, is_batch)`` for a ``/{app}/predict`` body, or raise a 400.

    ``{"input": x}`` gives one input; ``{"input_batch": [x, ...]}`` several (at most
    ``max_batch_inputs``), which for numeric input types must all have the same length.
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
        if max_batch_inputs is not None and len(batch) > max_batch_inputs:
            raise bad_json(
                f"'input_batch' holds {len(batch)} inputs; this frontend takes at most "
                f"{max_batch_inputs} per request (--max-batch-inputs): split the batch"
            )
        inputs = [validate_input(input_type, x, f"'input_batch'[{i}]") for i, x in enumerate(batch)]
        if input_type in NUMERIC_TYPES:
            lengths = sorted({len(x) for x in inputs})
            if len(lengths) > 1:
                raise bad_json(
                    f"'input_batch' is ragged: its inputs have lengths {lengths[:10]}; "
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

"""The replica protocol: how a model container talks to the frontend.

A replica (``container/clipper_runtime``) dials the frontend's replica port (default 7000) over
TCP and keeps that one connection open; the frontend never dials a replica, so Docker hosts need
no inbound port. Everything travels as *frames*::

    +----------------------+-----------+------------------------+
    | length: uint32 (BE)  | kind: u8  | payload: length bytes  |
    +----------------------+-----------+------------------------+

``length`` counts the payload only (not the 5-byte header) and is at most ``MAX_FRAME_BYTES``.

Kinds and payloads, in the order a session uses them:

``HELLO`` (replica -> frontend, first frame)
    JSON object: ``{"protocol": 1, "model_name": str, "model_version": str,
    "input_type": "doubles"|"floats"|"ints"|"bytes"|"strings", "replica_id": str}``.
``WELCOME`` (frontend -> replica)
    JSON object: ``{"heartbeat_interval_s": float}``. The replica is registered from here on.
``REJECT`` (frontend -> replica, then the frontend closes)
    JSON object: ``{"error": str, "cause": str}``; for example a protocol version mismatch or an
    input type that contradicts the registered model. The replica logs it and retries later.
``HEARTBEAT`` (both ways, empty payload)
    The replica sends one every ``heartbeat_interval_s``; the frontend answers each with one.
    Either side that hears nothing for ``HEARTBEAT_MISSES`` intervals drops the connection (the
    frontend re-queues that replica's unfinished batch; the replica reconnects).
``BATCH`` (frontend -> replica)
    ``batch_id: u32 | encoding: u8 | body``. At most one batch is outstanding per replica.

    - ``ENC_NUMERIC``: ``dtype: u8 | count: u32 | count x length: u32 | values``, the values
      being the inputs' numbers concatenated, little-endian (``DTYPE_*`` codes below). When every
      length is equal the runtime hands the function a 2-D array of shape ``(count, length)``;
      otherwise a list of 1-D arrays.
    - ``ENC_BLOBS``: ``count: u32 | count x length: u32 | bytes``: the inputs concatenated;
      ``bytes`` inputs arrive as ``bytes``, ``strings`` inputs as UTF-8 and are decoded to ``str``.
``RESULT`` (replica -> frontend)
    ``batch_id: u32 | JSON``. The JSON is either ``{"outputs": [...]}`` with one JSON value per
    input and optionally ``"errors": {"<index>": "message"}`` for inputs whose output could not
    be serialized, or ``{"error": "message"}`` when the whole batch failed (the function raised,
    or returned the wrong number of outputs). A failed query gets the app's default output with
    the message as explanation; the replica keeps serving.

The runtime keeps its own copy of these constants and codecs in
``container/clipper_runtime/protocol.py`` because it must not import ``clipper_deploy``;
``tests/unit/test_runtime_protocol.py`` checks that the two copies agree byte for byte.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from clipper_deploy import settings
from clipper_deploy.errors import ClipperDeployError

PROTOCOL_VERSION = 1

HELLO = 1
WELCOME = 2
REJECT = 3
HEARTBEAT = 4
BATCH = 5
RESULT = 6

ENC_NUMERIC = 1
ENC_BLOBS = 2

DTYPE_FLOAT64 = 1
DTYPE_FLOAT32 = 2
DTYPE_INT64 = 3

#: struct format of each dtype code (little-endian element), for packing values.
DTYPE_FORMATS = {DTYPE_FLOAT64: "d", DTYPE_FLOAT32: "f", DTYPE_INT64: "q"}

#: Which dtype carries each numeric input type.
INPUT_TYPE_DTYPES = {"doubles": DTYPE_FLOAT64, "floats": DTYPE_FLOAT32, "ints": DTYPE_INT64}

INPUT_TYPES = settings.INPUT_TYPES

HEADER = struct.Struct(">IB")
BATCH_HEADER = struct.Struct(">IB")
BATCH_ID = struct.Struct(">I")
COUNT = struct.Struct(">I")

MAX_FRAME_BYTES = 256 * 1024 * 1024
DEFAULT_HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_MISSES = 3


class ProtocolError(ClipperDeployError):
    """A peer sent something this protocol does not allow."""


def frame(kind: int, payload: bytes = b"") -> bytes:
    """Return one frame: the 5-byte header followed by ``payload``."""
    return HEADER.pack(len(payload), kind) + payload


def json_frame(kind: int, obj: Any) -> bytes:
    """Return a frame whose payload is ``obj`` as compact JSON."""
    return frame(kind, json.dumps(obj, separators=(",", ":")).encode())


def parse_header(header: bytes) -> tuple[int, int]:
    """Return ``(payload_length, kind)`` of a 5-byte header, refusing oversized frames."""
    length, kind = HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return length, kind


def encode_numeric_batch(batch_id: int, input_type: str, inputs: Sequence[Sequence[Any]]) -> bytes:
    """Return the ``BATCH`` frame for numeric inputs (already validated lists of numbers)."""
    dtype = INPUT_TYPE_DTYPES[input_type]
    count = len(inputs)
    lengths = [len(x) for x in inputs]
    total = sum(lengths)
    values = struct.pack(f"<{total}{DTYPE_FORMATS[dtype]}", *chain.from_iterable(inputs))
    body = b"".join(
        (
            BATCH_HEADER.pack(batch_id, ENC_NUMERIC),
            struct.pack(f">BI{count}I", dtype, count, *lengths),
            values,
        )
    )
    return frame(BATCH, body)


def encode_blob_batch(batch_id: int, inputs: Sequence[bytes]) -> bytes:
    """Return the ``BATCH`` frame for ``bytes`` inputs (strings are sent UTF-8 encoded)."""
    count = len(inputs)
    body = b"".join(
        (
            BATCH_HEADER.pack(batch_id, ENC_BLOBS),
            struct.pack(f">I{count}I", count, *(len(b) for b in inputs)),
            *inputs,
        )
    )
    return frame(BATCH, body)


@dataclass(frozen=True)
class BatchResult:
    """A decoded ``RESULT`` frame: per-input outputs and errors, or one error for the batch."""

    batch_id: int
    outputs: list[Any] | None
    errors: dict[int, str]
    error: str | None

    def outcome(self, index: int) -> tuple[bool, Any]:
        """Return ``(True, output)`` or ``(False, error message)`` for input ``index``."""
        if self.error is not None:
            return False, self.error
        if index in self.errors:
            return False, self.errors[index]
        assert self.outputs is not None
        if index >= len(self.outputs):
            return False, "the replica returned fewer outputs than inputs"
        return True, self.outputs[index]


def decode_result(payload: bytes) -> BatchResult:
    """Decode a ``RESULT`` payload."""
    if len(payload) < BATCH_ID.size:
        raise ProtocolError("RESULT frame too short")
    (batch_id,) = BATCH_ID.unpack_from(payload)
    try:
        body = json.loads(payload[BATCH_ID.size :])
    except ValueError as exc:
        raise ProtocolError(f"RESULT body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ProtocolError("RESULT body must be a JSON object")
    if "error" in body:
        return BatchResult(batch_id, None, {}, str(body["error"]))
    outputs = body.get("outputs")
    if not isinstance(outputs, list):
        raise ProtocolError("RESULT body needs an 'outputs' list or an 'error'")
    errors = {int(k): str(v) for k, v in (body.get("errors") or {}).items()}
    return BatchResult(batch_id, outputs, errors, None)


def decode_hello(payload: bytes) -> dict[str, str]:
    """Decode and check a ``HELLO`` payload; raise :class:`ProtocolError` naming what is wrong."""
    try:
        hello = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"HELLO is not JSON: {exc}") from exc
    if not isinstance(hello, dict):
        raise ProtocolError("HELLO must be a JSON object")
    if hello.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {hello.get('protocol')!r} is not supported; "
            f"this frontend speaks version {PROTOCOL_VERSION}"
        )
    fields = {}
    for key in ("model_name", "model_version", "input_type", "replica_id"):
        value = hello.get(key)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"HELLO needs a non-empty string {key!r}")
        fields[key] = value
    if fields["input_type"] not in INPUT_TYPES:
        raise ProtocolError(
            f"input type {fields['input_type']!r} is not one of {', '.join(INPUT_TYPES)}"
        )
    return fields

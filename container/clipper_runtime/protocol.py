"""The runtime's copy of the replica protocol (see ``clipper_deploy/frontend/protocol.py``).

The frontend's module documents the protocol in full. The runtime cannot import it (the container
holds only the runtime, numpy and cloudpickle), so the few constants it needs are repeated here;
``tests/unit/test_runtime_protocol.py`` checks both copies agree.

Frames are ``length: u32 BE | kind: u8 | payload``. The frontend opens with ``CHALLENGE`` (a
nonce); the replica answers ``HELLO`` with the :func:`proof` of its key over that nonce,
expects ``WELCOME`` (or ``REJECT``), then serves ``BATCH`` frames with ``RESULT`` frames, and
sends a ``HEARTBEAT`` every interval, which the frontend echoes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from typing import Any

import numpy as np

PROTOCOL_VERSION = 2

HELLO = 1
WELCOME = 2
REJECT = 3
HEARTBEAT = 4
BATCH = 5
RESULT = 6
CHALLENGE = 7

ENC_NUMERIC = 1
ENC_BLOBS = 2

DTYPE_FLOAT64 = 1
DTYPE_FLOAT32 = 2
DTYPE_INT64 = 3

NUMPY_DTYPES = {
    DTYPE_FLOAT64: np.dtype("<f8"),
    DTYPE_FLOAT32: np.dtype("<f4"),
    DTYPE_INT64: np.dtype("<i8"),
}

INPUT_TYPES = ("doubles", "floats", "ints", "bytes", "strings")

HEADER = struct.Struct(">IB")
BATCH_HEADER = struct.Struct(">IB")
BATCH_ID = struct.Struct(">I")
COUNT = struct.Struct(">I")

MAX_FRAME_BYTES = 256 * 1024 * 1024
HEARTBEAT_MISSES = 3


class ProtocolError(Exception):
    """The frontend sent something this protocol does not allow."""


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


def _fields(*values: str) -> bytes:
    """``values`` as UTF-8, each preceded by its length (u16 BE): one unambiguous byte string."""
    out = []
    for value in values:
        data = value.encode()
        out.append(struct.pack(">H", len(data)) + data)
    return b"".join(out)


def proof(key: str, nonce: bytes, model_name: str, model_version: str, replica_id: str) -> str:
    """``HMAC-SHA256(key, nonce || model || version || replica id)`` in hex (the fields
    length-prefixed): proves the replica holds ``key`` without sending it."""
    message = nonce + _fields(model_name, model_version, replica_id)
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def read_challenge(payload: bytes) -> bytes:
    """The nonce of a ``CHALLENGE`` payload; :class:`ProtocolError` if it is not one."""
    try:
        body = json.loads(payload)
        nonce = bytes.fromhex(body["nonce"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(f"CHALLENGE is malformed: {exc}") from None
    if body.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"the frontend speaks protocol {body.get('protocol')!r}, this runtime "
            f"{PROTOCOL_VERSION}: deploy with the same clipper-deploy as the frontend's"
        )
    return nonce


def hello_frame(
    model_name: str,
    model_version: str,
    input_type: str,
    replica_id: str,
    key: str | None = None,
    nonce: bytes = b"",
) -> bytes:
    """Return the ``HELLO`` frame that registers this replica, with the proof of ``key`` over
    ``nonce`` (no proof without a key: the frontend will refuse the replica)."""
    return json_frame(
        HELLO,
        {
            "protocol": PROTOCOL_VERSION,
            "model_name": model_name,
            "model_version": model_version,
            "input_type": input_type,
            "replica_id": replica_id,
            "proof": proof(key, nonce, model_name, model_version, replica_id) if key else "",
        },
    )


def decode_batch(payload: bytes, input_type: str) -> tuple[int, Any]:
    """Return ``(batch_id, inputs)`` where ``inputs`` is what the prediction function receives.

    Numeric inputs of equal length become one 2-D array (as Clipper does), unequal lengths a list
    of 1-D arrays; ``bytes`` inputs a list of ``bytes``; ``strings`` inputs a list of ``str``.
    """
    batch_id, encoding = BATCH_HEADER.unpack_from(payload)
    offset = BATCH_HEADER.size
    if encoding == ENC_NUMERIC:
        dtype_code, count = struct.unpack_from(">BI", payload, offset)
        offset += 5
        lengths = struct.unpack_from(f">{count}I", payload, offset)
        offset += 4 * count
        dtype = NUMPY_DTYPES[dtype_code]
        values = np.frombuffer(payload, dtype=dtype, offset=offset).astype(dtype.newbyteorder("="))
        if count and all(n == lengths[0] for n in lengths):
            return batch_id, values.reshape(count, lengths[0])
        bounds = np.cumsum(lengths)[:-1]
        return batch_id, list(np.split(values, bounds))
    if encoding == ENC_BLOBS:
        (count,) = COUNT.unpack_from(payload, offset)
        offset += 4
        lengths = struct.unpack_from(f">{count}I", payload, offset)
        offset += 4 * count
        blobs = []
        for n in lengths:
            blobs.append(payload[offset : offset + n])
            offset += n
        if input_type == "strings":
            return batch_id, [b.decode("utf-8") for b in blobs]
        return batch_id, blobs
    raise ProtocolError(f"unknown batch encoding {encoding}")


def result_frame(
    batch_id: int,
    outputs: list[Any] | None,
    errors: dict[int, str] | None = None,
    error: str | None = None,
) -> bytes:
    """Return the ``RESULT`` frame for a batch: outputs (and per-input errors) or one error."""
    if error is not None:
        body: dict[str, Any] = {"error": error}
    else:
        body = {"outputs": outputs}
        if errors:
            body["errors"] = {str(k): v for k, v in errors.items()}
    return frame(RESULT, BATCH_ID.pack(batch_id) + json.dumps(body, separators=(",", ":")).encode())

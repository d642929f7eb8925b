"""The replica protocol: how a model container talks to the frontend.

A replica (``container/clipper_runtime``) dials the frontend's replica port (default 7000) over
TCP and keeps that one connection open; the frontend never dials a replica, so Docker hosts need
no inbound port. Everything travels as *frames*::

    +----------------------+-----------+------------------------+
    | length: uint32 (BE)  | kind: u8  | payload: length bytes  |
    +----------------------+-----------+------------------------+

``length`` counts the payload only (not the 5-byte header) and is at most ``MAX_FRAME_BYTES``.

Kinds and payloads, in the order a session uses them:

``CHALLENGE`` (frontend -> replica, first frame, sent as soon as the connection is accepted)
    JSON object: ``{"protocol": 2, "nonce": "<64 hex digits>"}``: 32 fresh random bytes.
``HELLO`` (replica -> frontend, its first frame; at most :data:`MAX_HELLO_BYTES`)
    JSON object: ``{"protocol": 2, "model_name": str, "model_version": str,
    "input_type": "doubles"|"floats"|"ints"|"bytes"|"strings", "replica_id": str,
    "proof": "<64 hex digits>"}``. ``proof`` is :func:`proof` of the replica's key over the
    nonce, the model, the version and the replica id: the key itself never travels.
``WELCOME`` (frontend -> replica)
    JSON object: ``{"heartbeat_interval_s": float}``. The replica is registered from here on.
``REJECT`` (frontend -> replica, then the frontend closes)
    JSON object: ``{"error": str, "cause": str}``: an unregistered model version, a wrong or
    missing proof, a replica id already connected, a protocol version mismatch, an input type
    that contradicts the registered model. The replica logs it and retries later.
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

**Replica keys.** The frontend keeps one random secret per registered model version (in its
SQLite state, so it survives a restart; deleted with the version). A replica's key is
:func:`replica_key` of that secret and the replica's own model, version and id, so a key
proves one replica id only: a replica holding the key of ``h1/cd-m-2-0`` cannot pass as
``h2/cd-m-2-1``. The deploy asks the frontend for the keys of the replicas it starts
(``/admin/replica_keys``) and writes each into a 0600 file on the replica's host, bind-mounted
read-only into its container (``CLIPPER_REPLICA_KEY_FILE``). At ``HELLO`` the frontend derives
the expected key, computes the expected proof over the nonce it sent and compares both with
:func:`hmac.compare_digest`.

The runtime keeps its own copy of these constants and codecs in
``container/clipper_runtime/protocol.py`` because it must not import ``clipper_deploy``;
``tests/unit/test_runtime_protocol.py`` checks that the two copies agree byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from clipper_deploy import settings
from clipper_deploy.errors import ClipperDeployError

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
#: Largest frame accepted before a replica has proved itself (a HELLO is a few hundred bytes).
MAX_HELLO_BYTES = 4 * 1024
#: Longest replica id (the deploy's are ``<host>/cd-<model>-<version>-<n>``).
MAX_REPLICA_ID_CHARS = 255
NONCE_BYTES = 32
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


def challenge_frame(nonce: bytes) -> bytes:
    """The ``CHALLENGE`` frame carrying ``nonce``."""
    return json_frame(CHALLENGE, {"protocol": PROTOCOL_VERSION, "nonce": nonce.hex()})


def _fields(*values: str) -> bytes:
    """``values`` as UTF-8, each preceded by its length (u16 BE): one unambiguous byte string."""
    out = []
    for value in values:
        data = value.encode()
        out.append(struct.pack(">H", len(data)) + data)
    return b"".join(out)


def proof(key: str, nonce: bytes, model_name: str, model_version: str, replica_id: str) -> str:
    """``HMAC-SHA256(key, nonce || model || version || replica id)`` in hex (the fields
    length-prefixed): what a replica sends at ``HELLO`` to prove it holds ``key``."""
    message = nonce + _fields(model_name, model_version, replica_id)
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def replica_key(secret: str, model_name: str, model_version: str, replica_id: str) -> str:
    """The key of one replica: ``HMAC-SHA256(version secret, "replica-key" || model ||
    version || replica id)`` in hex. Only the frontend holds ``secret``."""
    message = b"clipper-deploy replica key\0" + _fields(model_name, model_version, replica_id)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def proof_matches(
    secret: str, nonce: bytes, model_name: str, model_version: str, replica_id: str, given: str
) -> bool:
    """True if ``given`` is the proof of ``replica_id``'s key over ``nonce`` (constant time)."""
    key = replica_key(secret, model_name, model_version, replica_id)
    expected = proof(key, nonce, model_name, model_version, replica_id)
    return hmac.compare_digest(expected.encode(), given.encode())


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
            f"protocol version {str(hello.get('protocol'))[:20]!r} is not supported; this "
            f"frontend speaks version {PROTOCOL_VERSION} (replicas prove a key at HELLO): "
            "deploy the model again with this clipper-deploy"
        )
    fields = {}
    for key in ("model_name", "model_version", "input_type", "replica_id"):
        value = hello.get(key)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"HELLO needs a non-empty string {key!r}")
        if len(value) > MAX_REPLICA_ID_CHARS or not value.isprintable():
            raise ProtocolError(
                f"HELLO field {key!r} must be printable and at most {MAX_REPLICA_ID_CHARS} "
                "characters"
            )
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ProtocolError(f"HELLO field {key!r} is not valid Unicode") from None
        fields[key] = value
    given = hello.get("proof", "")
    fields["proof"] = given if isinstance(given, str) and len(given) <= 128 else ""
    if fields["input_type"] not in INPUT_TYPES:
        raise ProtocolError(
            f"input type {fields['input_type']!r} is not one of {', '.join(INPUT_TYPES)}"
        )
    return fields

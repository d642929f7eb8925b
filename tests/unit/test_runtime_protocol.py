"""The runtime's copy of the protocol constants must equal the frontend's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clipper_deploy.frontend import protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "container"))
from clipper_runtime import protocol as rt_protocol

SHARED = [
    "PROTOCOL_VERSION",
    "HELLO",
    "WELCOME",
    "REJECT",
    "HEARTBEAT",
    "BATCH",
    "RESULT",
    "CHALLENGE",
    "ENC_NUMERIC",
    "ENC_BLOBS",
    "DTYPE_FLOAT64",
    "DTYPE_FLOAT32",
    "DTYPE_INT64",
    "INPUT_TYPES",
    "MAX_FRAME_BYTES",
    "HEARTBEAT_MISSES",
]


@pytest.mark.parametrize("name", SHARED)
def test_constant_agrees(name):
    assert getattr(rt_protocol, name) == getattr(protocol, name)


@pytest.mark.parametrize("name", ["HEADER", "BATCH_HEADER", "BATCH_ID", "COUNT"])
def test_struct_layout_agrees(name):
    assert getattr(rt_protocol, name).format == getattr(protocol, name).format


def test_frames_agree():
    assert rt_protocol.frame(4, b"x") == protocol.frame(4, b"x")


def test_runtime_never_imports_the_client_side():
    root = Path(__file__).resolve().parents[2] / "container" / "clipper_runtime"
    for path in root.glob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")):
                assert "clipper_deploy" not in stripped, f"{path}: {stripped}"


def test_proofs_agree():
    args = ("k" * 64, b"\x01" * 32, "m", "1", "h1/cd-m-1-0")
    assert rt_protocol.proof(*args) == protocol.proof(*args)

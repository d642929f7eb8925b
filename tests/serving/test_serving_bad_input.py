"""Every kind of bad query gets a 4xx in Clipper's error JSON, and the frontend keeps serving."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import urllib.request

import pytest
from serving_helpers import post

GOOD = {"input": [0.5, -1.0, 0.25, 2.0]}
MAX_BODY = 4096


@pytest.fixture(scope="module")
def served(tmp_path_factory, seed_model_dir):
    """One frontend (small body limit) with a doubles, an ints and a bytes app, and a replica."""
    from serving_helpers import FrontendProcess, seed_replica

    fe = FrontendProcess(
        tmp_path_factory.mktemp("bad-input") / "fe", ["--max-body-bytes", str(MAX_BODY)]
    ).start_fresh()
    fe.setup_app()
    fe.setup_app(app="ints-app", model="ints-model", input_type="ints")
    fe.setup_app(app="bytes-app", model="bytes-model", input_type="bytes")
    rt = seed_replica(fe, seed_model_dir, "the-replica")
    try:
        rt.wait_serving()
        yield fe
    finally:
        rt.stop()
        fe.stop()


CASES = [
    ("not JSON", "example", b"{input: [1, 2", 400, "not valid JSON"),
    ("empty body", "example", b"", 400, "not valid JSON"),
    ("JSON but not an object", "example", b"[1, 2, 3, 4]", 400, "must be a JSON object"),
    ("missing input", "example", {"inputs": [1, 2, 3, 4]}, 400, "must have an 'input' field"),
    ("string for doubles", "example", {"input": "1,2,3,4"}, 400, "got a string"),
    ("boolean element", "example", {"input": [1.0, True, 2.0, 3.0]}, 400, "takes numbers"),
    ("null element", "example", {"input": [1.0, None, 2.0, 3.0]}, 400, "takes numbers"),
    ("empty array", "example", {"input": []}, 400, "empty array"),
    ("NaN literal", "example", b'{"input": [NaN, 1, 2, 3]}', 400, "not valid JSON"),
    ("ragged nested input", "example", {"input": [[1.0, 2.0], [3.0]]}, 400, "ragged"),
    (
        "ragged input_batch",
        "example",
        {"input_batch": [[1.0, 2.0, 3.0, 4.0], [1.0]]},
        400,
        "ragged",
    ),
    ("empty input_batch", "example", {"input_batch": []}, 400, "non-empty"),
    ("float for ints", "ints-app", {"input": [1, 2.5]}, 400, "integers only"),
    ("int beyond 64 bits", "ints-app", {"input": [2**70]}, 400, "out of range"),
    ("bad base64", "bytes-app", {"input": "not base64!!"}, 400, "not valid base64"),
    ("number for bytes", "bytes-app", {"input": 12}, 400, "base64-encoded string"),
    ("unknown app", "no-such-app", GOOD, 404, "no application named 'no-such-app'"),
    ("oversized body", "example", {"input": [1.0] * 2000}, 413, f"limit of {MAX_BODY} bytes"),
]


@pytest.mark.parametrize(
    ("case", "app", "body", "status", "cause"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_query_gets_a_4xx_with_error_and_cause(served, case, app, body, status, cause):
    got, doc = post(f"{served.query_url}/{app}/predict", body)
    assert got == status
    assert set(doc) == {"error", "cause"}
    assert cause in doc["cause"]
    assert post(f"{served.query_url}/example/predict", GOOD)[1]["default"] is False


def test_oversized_chunked_body_gets_413(served):
    chunk = json.dumps({"input": [1.0] * 3000}).encode()

    def chunks():
        yield chunk[: len(chunk) // 2]
        yield chunk[len(chunk) // 2 :]

    req = urllib.request.Request(
        f"{served.query_url}/example/predict", data=chunks(), method="POST"
    )
    req.add_header("Transfer-Encoding", "chunked")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 413
    assert json.loads(info.value.read())["error"] == "Request too large"


def test_unknown_path_gets_a_json_404(served):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{served.query_url}/example/nothing", timeout=10)
    assert info.value.code == 404
    assert set(json.loads(info.value.read())) == {"error", "cause"}


def test_garbage_on_the_replica_port_does_not_hurt(served):
    with socket.create_connection(("127.0.0.1", served.replica_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n" + b"\xff" * 64)
        s.settimeout(5)
        while s.recv(4096):
            pass
    assert post(f"{served.query_url}/example/predict", GOOD)[1]["default"] is False


def test_good_bytes_query_still_works(served):
    status, doc = post(
        f"{served.query_url}/bytes-app/predict", {"input": base64.b64encode(b"x").decode()}
    )
    assert status == 200 and doc["default"] is True  # no bytes replica: default, not an error


def test_a_huge_first_frame_on_the_replica_port_is_refused_unread(served):
    import struct

    with socket.create_connection(("127.0.0.1", served.replica_port), timeout=5) as s:
        s.sendall(struct.pack(">IB", 200 * 1024 * 1024, 1) + b"{" * 1000)
        s.settimeout(5)
        received = b""
        with contextlib.suppress(ConnectionResetError):  # a reset: closed with data unread
            while chunk := s.recv(4096):  # CHALLENGE, REJECT, then closed at once
                received += chunk
    assert b"before registration at most 4096" in received
    assert post(f"{served.query_url}/example/predict", GOOD)[1]["default"] is False

"""The replica protocol's framing and codecs (frontend side, checked against the runtime's)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from clipper_deploy.frontend import protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "container"))
from clipper_runtime import protocol as rt_protocol


class TestFrames:
    def test_header_is_length_then_kind(self):
        assert protocol.frame(protocol.HEARTBEAT) == b"\x00\x00\x00\x00\x04"
        assert protocol.frame(7, b"abc") == b"\x00\x00\x00\x03\x07abc"

    def test_parse_header_refuses_oversized_frames(self):
        with pytest.raises(protocol.ProtocolError, match="exceeds"):
            protocol.parse_header(b"\xff\xff\xff\xff\x05")

    def test_json_frame_is_compact(self):
        assert protocol.json_frame(2, {"a": 1})[5:] == b'{"a":1}'


class TestHello:
    def good(self, **over):
        hello = {
            "protocol": 2,
            "model_name": "m",
            "model_version": "1",
            "input_type": "doubles",
            "replica_id": "r",
        }
        hello.update(over)
        return json.dumps(hello).encode()

    def test_accepts_the_runtimes_hello(self):
        frame = rt_protocol.hello_frame("m", "1", "doubles", "r")
        assert protocol.decode_hello(frame[5:])["replica_id"] == "r"

    @pytest.mark.parametrize(
        ("over", "message"),
        [
            ({"protocol": 1}, "protocol version '1'"),
            ({"replica_id": "a\nb"}, "printable"),
            ({"replica_id": "r" * 256}, "at most 255"),
            ({"model_name": ""}, "model_name"),
            ({"replica_id": 5}, "replica_id"),
            ({"input_type": "tensors"}, "input type"),
        ],
    )
    def test_refuses_a_bad_hello(self, over, message):
        with pytest.raises(protocol.ProtocolError, match=message):
            protocol.decode_hello(self.good(**over))

    def test_refuses_non_json(self):
        with pytest.raises(protocol.ProtocolError, match="not JSON"):
            protocol.decode_hello(b"\xff")


class TestBatches:
    @pytest.mark.parametrize(
        ("input_type", "dtype"), [("doubles", "float64"), ("floats", "float32"), ("ints", "int64")]
    )
    def test_equal_length_numeric_inputs_arrive_as_a_2d_array(self, input_type, dtype):
        data = protocol.encode_numeric_batch(3, input_type, [[1, 2, 3], [4, 5, 6]])
        batch_id, inputs = rt_protocol.decode_batch(data[5:], input_type)
        assert batch_id == 3
        assert inputs.dtype == np.dtype(dtype) and inputs.shape == (2, 3)
        assert inputs.tolist() == [[1, 2, 3], [4, 5, 6]]

    def test_unequal_lengths_arrive_as_a_list_of_arrays(self):
        data = protocol.encode_numeric_batch(1, "doubles", [[1.5], [2.5, 3.5]])
        _, inputs = rt_protocol.decode_batch(data[5:], "doubles")
        assert [x.tolist() for x in inputs] == [[1.5], [2.5, 3.5]]

    def test_strings_and_bytes_travel_as_blobs(self):
        data = protocol.encode_blob_batch(4, ["héllo".encode(), b""])
        assert rt_protocol.decode_batch(data[5:], "strings") == (4, ["héllo", ""])
        data = protocol.encode_blob_batch(5, [b"\x00\x01", b"z"])
        assert rt_protocol.decode_batch(data[5:], "bytes") == (5, [b"\x00\x01", b"z"])


class TestResults:
    def test_outputs_and_per_input_errors(self):
        data = rt_protocol.result_frame(9, [1, None], {1: "bad"})
        result = protocol.decode_result(data[5:])
        assert result.batch_id == 9
        assert result.outcome(0) == (True, 1)
        assert result.outcome(1) == (False, "bad")

    def test_one_error_for_the_batch(self):
        result = protocol.decode_result(rt_protocol.result_frame(2, None, error="boom")[5:])
        assert result.outcome(0) == (False, "boom") and result.outcome(5) == (False, "boom")

    def test_missing_outputs_is_a_protocol_error(self):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_result(b"\x00\x00\x00\x01{}")

"""Checking query bodies against input types (pure functions)."""

from __future__ import annotations

import base64
import json

import pytest

from clipper_deploy.frontend.errors import ClipperError
from clipper_deploy.frontend.validation import parse_query


def q(input_type, doc):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_query(input_type, body)


class TestGoodQueries:
    def test_one_input(self):
        assert q("doubles", {"input": [1, 2.5]}) == ([[1, 2.5]], False)

    def test_a_batch(self):
        assert q("ints", {"input_batch": [[1], [2]]}) == ([[1], [2]], True)

    def test_strings_are_sent_utf8(self):
        assert q("strings", {"input": "é"}) == (["é".encode()], False)

    def test_bytes_are_base64_decoded(self):
        assert q("bytes", {"input": base64.b64encode(b"\x00z").decode()}) == ([b"\x00z"], False)


@pytest.mark.parametrize(
    ("input_type", "doc", "cause"),
    [
        ("doubles", b"{", "not valid JSON"),
        ("doubles", b'{"input": [Infinity]}', "not valid JSON"),
        ("doubles", [1, 2], "must be a JSON object"),
        ("doubles", {"x": 1}, "'input' field"),
        ("doubles", {"input": 1.0}, "got a number"),
        ("doubles", {"input": []}, "empty array"),
        ("doubles", {"input": [1, "2"]}, "holds a string"),
        ("doubles", {"input": [False]}, "holds a boolean"),
        ("doubles", {"input": [[1, 2], [3]]}, "ragged"),
        ("doubles", {"input": [[1, 2], [3, 4]]}, "nested"),
        ("doubles", {"input_batch": [[1, 2], [3]]}, "ragged"),
        ("doubles", {"input_batch": "x"}, "non-empty JSON array"),
        ("floats", {"input": [1e39]}, "out of range"),
        ("ints", {"input": [1.0]}, "integers only"),
        ("ints", {"input": [2**64]}, "out of range"),
        ("strings", {"input": 5}, "JSON string"),
        ("bytes", {"input": "%%%"}, "base64"),
        ("bytes", {"input_batch": ["aGk=", 3]}, "'input_batch'[1]"),
    ],
)
def test_bad_query_is_a_400_saying_why(input_type, doc, cause):
    with pytest.raises(ClipperError) as info:
        q(input_type, doc)
    assert info.value.status == 400
    assert info.value.error == "Json error"
    assert cause in info.value.cause
    assert set(json.loads(info.value.body())) == {"error", "cause"}


class TestValuesThatCannotBePacked:
    """Every value that passes validation must pack into a BATCH frame."""

    @pytest.mark.parametrize(
        ("input_type", "body", "cause"),
        [
            ("doubles", b'{"input": [' + b"9" * 400 + b"]}", "integer of 400 digits"),
            ("doubles", b'{"input": [1e400]}', "infinity"),
            ("doubles", b'{"input": [-1e400]}', "infinity"),
            ("floats", b'{"input": [' + b"9" * 50 + b"]}", "integer of 50 digits"),
            ("floats", b'{"input": [3.5e38]}', "floats (32-bit)"),
            ("ints", b'{"input": [-9223372036854775809]}', "out of range"),
            ("strings", b'{"input": "a\\ud800"}', "lone surrogate"),
            ("strings", b'{"input_batch": ["a", "\\udfff"]}', "'input_batch'[1]"),
            ("doubles", b"[" * 100_000, "nested too deeply"),
            ("doubles", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
        ],
    )
    def test_is_a_400(self, input_type, body, cause):
        with pytest.raises(ClipperError) as info:
            parse_query(input_type, body)
        assert info.value.status == 400
        assert cause in info.value.cause

    @pytest.mark.parametrize(
        ("input_type", "values"),
        [
            ("doubles", [1.7976931348623157e308, -1.7976931348623157e308, 2**1000, 0.0]),
            ("floats", [3.4028234663852886e38, -(2**127), 1e-50]),
            ("ints", [2**63 - 1, -(2**63)]),
        ],
    )
    def test_the_extremes_that_pass_do_pack(self, input_type, values):
        from clipper_deploy.frontend.protocol import encode_numeric_batch

        inputs, _ = q(input_type, {"input": values})
        assert encode_numeric_batch(1, input_type, inputs)

    def test_a_surrogate_pair_is_valid_text(self):
        assert parse_query("strings", b'{"input": "\\ud83d\\ude00"}') == (
            ["\U0001f600".encode()],
            False,
        )


class TestLimits:
    def test_input_batch_over_the_limit(self):
        with pytest.raises(ClipperError, match="at most 3 per request"):
            parse_query("ints", b'{"input_batch": [[1], [2], [3], [4]]}', max_batch_inputs=3)

    def test_input_batch_at_the_limit(self):
        assert len(parse_query("ints", b'{"input_batch": [[1], [2], [3]]}', 3)[0]) == 3

    def test_check_depth(self):
        from clipper_deploy.frontend.validation import check_depth

        check_depth({"a": [[1]]}, max_depth=3)
        with pytest.raises(ClipperError, match="more than 3 levels"):
            check_depth({"a": [[[1]]]}, max_depth=3)

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

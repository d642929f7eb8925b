"""Normalizing what the prediction function returned (runtime side)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "container"))
from clipper_runtime.outputs import OutputError, normalize


class TestNormalize:
    def test_a_numpy_array_becomes_a_list(self):
        assert normalize(np.array([1, 0, 1]), 3) == ([1, 0, 1], {})

    def test_numpy_scalars_and_rows_become_plain_values(self):
        outputs, errors = normalize([np.float32(0.5), np.array([1, 2]), "x", {"a": 1}], 4)
        assert outputs == [0.5, [1, 2], "x", {"a": 1}] and errors == {}

    def test_an_unserializable_output_fails_only_itself(self):
        outputs, errors = normalize([1, object(), float("nan")], 3)
        assert outputs[0] == 1 and outputs[1] is None and outputs[2] is None
        assert set(errors) == {1, 2} and "not JSON-serializable" in errors[1]

    @pytest.mark.parametrize(
        ("result", "message"),
        [
            ([1, 2], "2 outputs for 3 inputs"),
            (np.float64(1.0), "returned a float64"),
            (np.array(1.0), "scalar"),
            ({"a": 1}, "returned a dict"),
        ],
    )
    def test_a_wrong_shape_fails_the_batch(self, result, message):
        with pytest.raises(OutputError, match=message):
            normalize(result, 3)

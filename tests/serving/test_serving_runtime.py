"""The model-container runtime as a real process: its logs, its failures, its input types."""

from __future__ import annotations

import base64
import importlib
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
from serving_helpers import SEED_LINES, post, wait_for


class TestStartup:
    def test_logs_the_seed_stages_exactly(self, frontend, runtime_factory):
        frontend.setup_app()
        rt = runtime_factory(frontend)
        address = f"127.0.0.1:{frontend.replica_port}"
        expected = [line.format(address=address, input_type="doubles") for line in SEED_LINES]
        assert rt.lines[:4] == expected

    def test_keeps_dialing_until_the_frontend_appears(
        self, frontend_factory, runtime_factory, tmp_path
    ):
        from serving_helpers import FrontendProcess, keyed_env

        fe = FrontendProcess(tmp_path / "late").start_fresh()  # registered, key made, stopped
        fe.setup_app()
        env = keyed_env(
            fe,
            {
                "CLIPPER_MODEL_NAME": "example_model",
                "CLIPPER_MODEL_VERSION": "1",
                "CLIPPER_REPLICA_ID": "late-1",
            },
        )
        fe.stop()
        rt = runtime_factory(
            port=fe.replica_port,
            replica_id="late-1",
            wait=False,
            extra_env={"CLIPPER_REPLICA_KEY_FILE": env["CLIPPER_REPLICA_KEY_FILE"]},
        )
        wait_for(
            lambda: any("Could not reach Clipper" in x for x in rt.lines),
            10,
            "a failed dial to be logged",
        )
        try:
            fe.start()
            rt.wait_serving(timeout=10)
            assert rt.proc.poll() is None
        finally:
            fe.stop()


class TestLoadFailure:
    def test_missing_module_names_it_and_exits_nonzero(self, tmp_path, runtime_factory):
        module_dir = tmp_path / "mods"
        module_dir.mkdir()
        (module_dir / "private_dep_for_test.py").write_text(
            "def predict(inputs):\n    return [0 for _ in inputs]\n"
        )
        sys.path.insert(0, str(module_dir))
        try:
            mod = importlib.import_module("private_dep_for_test")
            model = tmp_path / "model"
            model.mkdir()
            with open(model / "func.pkl", "wb") as f:
                cloudpickle.dump(mod.predict, f)  # by reference: needs the module to load
        finally:
            sys.path.remove(str(module_dir))
            sys.modules.pop("private_dep_for_test", None)
        rt = runtime_factory(model_dir=model, port=1, wait=False)
        assert rt.wait_exit() == 1
        assert "Traceback (most recent call last)" in rt.output
        assert "ModuleNotFoundError: No module named 'private_dep_for_test'" in rt.output
        assert "module 'private_dep_for_test'" in rt.output
        assert "environment you deploy from" in rt.output
        assert not any(x.startswith("Serving predictions") for x in rt.lines)

    def test_missing_pickle_exits_nonzero_with_a_hint(self, tmp_path, runtime_factory):
        rt = runtime_factory(model_dir=tmp_path / "empty", port=1, wait=False)
        assert rt.wait_exit() == 1
        assert "FileNotFoundError" in rt.output
        assert "Check CLIPPER_MODEL_PATH" in rt.output

    def test_bad_configuration_exits_nonzero(self, runtime_factory, seed_model_dir):
        rt = runtime_factory(port=1, wait=False, extra_env={"CLIPPER_INPUT_TYPE": "tensors"})
        assert rt.wait_exit() == 2
        assert "CLIPPER_INPUT_TYPE must be one of" in rt.output


def _raise_on_negative(inputs):
    if np.any(np.asarray(inputs)[:, 0] < 0):
        raise ValueError("negative first feature")
    return [float(x[0]) for x in inputs]


def _wrong_count(inputs):
    return [1.0] * (len(inputs) + 1)


def _unserializable(inputs):
    return [object() if x[0] < 0 else float(x[0]) for x in inputs]


class TestFunctionFailures:
    @pytest.fixture
    def serve(self, frontend, runtime_factory, model_dir):
        def start(func):
            frontend.setup_app()
            runtime_factory(frontend, model_dir=model_dir(func))
            return f"{frontend.query_url}/example/predict"

        return start

    def test_an_exception_fails_the_query_and_the_container_keeps_serving(self, serve):
        url = serve(_raise_on_negative)
        status, doc = post(url, {"input": [-1.0, 0, 0, 0]})
        assert status == 200
        assert doc["default"] is True
        assert "ValueError: negative first feature" in doc["default_explanation"]
        assert post(url, {"input": [2.0, 0, 0, 0]})[1] == {
            "query_id": doc["query_id"] + 1,
            "output": 2.0,
            "default": False,
        }

    def test_one_bad_input_in_a_batch_fails_only_itself(self, serve):
        url = serve(_raise_on_negative)
        _, doc = post(url, {"input_batch": [[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [3.0, 0, 0, 0]]})
        preds = doc["batch_predictions"]
        assert [p["default"] for p in preds] == [False, True, False]
        assert [preds[0]["output"], preds[2]["output"]] == [1.0, 3.0]

    def test_a_wrong_output_count_fails_the_queries(self, serve):
        url = serve(_wrong_count)
        _, doc = post(url, {"input": [1.0, 0, 0, 0]})
        assert doc["default"] is True
        assert "2 outputs for 1 inputs" in doc["default_explanation"]

    def test_an_unserializable_output_fails_that_query_only(self, serve):
        url = serve(_unserializable)
        _, doc = post(url, {"input_batch": [[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]})
        first, second = doc["batch_predictions"]
        assert first["output"] == 1.0 and first["default"] is False
        assert second["default"] is True
        assert "not JSON-serializable" in second["default_explanation"]


def _describe(inputs):
    if isinstance(inputs, np.ndarray):
        return [f"{inputs.dtype.name}{list(inputs.shape)}:{row.tolist()}" for row in inputs]
    return [f"{type(x).__name__}:{x!r}" for x in inputs]


@pytest.mark.parametrize(
    ("input_type", "value", "expected"),
    [
        ("doubles", [1.5, 2], "float64[1, 2]:[1.5, 2.0]"),
        ("floats", [0.5, 1], "float32[1, 2]:[0.5, 1.0]"),
        ("ints", [7, -3, 2**40], "int64[1, 3]:[7, -3, 1099511627776]"),
        ("strings", "héllo", "str:'héllo'"),
        ("bytes", base64.b64encode(b"\x00\xffab").decode(), "bytes:b'\\x00\\xffab'"),
    ],
)
def test_each_input_type_reaches_the_function_as_clipper_hands_it(
    input_type, value, expected, frontend, runtime_factory, model_dir
):
    frontend.setup_app(input_type=input_type, default_output="none")
    runtime_factory(frontend, model_dir=model_dir(_describe), input_type=input_type)
    status, doc = post(f"{frontend.query_url}/example/predict", {"input": value})
    assert (status, doc["output"], doc["default"]) == (200, expected, False)


def test_numeric_inputs_of_unequal_length_arrive_as_a_list_of_arrays(tmp_path: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "container"))
    try:
        from clipper_runtime import protocol as rt_protocol

        from clipper_deploy.frontend import protocol

        data = protocol.encode_numeric_batch(9, "doubles", [[1.0, 2.0], [3.0]])
        batch_id, inputs = rt_protocol.decode_batch(data[5:], "doubles")
        assert batch_id == 9
        assert [x.tolist() for x in inputs] == [[1.0, 2.0], [3.0]]
    finally:
        sys.path.pop(0)

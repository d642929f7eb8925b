"""Loading func.pkl and reading CLIPPER_* variables (runtime side)."""

from __future__ import annotations

import sys
from pathlib import Path

import cloudpickle
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "container"))
from clipper_runtime.config import ConfigError, RuntimeConfig
from clipper_runtime.loader import LoadError, load_function

ENV = {"CLIPPER_MODEL_NAME": "m", "CLIPPER_MODEL_VERSION": "3"}


class TestConfig:
    def test_defaults(self):
        c = RuntimeConfig.from_env(ENV)
        assert (c.clipper_ip, c.clipper_port, c.input_type, c.model_path) == (
            "127.0.0.1",
            7000,
            "doubles",
            "/model",
        )
        assert c.replica_id and c.address == "127.0.0.1:7000"

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({}, "CLIPPER_MODEL_NAME and CLIPPER_MODEL_VERSION"),
            ({**ENV, "CLIPPER_PORT": "x"}, "port number"),
            ({**ENV, "CLIPPER_PORT": "70000"}, "between 1 and 65535"),
            ({**ENV, "CLIPPER_INPUT_TYPE": "images"}, "must be one of"),
        ],
    )
    def test_bad_values_say_which_variable(self, env, message):
        with pytest.raises(ConfigError, match=message):
            RuntimeConfig.from_env(env)


class TestLoader:
    def test_loads_a_pickled_function(self, tmp_path):
        with open(tmp_path / "func.pkl", "wb") as f:
            cloudpickle.dump(lambda xs: [len(xs)], f)
        assert load_function(str(tmp_path))([1, 2]) == [2]

    def test_a_non_callable_is_a_load_error(self, tmp_path):
        with open(tmp_path / "func.pkl", "wb") as f:
            cloudpickle.dump({"not": "callable"}, f)
        with pytest.raises(LoadError, match="must hold a callable"):
            load_function(str(tmp_path))

    def test_a_corrupt_pickle_is_a_load_error_with_traceback(self, tmp_path):
        (tmp_path / "func.pkl").write_bytes(b"garbage")
        with pytest.raises(LoadError) as info:
            load_function(str(tmp_path))
        assert "Traceback" in str(info.value) and "Hint:" in str(info.value)


class TestPayloadCheck:
    """``func.pkl`` must be the payload ``model.json`` was written for, before it is unpickled."""

    @staticmethod
    def bundle(tmp_path, payload: bytes, recorded: bytes) -> str:
        import hashlib
        import json

        (tmp_path / "func.pkl").write_bytes(payload)
        (tmp_path / "model.json").write_text(
            json.dumps({"payload_sha256": hashlib.sha256(recorded).hexdigest()})
        )
        return str(tmp_path)

    def test_the_recorded_payload_loads(self, tmp_path):
        payload = cloudpickle.dumps(lambda xs: [len(xs)])
        assert load_function(self.bundle(tmp_path, payload, payload))([1, 2, 3]) == [3]

    def test_an_altered_payload_is_refused_without_being_unpickled(self, tmp_path):
        marker = tmp_path / "unpickled"

        class Tripwire:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        good = cloudpickle.dumps(lambda xs: xs)
        with pytest.raises(LoadError) as info:
            load_function(self.bundle(tmp_path, cloudpickle.dumps(Tripwire()), good))
        assert "func.pkl has sha256" in str(info.value)
        assert "changed or corrupted after it was packaged" in str(info.value)
        assert not marker.exists()

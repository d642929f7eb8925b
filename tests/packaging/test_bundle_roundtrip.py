"""The clean-subprocess check: fresh and warm runs agree, user modules travel by value."""

from __future__ import annotations

import importlib
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clipper_deploy.packaging import RoundTripError, RoundTripper, serialize_function
from clipper_deploy.packaging import closure as closure_module


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A module next to the "notebook": importable here, never in the clean Python."""
    (tmp_path / "user_helpers_rt.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def scale(xs):
                return np.asarray(xs, dtype=float) * 2.0
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("user_helpers_rt")
    yield module
    sys.modules.pop("user_helpers_rt", None)


@pytest.fixture
def pkl(tmp_path):
    """Where a test's pickle is streamed (the round trip reads it in place)."""
    return tmp_path / "func.pkl"


@pytest.fixture
def tripper():
    rt = RoundTripper()
    yield rt
    rt.close()


class TestByValueModules:
    def test_a_user_module_is_shipped_with_the_function(self, user_module, tripper, pkl) -> None:
        def predict(xs):
            return user_module.scale(xs).tolist()

        payload = serialize_function(predict, pkl)
        assert "user_helpers_rt" in payload.by_value
        result = tripper.run(
            payload.path,
            label="predict",
            sample=[1.0, 2.0],
            has_sample=True,
            by_value=payload.by_value,
        )
        assert result.output == [2.0, 4.0]
        assert "numpy" in result.refs

    def test_a_module_pickled_by_reference_but_not_installed_fails_to_load(
        self, user_module, tripper, tmp_path, monkeypatch, pkl
    ) -> None:
        roots = (*closure_module.installed_roots(), str(tmp_path) + "/")
        monkeypatch.setattr(closure_module, "installed_roots", lambda: roots)
        payload = serialize_function(user_module.scale, pkl)
        with pytest.raises(RoundTripError) as info:
            tripper.run(payload.path, label="scale")
        assert info.value.stage == "load"
        assert "'user_helpers_rt' is not installed here" in str(info.value)


class TestWarmWorker:
    def test_gives_the_same_answer_as_a_fresh_interpreter(self, user_module, tripper, pkl) -> None:
        def predict(xs):
            import json  # noqa: F401  (an import seen while running the sample)

            return user_module.scale(xs).tolist()

        payload = serialize_function(predict, pkl)
        run = lambda: tripper.run(  # noqa: E731
            payload.path,
            label="predict",
            sample=[3.0],
            has_sample=True,
            by_value=payload.by_value,
        )
        fresh = run()
        deadline = time.monotonic() + 60
        warm = run()
        while not warm.warm and time.monotonic() < deadline:
            warm = run()
        assert not fresh.warm and warm.warm
        assert (warm.refs, warm.imports, warm.output) == (fresh.refs, fresh.imports, fresh.output)
        assert "json" in warm.imports

    def test_a_slow_sample_times_out(self, tripper, pkl) -> None:
        def predict(xs):
            time.sleep(30)
            return xs

        payload = serialize_function(predict, pkl)
        started = time.monotonic()
        with pytest.raises(RoundTripError, match="did not finish within"):
            tripper.run(payload.path, label="predict", sample=[1], has_sample=True, timeout=1.5)
        assert time.monotonic() - started < 15

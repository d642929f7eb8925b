"""Bad input gives a clear error, and nothing is written to the bundles directory."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from packaging_helpers import listing

from clipper_deploy.packaging import (
    BundleWriteError,
    InvalidModelError,
    NotCallableError,
    PythonVersionMismatchError,
    RecordingPrinter,
    RoundTripError,
    UnpicklableClosureError,
    build_bundle,
)
from clipper_deploy.packaging import bundle as bundle_module


@pytest.fixture
def build(small_env, session_cache, bundles_dir):
    """``build_bundle`` with the test's small environment and directories."""

    def run(func, name="err-model", version=1, **kwargs):
        kwargs.setdefault("printer", RecordingPrinter())
        return build_bundle(
            func,
            name,
            version,
            "doubles",
            environment=small_env,
            cache_dir=session_cache,
            bundles_dir=bundles_dir,
            **kwargs,
        )

    return run


class _Holder:
    def __init__(self) -> None:
        self.lock = threading.Lock()


HOLDER = _Holder()


def _uses_lock(xs):
    with HOLDER.lock:
        return xs


class TestUnpicklableClosure:
    def test_a_lock_is_named_with_its_path(self, build, bundles_dir) -> None:
        with pytest.raises(UnpicklableClosureError) as info:
            build(_uses_lock)
        assert info.value.where == "_uses_lock -> global 'HOLDER'.lock"
        assert "_thread.lock" in str(info.value)
        assert "inside the function" in str(info.value)
        assert listing(bundles_dir) == []

    def test_a_socket_in_the_closure(self, build) -> None:
        sock = socket.socket()
        try:

            def predict(xs):
                return sock.fileno() and xs

            with pytest.raises(UnpicklableClosureError) as info:
                build(predict)
        finally:
            sock.close()
        assert "closure variable 'sock'" in info.value.where
        assert info.value.type_name == "socket.socket"

    def test_a_generator_in_a_default_argument(self, build) -> None:
        numbers = (i for i in range(3))

        def predict(xs, source=numbers):
            return xs

        with pytest.raises(UnpicklableClosureError) as info:
            build(predict)
        assert info.value.type_name == "generator"
        assert "default argument 0" in info.value.where

    def test_a_file_open_for_writing(self, build, tmp_path: Path) -> None:
        with open(tmp_path / "log.txt", "w") as log:

            def predict(xs):
                log.write("called\n")
                return xs

            with pytest.raises(UnpicklableClosureError) as info:
                build(predict)
        assert "closure variable 'log'" in info.value.where


class TestArguments:
    def test_not_callable(self, build, bundles_dir) -> None:
        with pytest.raises(NotCallableError, match="Pass the function itself"):
            build([1, 2, 3])
        assert listing(bundles_dir) == []

    @pytest.mark.parametrize("name", ["Example_Model", "-model", "a" * 64, "", "model."])
    def test_invalid_name(self, build, bundles_dir, name) -> None:
        with pytest.raises(InvalidModelError, match="Model names and versions are at most 63"):
            build(lambda xs: xs, name=name)
        assert listing(bundles_dir) == []

    @pytest.mark.parametrize("version", ["V1.0", "v1..0", -1, None, True])
    def test_invalid_version(self, build, version) -> None:
        with pytest.raises(InvalidModelError):
            build(lambda xs: xs, version=version)

    def test_invalid_input_type(self, small_env, tmp_path) -> None:
        with pytest.raises(InvalidModelError, match="doubles, floats, ints, bytes, strings"):
            build_bundle(
                lambda xs: xs, "m", 1, "images", environment=small_env, bundles_dir=tmp_path
            )


class TestPythonMismatch:
    def test_is_raised_before_anything_is_written(self, build, bundles_dir, tmp_path) -> None:
        with pytest.raises(PythonVersionMismatchError) as info:
            build(lambda xs: xs, target_python="3.12")
        assert info.value.client == "3.11" and info.value.target == "3.12"
        assert "3.11" in str(info.value) and "3.12" in str(info.value)
        assert listing(bundles_dir) == []


class TestRoundTrip:
    def test_a_sample_input_that_fails_is_reported_with_its_traceback(self, build) -> None:
        def predict(xs):
            return [1 / x for x in xs]

        with pytest.raises(RoundTripError) as info:
            build(predict, sample_input=[0.0])
        assert info.value.stage == "sample"
        assert "ZeroDivisionError" in str(info.value)


class TestDiskFull:
    def test_a_full_disk_leaves_no_partial_bundle(self, build, bundles_dir, monkeypatch) -> None:
        real_write = bundle_module._write_bytes

        def write_to_full_device(dest: Path, data: bytes, mode: int) -> None:
            if dest.name == "model.json":  # the kernel answers ENOSPC for every write to /dev/full
                with open("/dev/full", "wb") as full:
                    full.write(data)
                    full.flush()
            real_write(dest, data, mode)

        monkeypatch.setattr(bundle_module, "_write_bytes", write_to_full_device)
        with pytest.raises(BundleWriteError, match="No space left on device") as info:
            build(lambda xs: xs)
        assert "bundles_dir" in str(info.value)
        assert listing(bundles_dir) == []

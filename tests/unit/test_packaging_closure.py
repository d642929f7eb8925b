"""Closure serialization: which modules go by value, and naming what cannot be pickled."""

from __future__ import annotations

import functools
import threading
import types
from pathlib import Path

import cloudpickle
import pytest

from clipper_deploy.packaging.closure import (
    by_value_modules,
    function_label,
    locate_unpicklable,
    serialize_function,
)
from clipper_deploy.packaging.errors import UnpicklableClosureError


def _module(name: str, file: str | None) -> types.ModuleType:
    module = types.ModuleType(name)
    if file is not None:
        module.__file__ = file
    return module


class TestByValueModules:
    ROOTS = ("/usr/lib/python3.11/", "/venv/lib/python3.11/site-packages/")

    def pick(self, modules, installed=frozenset()):
        return by_value_modules(
            {m.__name__: m for m in modules}, roots=self.ROOTS, installed=installed
        )

    def test_a_file_next_to_the_notebook_goes_by_value(self) -> None:
        assert self.pick([_module("helpers", "/home/me/project/helpers.py")]) == ["helpers"]

    def test_installed_and_standard_modules_go_by_reference(self) -> None:
        modules = [
            _module("numpy", "/venv/lib/python3.11/site-packages/numpy/__init__.py"),
            _module("json", "/usr/lib/python3.11/json/__init__.py"),
            _module("weird", "/elsewhere/weird.py"),
        ]
        assert self.pick(modules, installed=frozenset({"weird"})) == []

    def test_main_submodules_and_fileless_modules_are_skipped(self) -> None:
        modules = [
            _module("__main__", "/home/me/script.py"),
            _module("__mp_main__", "/home/me/script.py"),
            _module("pkg.sub", "/home/me/pkg/sub.py"),
            _module("frozen_thing", None),
        ]
        assert self.pick(modules) == []


class TestLocateUnpicklable:
    def test_returns_none_for_picklable_objects(self) -> None:
        assert locate_unpicklable({"a": [1, 2]}, "x") is None

    def test_walks_dicts_lists_and_attributes(self) -> None:
        class Box:
            pass

        box = Box()
        box.items = [1, {"lock": threading.Lock()}]
        culprit = locate_unpicklable(box, "box")
        assert culprit is not None
        assert culprit.where == "box.items[1]['lock']"
        assert culprit.type_name == "_thread.lock"

    def test_walks_partials_and_closures(self) -> None:
        lock = threading.Lock()

        def inner(x, guard):
            return x

        def outer(x):
            return lock and x

        assert locate_unpicklable(functools.partial(inner, guard=lock), "p").where == (
            "p.keywords['guard']"
        )
        assert locate_unpicklable(outer, "outer").where == "outer -> closure variable 'lock'"


class TestSerialize:
    def test_payload_round_trips_in_process(self, tmp_path) -> None:
        payload = serialize_function(lambda xs: [x * 2 for x in xs], tmp_path / "func.pkl")
        assert cloudpickle.loads(payload.read_bytes())([1, 2]) == [2, 4]
        assert len(payload.sha256) == 64

    def test_is_streamed_to_the_file_with_the_hash_of_its_bytes(self, tmp_path) -> None:
        import hashlib

        import numpy as np

        state = np.arange(3_000_000, dtype=np.float64)  # 24 MB: written as it is, not copied

        def predict(xs):
            return [float(state[int(x)]) for x in xs]

        payload = serialize_function(predict, tmp_path / "func.pkl")
        data = (tmp_path / "func.pkl").read_bytes()
        assert payload.size == len(data) > state.nbytes
        assert payload.sha256 == hashlib.sha256(data).hexdigest()
        assert (tmp_path / "func.pkl").stat().st_mode & 0o777 == 0o644
        assert cloudpickle.loads(data)([5, 2_999_999]) == [5.0, 2_999_999.0]

    def test_a_full_disk_is_a_bundle_write_error_and_leaves_no_file(self, tmp_path) -> None:
        from clipper_deploy.packaging.errors import BundleWriteError

        full = tmp_path / "func.pkl"
        full.symlink_to("/dev/full")  # the kernel answers ENOSPC to every write there
        with pytest.raises(BundleWriteError, match="No space left on device") as info:
            serialize_function(lambda xs: xs, full)
        assert "bundles_dir=" in str(info.value)
        assert not full.is_symlink() and Path("/dev/full").exists()

    def test_error_names_the_object_and_the_path(self, tmp_path) -> None:
        lock = threading.Lock()

        def predict(xs):
            return lock and xs

        with pytest.raises(UnpicklableClosureError) as info:
            serialize_function(predict, tmp_path / "func.pkl")
        assert not (tmp_path / "func.pkl").exists()
        assert info.value.where.endswith("predict -> closure variable 'lock'")
        assert info.value.type_name == "_thread.lock"
        assert "cannot pickle '_thread.lock' object" in str(info.value)

    def test_labels_drop_locals(self) -> None:
        def make():
            def centered_predict(xs):
                return xs

            return centered_predict

        assert function_label(make()).endswith("make.centered_predict")

"""pip: resolution for Linux with pip's own resolver, against the real package index."""

from __future__ import annotations

import dataclasses

import pytest
from packaging_helpers import listing

from clipper_deploy.packaging import (
    IndexUnreachableError,
    RecordingPrinter,
    UnavailablePackagesError,
    build_bundle,
)
from clipper_deploy.packaging.cache import Cache
from clipper_deploy.packaging.environment import PipPackage
from clipper_deploy.packaging.pip_resolve import fetch_wheels, resolve
from clipper_deploy.packaging.selection import select_full
from clipper_deploy.packaging.target import Target


def predict(inputs):
    return [1.0 for _ in inputs]


@pytest.fixture(scope="module")
def windows_env(small_env):
    """The runtime's packages plus one that only exists for Windows."""
    return dataclasses.replace(small_env, pip=(*small_env.pip, PipPackage("pywin32", "306")))


class TestPlatformOnlyPackages:
    def test_are_skipped_with_a_warning_naming_them(
        self, windows_env, session_cache, bundles_dir
    ) -> None:
        printer = RecordingPrinter()
        bundle = build_bundle(
            predict,
            "pip-model",
            1,
            "doubles",
            environment=windows_env,
            cache_dir=session_cache,
            bundles_dir=bundles_dir,
            printer=printer,
        )
        assert "pywin32==306" in printer.lines
        assert (
            "We will skip their installation when deploying your function. If your function "
            "uses these packages, the container will experience a runtime error when queried."
        ) in printer.lines
        assert bundle.warnings
        requirements = (bundle.path / "requirements.txt").read_text()
        assert "#   pywin32==306" in requirements
        assert not any(f.startswith("wheels/pywin32") for f in bundle.files)

    def test_are_an_error_in_strict_mode(self, windows_env, session_cache, bundles_dir) -> None:
        with pytest.raises(UnavailablePackagesError) as info:
            build_bundle(
                predict,
                "pip-model",
                1,
                "doubles",
                environment=windows_env,
                pip_strict=True,
                cache_dir=session_cache,
                bundles_dir=bundles_dir,
                printer=RecordingPrinter(),
            )
        assert info.value.packages == ("pywin32==306",)
        assert "pip_strict" in str(info.value)
        assert listing(bundles_dir) == []


class TestUnreachableIndex:
    def test_is_an_error_that_names_the_index(
        self, small_env, tmp_path, bundles_dir, isolated_pip
    ) -> None:
        index = "http://127.0.0.1:9/simple"
        with pytest.raises(IndexUnreachableError) as info:
            build_bundle(
                predict,
                "pip-model",
                1,
                "doubles",
                environment=small_env,
                pip_index_url=index,
                cache_dir=tmp_path / "cache",
                bundles_dir=bundles_dir,
                printer=RecordingPrinter(),
            )
        assert index in str(info.value) and "pip_index_url" in str(info.value)
        assert listing(bundles_dir) == []


class TestWheelCache:
    def test_wheels_are_fetched_once_per_hash(self, small_env, session_cache, tmp_path) -> None:
        target = Target()
        selection = select_full(small_env)
        shared = Cache(session_cache)
        resolution = resolve(selection, target, shared, printer=RecordingPrinter())
        paths = fetch_wheels(resolution, target, shared)
        before = {name: path.stat().st_ino for name, path in paths.items()}
        again = fetch_wheels(resolution, target, shared)
        assert {name: path.stat().st_ino for name, path in again.items()} == before
        assert {w.filename for w in resolution.wheels} == set(paths)

    def test_a_cached_resolution_runs_no_pip(self, small_env, session_cache, monkeypatch) -> None:
        from clipper_deploy.packaging import pip_resolve

        target, shared = Target(), Cache(session_cache)
        selection = select_full(small_env)
        resolve(selection, target, shared, printer=RecordingPrinter())
        monkeypatch.setattr(pip_resolve.subprocess, "run", _refuse)
        assert resolve(selection, target, shared, printer=RecordingPrinter()).cached


def _refuse(*args, **kwargs):
    raise AssertionError("pip ran")


def _lowest_allowed_pip() -> str:
    """The lower bound clipper-deploy's metadata puts on pip (its ``pip>=X`` requirement)."""
    import importlib.metadata
    import re

    for requirement in importlib.metadata.requires("clipper-deploy") or ():
        match = re.fullmatch(r"pip\s*>=\s*([0-9.]+)", requirement.split(";")[0].strip())
        if match:
            return match.group(1)
    raise AssertionError("clipper-deploy declares no pip>=X requirement")


class TestOlderPips:
    """Users resolve with the pip of their own environment: the stock pip of a fresh venv
    (23.2 on this Python 3.11) and the oldest pip the package allows must both work."""

    @pytest.fixture(scope="class")
    def venvs(self, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
        import subprocess
        import sys

        root = tmp_path_factory.mktemp("pips")
        found = {}
        for label, pin in (("stock", None), ("lowest", _lowest_allowed_pip())):
            subprocess.run([sys.executable, "-m", "venv", str(root / label)], check=True)
            python = str(root / label / "bin" / "python")
            if pin is not None:
                subprocess.run(
                    [python, "-m", "pip", "install", "-q", f"pip=={pin}"],
                    check=True,
                    capture_output=True,
                )
            found[label] = python
        return found

    @pytest.mark.parametrize("label", ["stock", "lowest"])
    def test_resolve_linux_wheels(self, venvs, label, small_env, tmp_path) -> None:
        import subprocess

        python = venvs[label]
        version = subprocess.run(
            [python, "-m", "pip", "--version"], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        if label == "lowest":
            assert version.startswith(_lowest_allowed_pip())
        resolution = resolve(
            select_full(small_env),
            Target(),
            Cache.at(tmp_path / "cache"),
            printer=RecordingPrinter(),
            python=python,
        )
        names = {w.name.lower() for w in resolution.wheels}
        assert {"numpy", "cloudpickle"} <= names, (version, names)
        assert all("manylinux" in w.filename or "none-any" in w.filename for w in resolution.wheels)

"""The registry-free base image follows the client's Python where Debian ships it."""

from __future__ import annotations

import pytest

from clipper_deploy.images.base import BaseImageSpec, UnsupportedPythonError
from clipper_deploy.packaging import PythonVersionMismatchError, build_bundle
from clipper_deploy.packaging.target import default_base_image, default_target_python


@pytest.mark.parametrize(("python", "suite"), [("3.11", "bookworm"), ("3.13", "trixie")])
def test_each_supported_python_gets_the_debian_release_that_ships_it(
    python: str, suite: str
) -> None:
    spec = BaseImageSpec(python=python)
    assert spec.suite == suite
    assert spec.tag.startswith(f"clipper-deploy/base:py{python}-{suite}-")


def test_the_two_recipes_differ() -> None:
    assert BaseImageSpec(python="3.11").digest != BaseImageSpec(python="3.13").digest


@pytest.mark.parametrize("python", ["3.10", "3.12", "3.14"])
def test_another_python_is_refused_naming_both_versions_and_both_fixes(python: str) -> None:
    with pytest.raises(UnsupportedPythonError) as info:
        BaseImageSpec(python=python)
    message = str(info.value)
    assert f"This client runs Python {python}" in message
    assert "3.11 (bookworm) and 3.13 (trixie)" in message
    assert f"base_image='python:{python}-slim'" in message
    assert "deploy from a Python 3.11 or 3.13 environment" in message


def test_defaults_follow_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import clipper_deploy.images.base as base

    monkeypatch.setattr(base, "client_python", lambda: "3.13")
    assert default_base_image().startswith("clipper-deploy/base:py3.13-trixie-")
    monkeypatch.setattr(base, "client_python", lambda: "3.12")
    with pytest.raises(UnsupportedPythonError):
        default_base_image()


def test_bundling_from_an_unsupported_python_fails_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import clipper_deploy.images.base as base

    monkeypatch.setattr(base, "client_python", lambda: "3.12")
    with pytest.raises(PythonVersionMismatchError, match=r"python:3\.12-slim"):
        build_bundle(lambda xs: xs, "m", 1, "doubles", cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists()
    assert default_target_python() == "3.12"

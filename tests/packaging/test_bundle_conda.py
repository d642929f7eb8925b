"""Conda environments: captured from conda-meta, checked and solved with py-rattler for real."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path

import pytest
from packaging_helpers import listing

from clipper_deploy.packaging import (
    CondaChannelError,
    CondaUnsatisfiableError,
    Environment,
    RecordingPrinter,
    build_bundle,
    capture_environment,
)
from clipper_deploy.packaging import conda_resolve as conda_module
from clipper_deploy.packaging.selection import RUNTIME_PACKAGES, select_full

MISSING_LINES = [
    "The following packages in your conda environment aren't available in the linux-64 conda "
    "channel the container will use:",
    "We will skip their installation when deploying your function. If your function uses these "
    "packages, the container will experience a runtime error when queried.",
    "Removed unavailable packages from supplied environment specifications",
]


def predict(inputs):
    return [len(str(x)) for x in inputs]


def conda_env(client_env: Environment) -> Environment:
    """The environment seen inside the test prefix, with pip cut down to the runtime's needs."""
    env = capture_environment()
    keep = tuple(p for p in env.pip if p.key in RUNTIME_PACKAGES)
    return dataclasses.replace(env, pip=keep)


class TestCapture:
    def test_conda_records_come_from_conda_meta(self, in_conda: Path) -> None:
        env = capture_environment()
        names = {r.name: r for r in env.conda}
        assert set(names) == {"python", "tinypkg", "tinydata", "liba", "libb", "libmissing"}
        assert env.conda_prefix == str(in_conda)
        assert names["liba"].version == "1.0" and names["liba"].build == "0"
        assert names["tinypkg"].channel.startswith("file://")

    def test_conda_owned_python_distributions_are_not_pip_packages(self, in_conda: Path) -> None:
        env = capture_environment()
        tinypkg = next(r for r in env.conda if r.name == "tinypkg")
        assert tinypkg.python_dists == ("tinypkg",)
        assert all(p.key != "tinypkg" for p in env.pip)

    def test_clipper_deploy_installed_into_the_conda_env_is_not_shipped(
        self, in_conda: Path
    ) -> None:
        env = capture_environment()
        assert env.conda and "clipper-deploy" in {p.key for p in env.pip}
        selection = select_full(env)
        assert {"clipper-deploy", "fabric", "py-rattler"} <= {p.key for p in selection.tool}
        shipped = {r.split("==")[0].lower() for r in selection.requirements}
        assert not shipped & {"clipper-deploy", "fabric", "py-rattler", "paramiko"}
        assert selection.conda == env.conda


class TestMissingPackages:
    def test_are_removed_with_the_seeds_warning_and_the_deploy_goes_on(
        self, in_conda: Path, channels, client_env, session_cache, bundles_dir, capsys
    ) -> None:
        bundle = build_bundle(
            predict,
            "conda-model",
            1,
            "strings",
            environment=conda_env(client_env),
            conda_channels=[channels.container],
            cache_dir=session_cache,
            bundles_dir=bundles_dir,
        )
        out = capsys.readouterr().out.splitlines()
        for line in MISSING_LINES:
            assert line in out
        head = out.index(MISSING_LINES[0])
        assert out[head + 1].endswith("::libmissing 1.0 0")
        assert out[-2] == "Serialized and supplied predict function"
        assert "libmissing" not in (bundle.path / "conda" / "explicit.txt").read_text()
        assert "libmissing 1.0 0" in (bundle.path / "environment.yml").read_text()


class TestLayer:
    @pytest.fixture
    def bundle(self, in_conda, channels, client_env, session_cache, bundles_dir):
        return build_bundle(
            predict,
            "conda-model",
            1,
            "strings",
            environment=conda_env(client_env),
            conda_channels=[channels.container],
            cache_dir=session_cache,
            bundles_dir=bundles_dir,
            printer=RecordingPrinter(),
        )

    def test_holds_a_linux_prefix_relocated_to_opt_conda(self, bundle) -> None:
        with tarfile.open(bundle.path / "conda" / "prefix.tar") as tar:
            names = set(tar.getnames())
            where = tar.extractfile("opt/conda/share/tinydata/where.txt")
            assert where is not None
            assert where.read() == b"prefix=/opt/conda\n"
            members = tar.getmembers()
        assert "opt/conda/lib/python3.11/site-packages/tinypkg/__init__.py" in names
        assert {"opt", "opt/conda"} <= names  # the image's paths: the tar is a layer as it is
        assert all(m.mtime == 0 and m.uid == 0 for m in members)

    def test_dockerfile_adds_the_layer_before_the_site_packages(self, bundle) -> None:
        import tarfile

        text = (bundle.path / "Dockerfile").read_text()
        assert text.index("ADD conda/prefix.tar /") < text.index("ADD env/site-packages.tar.gz")
        with tarfile.open(bundle.path / "env" / "site-packages.tar.gz") as tar:
            pth = tar.extractfile("opt/venv/lib/python3.11/site-packages/clipper-conda.pth")
            assert pth is not None
            assert pth.read() == b"/opt/conda/lib/python3.11/site-packages\n"

    def test_is_reused_byte_for_byte_without_solving_or_installing(
        self, bundle, in_conda, channels, client_env, session_cache, tmp_path, monkeypatch
    ) -> None:
        def refuse(*args, **kwargs):
            raise AssertionError("the solver or installer ran again")

        monkeypatch.setattr(conda_module.CondaResolver, "_resolve", refuse)
        monkeypatch.setattr(conda_module.CondaResolver, "_install", refuse)
        again = build_bundle(
            lambda xs: [0 for _ in xs],
            "conda-model",
            2,
            "strings",
            environment=conda_env(client_env),
            conda_channels=[channels.container],
            cache_dir=session_cache,
            bundles_dir=tmp_path / "other-bundles",
            printer=RecordingPrinter(),
        )
        assert again.files["conda/prefix.tar"] == bundle.files["conda/prefix.tar"]


class TestConflicts:
    def test_abort_with_the_seeds_text_and_the_solvers_explanation(
        self, in_conda, channels, client_env, session_cache, bundles_dir
    ) -> None:
        with pytest.raises(CondaUnsatisfiableError) as info:
            build_bundle(
                predict,
                "conda-model",
                1,
                "strings",
                environment=conda_env(client_env),
                conda_channels=[channels.conflict],
                cache_dir=session_cache,
                bundles_dir=bundles_dir,
                printer=RecordingPrinter(),
            )
        message = str(info.value)
        assert message.startswith(
            "Your conda dependencies are unsatisfiable (see error text below). Please resolve "
            "these issues and call `deploy_predict_func` again.\nUnsatisfiableError: "
        )
        assert "liba" in info.value.explanation and "libb" in info.value.explanation
        assert listing(bundles_dir) == []


class TestUnknownChannel:
    def test_is_an_error_naming_the_channel(
        self, in_conda, client_env, session_cache, bundles_dir, tmp_path
    ) -> None:
        nowhere = (tmp_path / "no-such-channel").as_uri()
        with pytest.raises(CondaChannelError) as info:
            build_bundle(
                predict,
                "conda-model",
                1,
                "strings",
                environment=conda_env(client_env),
                conda_channels=[nowhere],
                cache_dir=session_cache,
                bundles_dir=bundles_dir,
                printer=RecordingPrinter(),
            )
        assert nowhere in str(info.value)
        assert "conda_channels" in str(info.value)
        assert listing(bundles_dir) == []


def test_prefix_tar_is_reproducible(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "tool").write_bytes(b"#!/bin/sh\n")
    (prefix / "bin" / "tool").chmod(0o755)
    (prefix / "lib").mkdir()
    (prefix / "lib" / "link").symlink_to("../bin/tool")
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    conda_module.write_prefix_tar(prefix, one)
    (prefix / "bin" / "tool").touch()
    conda_module.write_prefix_tar(prefix, two)
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(one.read_bytes())) as tar:  # the image's paths
        assert tar.getmember("opt/conda/bin/tool").mode == 0o755
        assert tar.getmember("opt/conda/lib/link").issym()
        assert tar.getmember("opt/conda/lib/link").linkname == "../bin/tool"

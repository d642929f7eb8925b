"""The seed's example bundles, and its bundle predicts identically in a clean Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import centered_predict as example
import numpy as np
import pytest

from clipper_deploy.packaging import RecordingPrinter, build_bundle
from clipper_deploy.packaging import pip_resolve as pip_module
from clipper_deploy.packaging.environment import canonical_name

INPUTS = example.sample_inputs(16)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, session_cache):
    """The seed example bundled in auto mode, then a changed function in the same environment."""
    where = tmp_path_factory.mktemp("seed-bundles")
    first = build_bundle(
        example.make(),
        "example-model",
        1,
        "doubles",
        ["example"],
        mode="auto",
        sample_input=INPUTS,
        cache_dir=session_cache,
        bundles_dir=where,
        printer=RecordingPrinter(),
    )
    return first, where


def load_in_clean_python(bundle_path: Path, inputs: np.ndarray) -> list[int]:
    """Load ``func.pkl`` with the runtime's own loader in ``python -I`` and predict."""
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        sys.path.insert(0, sys.argv[1] + "/runtime")
        from clipper_runtime.loader import load_function
        func = load_function(sys.argv[1] + "/model")  # what a container mounts at /model
        print(json.dumps([int(v) for v in func(np.array(json.loads(sys.argv[2])))]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script, str(bundle_path), json.dumps(inputs.tolist())],
        capture_output=True,
        text=True,
        check=True,
        cwd=bundle_path,
    )
    return json.loads(proc.stdout)


class TestSeedExample:
    def test_prints_the_seeds_lines(self, session_cache, tmp_path, capsys) -> None:
        build_bundle(
            example.make(),
            "example-model",
            1,
            "doubles",
            ["example"],
            mode="auto",
            cache_dir=session_cache,
            bundles_dir=tmp_path,
        )
        out = capsys.readouterr().out.splitlines()
        assert out[0] == "Supplied environment details"
        assert "Serialized and supplied predict function" in out

    def test_bundle_holds_the_build_context(self, bundles) -> None:
        bundle, where = bundles
        assert bundle.path == where / bundle.sha256
        for name in ("Dockerfile", "model/func.pkl", "model/model.json", "requirements.txt"):
            assert name in bundle.files
        # the model files are mounted into the containers, never sent to a docker build
        assert (bundle.path / ".dockerignore").read_text().splitlines()[-1] == "model"
        assert "runtime/clipper_runtime/__main__.py" in bundle.files
        assert not [f for f in bundle.files if f.startswith("wheels/")]  # installed on the client
        import tarfile

        with tarfile.open(bundle.path / "env" / "site-packages.tar.gz") as tar:
            site = "opt/venv/lib/python3.11/site-packages/"
            names = {n.removeprefix(site) for n in tar.getnames()}
        installed = {canonical_name(n.split("-")[0]) for n in names if n.endswith(".dist-info")}
        assert {"scikit-learn", "numpy", "scipy", "cloudpickle"} <= installed
        assert "sklearn/__init__.py" in names
        assert any(n.startswith("sklearn/__pycache__/__init__.cpython-311") for n in names)

    def test_model_json_describes_the_function(self, bundles) -> None:
        bundle, _ = bundles
        model = json.loads((bundle.path / "model" / "model.json").read_text())
        assert model == dict(bundle.model)
        assert model["name"] == "example-model" and model["version"] == "1"
        assert model["input_type"] == "doubles" and model["labels"] == ["example"]
        assert model["python"].startswith("3.11.") and model["cloudpickle"]
        assert model["payload_sha256"] == bundle.files["model/func.pkl"]
        assert model["created"].endswith("Z")

    def test_file_hashes_match_the_files(self, bundles) -> None:
        import hashlib

        bundle, _ = bundles
        for rel, digest in bundle.files.items():
            assert hashlib.sha256((bundle.path / rel).read_bytes()).hexdigest() == digest

    def test_loads_and_predicts_identically_in_a_clean_python(self, bundles) -> None:
        bundle, _ = bundles
        expected = [int(v) for v in example.make()(INPUTS)]
        assert load_in_clean_python(bundle.path, INPUTS) == expected

    def test_no_copy_of_the_users_source_is_needed(self, bundles) -> None:
        bundle, _ = bundles
        assert "centered_predict" in bundle.model["by_value_modules"]


class TestWarmRebuild:
    def test_changed_function_changes_only_the_last_layer(
        self, bundles, session_cache, monkeypatch
    ) -> None:
        first, where = bundles

        def no_pip(*args, **kwargs):
            raise AssertionError("pip ran although the environment did not change")

        monkeypatch.setattr(pip_module.subprocess, "run", no_pip)
        second = build_bundle(
            example.make(seed=7),
            "example-model",
            2,
            "doubles",
            ["example"],
            mode="auto",
            sample_input=INPUTS,
            cache_dir=session_cache,
            bundles_dir=where,
            printer=RecordingPrinter(),
        )
        changed = {p for p in first.files.keys() | second.files.keys()}
        changed = {p for p in changed if first.files.get(p) != second.files.get(p)}
        assert changed == {"model/func.pkl", "model/model.json"}  # the image's context is the same
        assert second.sha256 != first.sha256

    def test_earlier_dockerfile_layers_are_identical(self, bundles, session_cache) -> None:
        first, where = bundles
        second = build_bundle(
            example.make(seed=8),
            "example-model",
            3,
            "doubles",
            mode="auto",
            sample_input=INPUTS,
            cache_dir=session_cache,
            bundles_dir=where,
            printer=RecordingPrinter(),
        )
        one = (first.path / "Dockerfile").read_text()
        two = (second.path / "Dockerfile").read_text()
        assert one == two

    def test_same_function_same_environment_is_the_same_bundle(
        self, bundles, session_cache
    ) -> None:
        first, where = bundles
        again = build_bundle(
            example.make(),
            "example-model",
            1,
            "doubles",
            ["example"],
            mode="auto",
            sample_input=INPUTS,
            cache_dir=session_cache,
            bundles_dir=where,
            printer=RecordingPrinter(),
        )
        assert again.sha256 == first.sha256 and again.reused
        assert again.model["created"] == first.model["created"]


def test_full_mode_ships_every_installed_distribution(session_cache, tmp_path) -> None:
    """The seed's behaviour (the default): the whole pip environment goes into the wheelhouse,
    but for the deploying tool (clipper-deploy and what only it requires)."""
    from clipper_deploy.packaging import capture_environment

    bundle = build_bundle(
        example.make(),
        "example-model",
        1,
        "doubles",
        cache_dir=session_cache,
        bundles_dir=tmp_path,
        printer=RecordingPrinter(),
    )
    env = capture_environment(conda_prefix="")
    requirements = (bundle.path / "requirements.txt").read_text()
    pinned = {
        canonical_name(line.split("==")[0]) for line in requirements.splitlines() if "==" in line
    }
    assert not pinned & {"clipper-deploy", "fabric", "paramiko", "py-rattler", "aiohttp"}
    # Everything else installed here, test tools included, is the user's environment: what is
    # left out must be in clipper-deploy's own dependency tree.
    assert {"scikit-learn", "scipy", "numpy", "pytest", "ruff"} <= pinned
    left_out = {p.key for p in env.pip} - pinned
    assert left_out <= _requirement_tree("clipper-deploy"), left_out


def _requirement_tree(root: str) -> set[str]:
    """``root`` and everything it requires, transitively, from the installed metadata."""
    import importlib.metadata
    import re

    seen: set[str] = set()
    todo = [root]
    while todo:
        name = canonical_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in requires if "extra" not in r]
    return seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a POSIX venv")
def test_the_site_packages_layer_unpacked_in_a_bare_venv_loads_the_function(
    bundles, tmp_path
) -> None:
    """What the Dockerfile does, without Docker: a venv without pip, the layer unpacked into
    its site-packages (nothing installed), then the runtime loads and runs the function."""
    import tarfile

    bundle, _ = bundles
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    with tarfile.open(bundle.path / "env" / "site-packages.tar.gz") as tar:
        prefix = "opt/venv/lib/python3.11/site-packages/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        for member in members:
            member.name = member.name.removeprefix(prefix)
        tar.extractall(site / "site-packages", members=members, filter="tar")
    script = (
        "import sys, json; sys.path.insert(0, sys.argv[1] + '/runtime');"
        "from clipper_runtime.loader import load_function; import numpy as np;"
        "f = load_function(sys.argv[1] + '/model');"
        "print(json.dumps([int(v) for v in f(np.array(json.loads(sys.argv[2])))]))"
    )
    proc = subprocess.run(
        [str(python), "-I", "-c", script, str(bundle.path), json.dumps(INPUTS.tolist())],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert json.loads(proc.stdout) == [int(v) for v in example.make()(INPUTS)]

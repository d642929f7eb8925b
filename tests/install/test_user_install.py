"""clipper-deploy as a user gets it: the wheel in a fresh venv, used from outside the repo.

The deploy tests here run the seed's example exactly as written (``"example_model"``, version
1, default ``full`` mode) from a script and from a Jupyter notebook executed by a real kernel,
onto host h3 of the suite's bed, with a frontend the user's own installation starts.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from install_helpers import REPO, UserEnv

import clipper_deploy

SEED_SCRIPT = """
import json, os, sys
import numpy as np
from sklearn import linear_model
from clipper_deploy import Clipper

rng = np.random.default_rng(0)
xs = rng.normal(loc=2.0, scale=1.0, size=(200, 4))
ys = ((xs - xs.mean(axis=0)) @ np.array([1.5, -2.0, 0.5, 1.0]) > 0).astype(int)

clipper = Clipper("inventory.ini")
clipper.start()
clipper.register_application("example", "doubles", default_output="-1.0", slo_micros=100000)

def center(xs):
    means = np.mean(xs, axis=0)
    return xs - means

centered_xs = center(xs)
model = linear_model.LogisticRegression()
model.fit(centered_xs, ys)

def centered_predict(inputs):
    centered_inputs = center(inputs)
    return model.predict(centered_inputs)

returned = clipper.deploy_predict_function(
    "example_model", 1, centered_predict, ["example"], "doubles", num_containers=1)
clipper.link_model_to_app("example", "example_model")
print("RETURNED", returned)
reply = clipper.predict("example", [1.0, 2.0, 3.0, 4.0])
print("REPLY", json.dumps(reply))
print("LOCAL", int(centered_predict(np.array([[1.0, 2.0, 3.0, 4.0]]))[0]))
import clipper_deploy
print("FROM", clipper_deploy.__file__)
"""


class TestTheWheel:
    def test_holds_what_a_deploy_needs_at_run_time(self, built_wheel: Path) -> None:
        names = zipfile.ZipFile(built_wheel).namelist()
        assert "clipper_deploy/templates/bundle/Dockerfile.j2" in names
        assert "clipper_runtime/__main__.py" in names
        assert "clipper_deploy/images/base.py" in names  # the base-image recipe
        for asset in ("page.html", "login.html", "dashboard.js", "dashboard.css", "favicon.svg"):
            assert f"clipper_deploy/frontend/dashboard_assets/{asset}" in names
        assert not [n for n in names if n.startswith(("tests/", "bench/", "playbooks/"))]
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert (
            "clipper-deploy = clipper_deploy.cli:main"
            in zipfile.ZipFile(built_wheel).read(entry_points).decode()
        )

    def test_installs_with_the_venvs_stock_pip(self, user_env: UserEnv, workdir: Path) -> None:
        import ensurepip

        pip = user_env.run(user_env.python, "-m", "pip", "--version", cwd=workdir)
        assert pip.stdout.split()[1] == ensurepip.version()  # not upgraded
        where = user_env.run(
            user_env.python,
            "-c",
            "import clipper_deploy; print(clipper_deploy.__file__)",
            cwd=workdir,
        )
        assert where.stdout.strip().startswith(str(user_env.root)), where


class TestTheCommand:
    def test_lists_every_task(self, user_env: UserEnv, workdir: Path) -> None:
        listed = user_env.run(user_env.command, "--list", cwd=workdir)
        assert listed.returncode == 0, listed.stderr
        for name in ("deploy", "rollout", "rollback", "status", "testbed.up", "frontend.start"):
            assert re.search(rf"^\s+{re.escape(name)}\s", listed.stdout, re.M), name
        version = user_env.run(user_env.command, "--version", cwd=workdir)
        assert version.stdout.strip() == f"clipper-deploy {clipper_deploy.__version__}"

    def test_settings_come_from_the_file_then_the_environment_then_the_flag(
        self, user_env: UserEnv, workdir: Path
    ) -> None:
        (workdir / "clipper-deploy.yaml").write_text("inventory: from-file.ini\nlock_wait: 5\n")
        said = user_env.run(user_env.command, "status", cwd=workdir)
        assert said.returncode == 1 and "from-file.ini: inventory file not found" in said.stderr
        said = user_env.run(
            user_env.command, "status", cwd=workdir, CLIPPER_DEPLOY_INVENTORY="from-env.ini"
        )
        assert "from-env.ini: inventory file not found" in said.stderr
        said = user_env.run(
            user_env.command,
            "status",
            "--inventory",
            "flag.ini",
            cwd=workdir,
            CLIPPER_DEPLOY_INVENTORY="from-env.ini",
        )
        assert "flag.ini: inventory file not found" in said.stderr

    def test_a_bad_setting_is_a_clear_error(self, user_env: UserEnv, workdir: Path) -> None:
        (workdir / "clipper-deploy.yaml").write_text("inventory: inv.ini\nlock_wait: soon\n")
        (workdir / "inv.ini").write_text("[clipper]\nc ansible_connection=local\n")
        said = user_env.run(user_env.command, "rollback", "example_model", cwd=workdir)
        assert said.returncode == 1
        assert "the lock_wait setting must be a number of seconds >= 0, not 'soon'" in said.stderr


@pytest.mark.bed
class TestTheSeedsExampleAsWritten:
    def test_deploys_from_a_script_outside_the_repository(
        self, user_env: UserEnv, user_inventory: Path, workdir: Path
    ) -> None:
        (workdir / "seed.py").write_text(SEED_SCRIPT)
        ran = user_env.run(user_env.python, "seed.py", cwd=workdir)
        assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
        out = ran.stdout
        assert "RETURNED True" in out
        for line in (
            "Supplied environment details",
            "Serialized and supplied predict function",
            "Published model to Clipper",
            "Copied model data to host h3",
        ):
            assert line in out, line
        shipped_not = next(line for line in out.splitlines() if "Not shipped:" in line)
        assert "clipper-deploy" in shipped_not and "fabric" in shipped_not.lower()
        reply = json.loads(out.split("REPLY ", 1)[1].splitlines()[0])
        local = int(out.split("LOCAL ", 1)[1].splitlines()[0])
        assert reply["default"] is False and reply["output"] == local
        assert out.split("FROM ", 1)[1].startswith(str(user_env.root))
        bundle_model = _deployed_model_json(out)
        assert bundle_model["clipper_deploy"] == clipper_deploy.__version__
        assert bundle_model["name"] == "example_model"

    def test_runs_as_a_notebook_in_a_real_kernel(
        self, user_env: UserEnv, user_inventory: Path, workdir: Path
    ) -> None:
        notebook = REPO / "examples" / "seed_example.ipynb"
        runner = (
            "import nbformat, sys; from nbclient import NotebookClient\n"
            "nb = nbformat.read(sys.argv[1], as_version=4)\n"
            "NotebookClient(nb, timeout=600, kernel_name='python3',"
            " resources={'metadata': {'path': '.'}}).execute()\n"
            "nbformat.write(nb, 'executed.ipynb')\n"
        )
        ran = user_env.run(
            user_env.python,
            "-c",
            runner,
            notebook,
            cwd=workdir,
            CLIPPER_DEPLOY_INVENTORY=str(user_inventory),
        )
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-6000:]
        executed = json.loads((workdir / "executed.ipynb").read_text())
        printed = "".join(
            "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            for cell in executed["cells"]
            for output in cell.get("outputs", [])
        )
        assert "\nTrue" in printed  # deploy_predict_function's return value, shown by the cell
        remote = json.loads(_after(printed, "remote:"))
        local = json.loads(_after(printed, "local: "))
        assert len(remote) == 8 and remote == local
        assert _after(printed, "defaults:") == "0"


def _after(text: str, prefix: str) -> str:
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return line[len(prefix) :].strip()


def _deployed_model_json(output: str) -> dict[str, object]:
    """``model.json`` of the bundle the deploy printed (``bundle <sha> at <path> (...)``)."""
    match = re.search(r"bundle [0-9a-f]{12} at (\S+) \(", output)
    assert match, output
    return json.loads((Path(match.group(1)) / "model" / "model.json").read_text())


def test_the_repo_is_not_on_the_users_path(user_env: UserEnv, workdir: Path) -> None:
    probe = user_env.run(user_env.python, "-c", "import sys; print(sys.path)", cwd=workdir)
    assert str(REPO) not in probe.stdout

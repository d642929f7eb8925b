"""Clipper's own client, ``clipper_admin`` 0.4.1 from PyPI, drives our frontend unchanged.

A fresh ``python -m venv`` (not the repository's .venv) gets the project's wheel,
``clipper_admin==0.4.1`` with ``--no-deps`` (its pinned cloudpickle 0.5.3 does not import on
Python 3.11) and current versions of its other dependencies. A user script
(``user_script.py``) builds ``ClipperConnection(ClipperDeployContainerManager(inventory))``
and makes the client's calls against a real local frontend; replicas are the project's own
runtime processes dialling it. ``clipper_admin`` sends no token: the test writes the admin
token into ``~/.netrc`` of a temporary HOME, where ``requests`` finds it by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_helpers import REPO, RuntimeProcess, free_port, keyed_env_from, pickle_function

from clipper_deploy.frontend import process as frontend_process
from clipper_deploy.frontend.client import AdminClient

CLIPPER_ADMIN_DEPS = [
    "requests",
    "numpy",
    "pyyaml",
    "docker",
    "kubernetes",
    "prometheus-client",
    "cloudpickle",
    "redis",
    "psutil",
    "jsonschema",
    "jinja2",
]
SCRIPT = Path(__file__).resolve().parent / "user_script.py"


def double_sum(inputs):
    return [str(sum(x) * 2) for x in inputs]


def triple_sum(inputs):
    return [str(sum(x) * 3) for x in inputs]


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory) -> Path:
    """The project's wheel and clipper_admin 0.4.1 in a fresh venv."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("clipper_deploy-*.whl")
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "-q"]
    for args in (
        [str(wheel), *CLIPPER_ADMIN_DEPS],
        ["--no-deps", "clipper_admin==0.4.1"],
    ):
        done = subprocess.run([*pip, *args], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return root / "bin" / "python"


@pytest.fixture(scope="module")
def user(tmp_path_factory, user_venv):
    """A user's HOME, working directory and inventory (a local [clipper] host)."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    ports = [free_port() for _ in range(3)]
    inventory = work / "inventory.ini"
    inventory.write_text(
        "[clipper]\n"
        f"local ansible_connection=local ansible_host=127.0.0.1 clipper_state_dir={work}/state "
        f"clipper_query_port={ports[0]} clipper_admin_port={ports[1]} "
        f"clipper_replica_port={ports[2]}\n"
        "[model_hosts]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTHON"))}
    env["HOME"] = str(home)

    def run(phase: str) -> dict:
        done = subprocess.run(
            [str(user_venv), str(SCRIPT), str(inventory), phase],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    state = {
        "home": home,
        "work": work,
        "run": run,
        "replica_port": ports[2],
        "admin_port": ports[1],
    }
    yield state
    frontend_process.stop(work / "state")  # the frontend the user script started


def test_clipper_admin_drives_the_frontend(user, tmp_path):
    run = user["run"]

    # Without ~/.netrc the client would retry 401s for minutes: it fails at once instead,
    # naming the line to add (the frontend is up by then).
    first = run("start-without-netrc")
    assert "~/.netrc has no entry for 127.0.0.1" in first["start_clipper"]["raised"]
    assert "machine 127.0.0.1 login clipper password" in first["start_clipper"]["raised"]

    token = (user["work"] / "state" / "admin.token").read_text().strip()
    netrc = user["home"] / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login clipper password {token}\n")
    netrc.chmod(0o600)

    setup = run("setup")
    for name in ("start_clipper", "register_application", "register_model", "register_model_2"):
        assert setup[name] is None, (name, setup[name])
    assert setup["link_model_to_app"] is None
    assert "deploys a Python function" in setup["deploy_model"]["raised"]

    # Replicas started by hand prove the keys the frontend gives them, as a deploy's do.
    admin = AdminClient(f"http://127.0.0.1:{user['admin_port']}", token)
    replicas = []
    try:
        for version, func in (("1", double_sum), ("2", triple_sum)):
            model_dir = pickle_function(func, tmp_path / f"v{version}")
            replicas.append(
                RuntimeProcess(
                    keyed_env_from(
                        admin,
                        tmp_path / "keys",
                        {
                            "CLIPPER_IP": "127.0.0.1",
                            "CLIPPER_PORT": str(user["replica_port"]),
                            "CLIPPER_MODEL_NAME": "ca-model",
                            "CLIPPER_MODEL_VERSION": version,
                            "CLIPPER_INPUT_TYPE": "doubles",
                            "CLIPPER_MODEL_PATH": str(model_dir),
                            "CLIPPER_REPLICA_ID": f"ca-r{version}",
                        },
                    )
                ).wait_serving()
            )
        used = run("use")
    finally:
        for rt in replicas:
            rt.stop()

    assert used["connect"] is None
    (app,) = used["get_all_apps"]
    assert app["name"] == "ca-app" and app["linked_models"] == ["ca-model"]
    assert used["get_app_info"]["latency_slo_micros"] == 500000
    assert used["get_linked_models"] == ["ca-model"]
    assert used["get_all_models"] == ["ca-model:1", "ca-model:2"]
    assert used["get_model_info"]["labels"] == ["x"]
    assert used["get_model_info"]["is_current_version"] is True
    assert {r["replica_id"] for r in used["get_all_model_replicas"]} == {"ca-r1", "ca-r2"}
    assert used["get_model_replica_info"]["model_version"] == "1"
    assert used["get_current_model_version"] == "1"
    assert used["get_num_replicas"] == 1
    assert used["get_query_addr"].startswith("127.0.0.1:")
    assert used["predict_v1"]["output"] == "20.0" and used["predict_v1"]["default"] is False
    assert used["set_model_version"] is None
    assert used["predict_v2"]["output"] == "30.0"
    # clipper_admin refuses by itself for a model registered without an image; with one,
    # our container manager refuses and points to the playbook's replicas.
    assert "Cannot resize" in used["set_num_replicas"]["raised"]
    assert used["unlink_model_from_app"] is None
    assert used["get_linked_models_after"] == []
    assert used["predict_unlinked"]["default"] is True
    logs = used["get_clipper_logs"]
    assert logs and Path(user["work"], logs[0]).read_text().count("frontend serving") >= 1
    assert used["stop_inactive_model_versions"] is None
    assert used["get_all_models_after"] == ["ca-model:2"]
    assert used["unregister_application"] is None
    assert used["get_all_apps_after"] == []
    assert used["stop_all"] is None

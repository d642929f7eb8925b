"""Secrets from a playbook's ``env_file`` reach the model containers, and nothing else.

They travel on the SSH channel's input into a 0600 file on the host and reach Docker with
``--env-file``: never on a command line (the host's process list, ``docker inspect``'s
``Path``/``Args``), never in an image layer or the bundle.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from deploy_helpers import HostView, forget

from clipper_deploy import Clipper
from clipper_deploy.orchestration.playbook import load_playbook

MODEL, APP = "secret-model", "secret"
SECRET = "s3cr3t-value-9f2c"

FUNCTION = """
import os


def make():
    def predict(inputs):
        return ["len=%d" % len(os.environ["MODEL_API_KEY"]) for _ in inputs]

    return predict
"""


@pytest.fixture(scope="module")
def deployed(clipper: Clipper, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("secret")
    (folder / "secret_function.py").write_text(FUNCTION)
    (folder / "model.env").write_text(f"# the model's key\nMODEL_API_KEY={SECRET}\n")
    doc = {
        "model": MODEL,
        "function": "secret_function.py:make()",
        "input_type": "doubles",
        "mode": "auto",
        "app": {"name": APP, "default_output": "none", "slo_micros": 1_000_000},
        "replicas": 1,
        "hosts": "h1",
        "container": {"env_file": "model.env"},
    }
    (folder / "secret.yml").write_text(yaml.safe_dump(doc))
    playbook = load_playbook(folder / "secret.yml")
    clipper.deploy_playbook(playbook)
    yield playbook
    forget(clipper, MODEL, APP)


def test_the_replica_sees_the_secret(deployed, clipper: Clipper) -> None:
    reply = clipper.predict(APP, [1.0])
    assert reply["default"] is False and reply["output"] == f"len={len(SECRET)}"


def test_the_secret_is_in_a_private_file_not_on_any_command_line(
    deployed, views: dict[str, HostView]
) -> None:
    view = views["h1"]
    (info,) = json.loads(view.docker("inspect", f"cd-{MODEL}-1-0"))
    assert SECRET not in json.dumps([info["Path"], info["Args"]])
    env_dir = view.upload_dir / "env"
    env_file = env_dir / f"cd-{MODEL}-1-0.env"
    assert env_file.read_text() == f"MODEL_API_KEY={SECRET}\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_dir.stat().st_mode) == 0o700


def test_the_secret_is_in_no_bundle_or_image(deployed, views: dict[str, HostView]) -> None:
    view = views["h1"]
    bundles = view.upload_dir / "bundles"
    for path in Path(bundles).rglob("*"):
        if path.is_file() and path.stat().st_size < 1 << 20:
            assert SECRET.encode() not in path.read_bytes(), path
    history = view.docker("history", "--no-trunc", f"clipper-deploy/{MODEL}:1")
    assert SECRET not in history

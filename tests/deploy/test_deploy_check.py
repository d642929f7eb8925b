"""``invoke deploy --check``: the plan per host, and nothing changed.

On the suite bed, through the real task: after a deploy the check says "nothing to change";
after the function is edited (as version 2) it lists exactly the upload, build, start and
wait on h1, the register and switch on the frontend, and the retire of version 1; the deploy
that follows does exactly those, and a check after it has nothing to change again.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import HostView, forget
from invoke import Context

from clipper_deploy import Clipper
from clipper_deploy.cli import deploy_tasks
from clipper_deploy.testbed.bed import Testbed

MODEL = "check-model"
FUNCTION = "def predict(inputs):\n    return [str({value}) for _ in inputs]\n"
PLAYBOOK = f"""\
model: {MODEL}
version: {{version}}
function: check_function.py:predict
input_type: doubles
mode: auto
hosts: h1
"""


def write(folder: Path, version: int, value: int) -> Path:
    """The playbook of ``version`` and its function (which answers ``value``)."""
    (folder / "check_function.py").write_text(FUNCTION.format(value=value))
    sys.modules.pop("check_function", None)  # an edit, as a fresh `invoke` process sees it
    playbook = folder / "check.yml"
    playbook.write_text(PLAYBOOK.format(version=version))
    return playbook


def run_deploy(suite_bed: Testbed, playbook: Path, capsys: pytest.CaptureFixture, **kw) -> str:
    """Run ``invoke deploy PLAYBOOK [--check]`` on the bed; what it printed."""
    capsys.readouterr()
    deploy_tasks.deploy(Context(), str(playbook), inventory=str(suite_bed.layout.inventory), **kw)
    return capsys.readouterr().out


def plan_lines(out: str) -> list[str]:
    """``host: kind subject`` of each step a check printed (its per-host listing)."""
    steps, host = [], None
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("    ") and line.endswith(":"):
            host = line.strip().removesuffix(":")
        elif line.startswith("    ") and host is not None:
            steps.append(f"{host}: {line.strip().split('  (')[0]}")
    return steps


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, clipper: Clipper) -> Iterator[Path]:
    """Where the playbook and its function are written; the model is removed at the end."""
    yield tmp_path_factory.mktemp("check")
    forget(clipper, MODEL)


@pytest.fixture(scope="module")
def first(folder: Path, suite_bed: Testbed, clipper: Clipper) -> None:
    """Version 1 deployed with the real task."""
    deploy_tasks.deploy(
        Context(), str(write(folder, 1, 1)), inventory=str(suite_bed.layout.inventory)
    )


class TestDeployCheck:
    def test_after_a_deploy_there_is_nothing_to_change(
        self,
        first: None,
        folder: Path,
        suite_bed: Testbed,
        views: dict[str, HostView],
        capsys: pytest.CaptureFixture,
    ) -> None:
        before = views["h1"].running_ids(MODEL, "1")
        out = run_deploy(suite_bed, write(folder, 1, 1), capsys, check=True)
        assert "deploy: nothing to change" in out.splitlines()
        assert "True" not in out and views["h1"].running_ids(MODEL, "1") == before

    def test_after_an_edit_it_lists_upload_tag_start_and_retire_and_changes_nothing(
        self,
        first: None,
        folder: Path,
        suite_bed: Testbed,
        clipper: Clipper,
        views: dict[str, HostView],
        capsys: pytest.CaptureFixture,
    ) -> None:
        out = run_deploy(suite_bed, write(folder, 2, 2), capsys, check=True)
        assert plan_lines(out) == [
            f"frontend: register {MODEL}:2",
            f"frontend: switch {MODEL}:2",
            "h1: upload bundle " + out.split("upload bundle ")[1].split()[0],
            f"h1: tag clipper-deploy/{MODEL}:2",  # version 1's image: the same environment
            f"h1: start cd-{MODEL}-2-0",
            f"h1: wait cd-{MODEL}-2-0",
            f"h1: retire cd-{MODEL}-1-0",
        ]
        assert f"{MODEL}:2" not in clipper.get_all_models()
        assert views["h1"].running_ids(MODEL, "2") == {}

    def test_the_deploy_that_follows_does_exactly_those_steps(
        self,
        first: None,
        folder: Path,
        suite_bed: Testbed,
        capsys: pytest.CaptureFixture,
    ) -> None:
        printed = run_deploy(suite_bed, write(folder, 2, 2), capsys).splitlines()
        out = [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in printed]  # not a terminal
        said = ("Copied", "Shipped", "[h1] built ", "[h1] tagged ", "[h1] started ")
        said += ("[h1] retired ",)
        did = [x for x in out if x.startswith(said) or re.match(r"^\[h1\] cd-\S+ serving$", x)]
        assert did[0].startswith("Copied model data to host h1 (") and "new file(s)" in did[0]
        assert did[1].startswith(f"[h1] tagged clipper-deploy/{MODEL}:2 from the environment's ")
        assert did[2:] == [
            f"[h1] started cd-{MODEL}-2-0",
            f"[h1] cd-{MODEL}-2-0 serving",
            f"[h1] retired cd-{MODEL}-1-0 (kept for rollback)",
        ]
        again = run_deploy(suite_bed, write(folder, 2, 2), capsys, check=True)
        assert "deploy: nothing to change" in again.splitlines()


class TestRollbackAndStopCheck:
    """After the deploys above (version 2 current, version 1 retained on h1)."""

    def test_rollback_check_lists_the_start_switch_and_retire_and_changes_nothing(
        self,
        first: None,
        suite_bed: Testbed,
        clipper: Clipper,
        capsys: pytest.CaptureFixture,
    ) -> None:
        from clipper_deploy.cli import fleet_tasks

        capsys.readouterr()
        fleet_tasks.rollback(
            Context(), MODEL, check=True, inventory=str(suite_bed.layout.inventory)
        )
        assert plan_lines(capsys.readouterr().out) == [
            f"h1: start cd-{MODEL}-1-0",
            f"h1: wait cd-{MODEL}-1-0",
            f"h1: retire cd-{MODEL}-2-0",
            f"frontend: switch {MODEL}:1",
        ]
        assert clipper.admin.get_model(MODEL, "2")["is_current_version"] is True

    def test_stop_check_lists_the_containers_and_removes_none(
        self,
        first: None,
        suite_bed: Testbed,
        views: dict[str, HostView],
        capsys: pytest.CaptureFixture,
    ) -> None:
        capsys.readouterr()
        deploy_tasks.stop(Context(), MODEL, check=True, inventory=str(suite_bed.layout.inventory))
        out = capsys.readouterr().out
        [line] = plan_lines(out)
        assert line.startswith("h1: remove ")
        names = sorted(line.removeprefix("h1: remove ").split(", "))
        assert names == [f"cd-{MODEL}-1-0", f"cd-{MODEL}-2-0"]
        assert "Stopped" not in out
        assert sorted(c.name for c in views["h1"].containers(MODEL)) == names

"""What people see, checked as a person would, on the real bed through the real command.

- In a terminal: a deploy runs in a detached tmux session (its own tmux server); the pane is
  captured while it runs, and captures must show a host's row with its step: the base image's
  bytes and rate as the client ships it (it is removed from the hosts first) and
  the ``load`` of the image the client made (no build: a custom Dockerfile's build steps are
  shown by ``test_deploy_image_archive``). Every capture is kept under
  ``tests/artifacts/progress/`` (gitignored).
- In a pipe: the same command writes plain timestamped lines, with no escape sequence and no
  carriage return anywhere.
- ``status``: the replicas of the retained version say ``retained`` (not ``crashed``), the
  tables fit 80 columns, and ``status --json``, ``audit --json`` and ``lock.status --json``
  parse and hold their documented fields.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from deploy_helpers import HostView

from clipper_deploy import Clipper
from clipper_deploy.images.base import BaseImageSpec
from clipper_deploy.testbed.bed import Testbed

pytestmark = pytest.mark.bed

MODEL = "progress-model"
FUNCTIONS = Path(__file__).resolve().parents[1] / "fleet" / "fleet_functions.py"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "progress"
COMMAND = Path(sys.executable).with_name("clipper-deploy")
CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")  # any control byte but newline
HOST_ROW = re.compile(r"^(h\d)\s+(ship-base|upload|build|load|start|wait)\s+\d+\.\d s\s+(.*)$")


@pytest.fixture(scope="module")
def playbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "progress.yml"
    doc = {
        "model": MODEL,
        "version": 1,
        "function": f"{FUNCTIONS}:tagged()",
        "input_type": "doubles",
        "mode": "auto",
        "sample_input": [[1.0, 2.0]],
        "replicas": 2,
        "hosts": "model_hosts",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def inventory(suite_bed: Testbed, clipper: Clipper) -> Iterator[Path]:
    """The suite bed's inventory, with its frontend up (the ``clipper`` fixture); the model's
    containers are removed at the end."""
    yield suite_bed.layout.inventory
    clipper.stop_models(MODEL)


def command(*argv: str, inventory: Path) -> list[str]:
    return [str(COMMAND), *argv, "--inventory", str(inventory)]


def run(*argv: str, inventory: Path, columns: int = 80, timeout: float = 300) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "FLEET_TAG": "progress"}
    done = subprocess.run(
        command(*argv, inventory=inventory), capture_output=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")[-4000:]
    return done.stdout.decode()


class TestInATerminal:
    def test_a_deploy_in_tmux_shows_each_hosts_step_and_progress_while_it_runs(
        self,
        inventory: Path,
        playbook: Path,
        tmp_path: Path,
        views: dict[str, HostView],
        base_image: tuple[BaseImageSpec, Path],
    ) -> None:
        tmux = shutil.which("tmux")
        assert tmux, "tmux is not installed (bootstrap.sh installs it)"
        base = base_image[0].tag
        for view in views.values():  # the client ships the base image again: 168 MiB, seconds
            if view.has_image(base):  # (a host that held it would relay it, without bytes)
                view.docker("image", "rm", base, check=False)  # an image built on it keeps it
            assert not view.has_image(base), view.name
        socket = tmp_path / "tmux.sock"  # a tmux server of our own, with our environment
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        line = " ".join(command("deploy", str(playbook), "--version", "1", inventory=inventory))
        script = f"FLEET_TAG=progress {line}; echo EXIT=$?; sleep 600"
        size = ["-x", "110", "-y", "40"]
        subprocess.run(
            [tmux, "-S", socket, "new-session", "-d", "-s", "deploy", *size, "--", script],
            check=True,
        )
        captures: list[str] = []
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                pane = subprocess.run(
                    [tmux, "-S", socket, "capture-pane", "-p", "-t", "deploy"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                if not captures or pane != captures[-1]:
                    captures.append(pane)
                if "EXIT=" in pane:
                    break
                time.sleep(0.1)
        finally:
            subprocess.run([tmux, "-S", socket, "kill-server"], check=False)
            (ARTIFACTS / "tmux-deploy.txt").write_text(
                "".join(f"--- capture {n}\n{c}\n" for n, c in enumerate(captures))
            )
        print(f"\n[artifact] {len(captures)} pane captures in {ARTIFACTS / 'tmux-deploy.txt'}")
        assert "EXIT=0" in captures[-1], captures[-1]
        running = [c for c in captures if "EXIT=" not in c]
        rows = [
            m for c in running for m in (HOST_ROW.match(x.rstrip()) for x in c.splitlines()) if m
        ]
        assert rows, "no capture showed a host's step:\n" + "\n---\n".join(running[-5:])
        steps = {m.group(2) for m in rows}
        assert "load" in steps and "build" not in steps, steps  # the client made the image
        loading = [m.group(3) for m in rows if m.group(2) == "load"]
        assert set(loading) == {"clipper-deploy/progress-model:1"}, loading
        assert re.search(r"^Shipped clipper-deploy/base\S* to h\d ", captures[-1], re.M)
        assert re.search(
            r"^\[h1\] loaded clipper-deploy/progress-model:1 \(made on the client, "
            r"no build\) in \d+\.\d s$",
            captures[-1],
            re.M,
        ), captures[-1]
        # the client's base image, in its own row or beside the bundle's upload (they overlap)
        shipped = [m.group(3) for m in rows if m.group(3).startswith("base image ")]
        assert any(re.search(r"\d+\.\d/\d+\.\d MiB +\d+\.\d MiB/s", d) for d in shipped), shipped
        mid_load = next(c for c in running if re.search(r"^h\d\s+load\s", c, re.M))
        (ARTIFACTS / "tmux-mid-load.txt").write_text(mid_load)
        assert "deploy progress-model:1" in mid_load and "package" in mid_load
        assert re.search(r"deploy progress-model:1\s+\d+\.\d s\s+done", captures[-1])


class TestInAPipe:
    def test_the_same_deploy_is_plain_timestamped_lines(
        self, inventory: Path, playbook: Path
    ) -> None:
        out = run("deploy", str(playbook), "--version", "2", inventory=inventory)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "pipe-deploy.txt").write_text(out)
        assert not CONTROL.search(out.encode()), repr(out[:2000])
        lines = out.splitlines()
        progress = lines[: next(i for i, x in enumerate(lines) if x.startswith("True"))]
        assert all(re.match(r"^\d\d:\d\d:\d\d ", x) for x in progress), progress
        text = "\n".join(progress)
        # Version 1's environment: its image is tagged (no build); a new one shows its steps.
        assert re.search(r" \[h\d\] (build: step \d+/\d+ |tagged clipper-deploy/)", text), text
        assert re.search(r" prepare: \d+\.\d s$", text, re.M), text  # a phase and its time
        assert re.search(r" deploy progress-model:2: done in \d+\.\d s$", text, re.M), text
        assert " Published model to Clipper" in text


class TestStatus:
    def test_the_retained_versions_replicas_say_retained_and_the_tables_fit(
        self, inventory: Path
    ) -> None:
        doc = json.loads(run("status", "--json", inventory=inventory))
        mine = [r for r in doc["replicas"] if r["model"] == MODEL]
        by_version = {v: [r["state"] for r in mine if r["version"] == v] for v in ("1", "2")}
        assert by_version == {"1": ["retained", "retained"], "2": ["serving", "serving"]}, mine
        assert {r["docker_state"] for r in mine if r["version"] == "1"} == {"exited"}
        assert all(r["current"] == (r["version"] == "2") for r in mine)
        assert {m["version"]: m["current"] for m in doc["models"] if m["name"] == MODEL} == {
            "1": False,
            "2": True,
        }
        assert doc["frontend"]["running"] is True and doc["unreachable"] == {}
        text = run("status", inventory=inventory, columns=80)
        assert max(len(x) for x in text.splitlines()) <= 80, text
        rows = [x for x in text.splitlines() if f"{MODEL}:1" in x]
        assert len(rows) == 2 and all("retained" in x and "crashed" not in x for x in rows), text

    def test_audit_and_lock_status_print_json_for_scripts(self, inventory: Path) -> None:
        audit = json.loads(run("audit", "--model", MODEL, "--json", inventory=inventory))
        assert audit["log"].endswith("audit.log")
        deploys = [e for e in audit["events"] if e["action"] == "deploy"]
        assert [(e["version"], e["result"]) for e in deploys][-2:] == [("1", "ok"), ("2", "ok")]
        assert {"time", "user", "hosts", "detail"} <= set(deploys[-1])
        lock = json.loads(run("lock.status", MODEL, "--json", inventory=inventory))
        assert lock == {"model": MODEL, "path": lock["path"], "locked": False, "holder": None}
        table = run("audit", "--model", MODEL, inventory=inventory, columns=80)
        assert max(len(x) for x in table.splitlines()) <= 80, table
        assert len([x for x in table.splitlines() if " deploy " in x]) >= 2

    def test_watch_without_a_terminal_prints_a_snapshot_per_interval(self, inventory: Path) -> None:
        out = run("status", "--watch", "--interval", "0.5", "--count", "2", inventory=inventory)
        assert not CONTROL.search(out.encode())
        headers = [x for x in out.splitlines() if re.match(r"^\d\d:\d\d:\d\d status, every", x)]
        assert len(headers) == 2 and out.count("Replicas") == 2

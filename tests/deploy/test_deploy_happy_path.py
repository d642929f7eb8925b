"""Deploying the seed's example for real: two hosts, two replicas, every one of them serving.

The playbook ``playbooks/example.yml`` is deployed to h1 and h2 of the suite bed through the
frontend, re-run (nothing changes), replaced by a second version, and stopped. The tests of a
module run in order and build on each other, as a user's session would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import HostView, Transcript, forget

from clipper_deploy import Clipper
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.orchestration.playbook import Playbook, load_playbook
from clipper_deploy.settings import REPLICA_KEY_PATH

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "example.yml"
MODEL = "example-model"
APP = "example"
HOSTS = ("h1", "h2")
QUERIES = 8


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    """The example playbook, on two of the bed's three hosts."""
    return dataclasses.replace(load_playbook(PLAYBOOK), hosts=":".join(HOSTS), replicas=2)


@pytest.fixture(scope="module")
def first(
    clipper: Clipper, playbook: Playbook, transcript: Transcript
) -> Iterator[dict[str, object]]:
    """Version 1 deployed: what the call returned and printed. The model and its app are
    removed from the hosts and the frontend when the module ends."""
    mark = transcript.mark()
    returned = clipper.deploy_playbook(playbook)
    yield {"returned": returned, "lines": transcript.since(mark)}
    forget(clipper, MODEL, APP)


def replicas_of(clipper: Clipper, version: str) -> dict[str, dict[str, object]]:
    """The frontend's view of the model version's connected replicas, by replica id."""
    return {
        c["replica_id"]: c
        for c in clipper.admin.get_all_containers()
        if c["model_name"] == MODEL
        and c["model_version"] == version
        and c["state"] != "disconnected"
    }


def ask(clipper: Clipper, playbook: Playbook, times: int = QUERIES) -> list[dict[str, object]]:
    inputs = playbook.sample_input
    return [clipper.predict(APP, inputs[i % len(inputs)]) for i in range(times)]


def running(views: dict[str, HostView], version: str) -> dict[str, str]:
    """``{container name: id}`` of the version's running containers on h1 and h2."""
    found: dict[str, str] = {}
    for name in HOSTS:
        found.update(views[name].running_ids(MODEL, version))
    return found


class TestFirstDeploy:
    def test_returns_true_after_the_seeds_lines(self, first: dict[str, object]) -> None:
        lines = first["lines"]
        assert first["returned"] is True
        for expected in (
            "Supplied environment details",
            "Serialized and supplied predict function",
            "Published model to Clipper",
        ):
            assert expected in lines
        for host in HOSTS:
            assert any(line.startswith(f"Copied model data to host {host} (") for line in lines)
        assert lines[-2:] == [
            f"Model {MODEL}:1 is current: 2 replica(s) serving",
            f"Linked model {MODEL} to application {APP}",
        ]

    def test_puts_one_replica_on_each_host(self, first: object, views: dict[str, HostView]) -> None:
        assert {h: list(views[h].running_ids(MODEL, "1")) for h in HOSTS} == {
            "h1": [f"cd-{MODEL}-1-0"],
            "h2": [f"cd-{MODEL}-1-1"],
        }

    def test_every_replica_answers_queries(
        self, first: object, clipper: Clipper, playbook: Playbook
    ) -> None:
        replies = ask(clipper, playbook)
        assert [r["default"] for r in replies] == [False] * QUERIES
        served = {rid: c["queries_served"] for rid, c in replicas_of(clipper, "1").items()}
        assert set(served) == {f"h1/cd-{MODEL}-1-0", f"h2/cd-{MODEL}-1-1"}
        assert all(n > 0 for n in served.values()), served

    def test_replicas_run_locked_down_and_still_answer(
        self, first: object, views: dict[str, HostView]
    ) -> None:
        import json

        (info,) = json.loads(views["h1"].docker("inspect", f"cd-{MODEL}-1-0"))
        host = info["HostConfig"]
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] is True
        assert "/tmp" in host["Tmpfs"]
        assert host["PidsLimit"] == dc.PIDS_LIMIT
        assert host["Memory"] > 0 and host["NanoCpus"] > 0
        assert info["Config"]["User"] == dc.CONTAINER_USER
        assert info["State"]["Running"] is True and info["RestartCount"] == 0
        # The model files and the replica's key, read-only; nothing else of the host.
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert set(mounts) == {"/model", REPLICA_KEY_PATH}
        assert all((m["Type"], m["RW"]) == ("bind", False) for m in mounts.values())
        assert (
            mounts["/model"]["Source"]
            == f"/var/lib/clipper-deploy/bundles/{info['Config']['Labels'][dc.BUNDLE]}/model"
        )

    def test_a_changed_func_pkl_is_refused_before_it_is_unpickled(
        self, first: object, views: dict[str, HostView], tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        import cloudpickle

        from clipper_deploy.shell import run
        from clipper_deploy.testbed import commands

        # The version's own model.json, beside another pickle, mounted as a replica's are.
        (replica,) = [c for c in views["h1"].containers(MODEL) if c.version == "1"]
        real = views["h1"].upload_dir / "bundles" / replica.bundle / "model"
        tampered = tmp_path_factory.mktemp("tampered")  # /tmp: the hosts see it
        (tampered / "model.json").write_bytes((real / "model.json").read_bytes())
        (tampered / "func.pkl").write_bytes(
            cloudpickle.dumps(lambda inputs: ["not the packaged function"])
        )
        tampered.chmod(0o755)
        for name in ("model.json", "func.pkl"):
            (tampered / name).chmod(0o644)
        ran = run(
            commands.docker_cli(
                views["h1"].layout,
                *("run", "--rm", "--network", "none"),
                *("--mount", f"type=bind,source={tampered},target=/model,readonly"),
                *("--env", f"CLIPPER_MODEL_NAME={MODEL}", "--env", "CLIPPER_MODEL_VERSION=1"),
                f"clipper-deploy/{MODEL}:1",
            ),
            check=False,
        )
        output = ran.stdout + ran.stderr
        assert ran.returncode != 0
        assert "func.pkl has sha256" in output and "but model.json records" in output
        assert "changed or corrupted after it was packaged" in output


class TestRerun:
    def test_says_already_deployed_and_serving_and_changes_nothing(
        self,
        first: object,
        clipper: Clipper,
        playbook: Playbook,
        transcript: Transcript,
        views: dict[str, HostView],
    ) -> None:
        before = running(views, "1")
        mark = transcript.mark()
        assert clipper.deploy_playbook(playbook) is True
        lines = transcript.since(mark)
        assert f"Model {MODEL}:1 is already deployed and serving: nothing to do" in lines
        assert not [line for line in lines if "Copied model data" in line or "] built " in line]
        assert running(views, "1") == before


class TestSecondVersion:
    @pytest.fixture(scope="class")
    @classmethod
    def second(cls, first: object, clipper: Clipper, playbook: Playbook) -> bool:
        return clipper.deploy_playbook(playbook, version=2)

    def test_becomes_current_with_every_replica_serving(
        self, second: bool, clipper: Clipper, playbook: Playbook
    ) -> None:
        assert second is True
        assert clipper.admin.get_model(MODEL, "2")["is_current_version"] is True
        replies = ask(clipper, playbook)
        assert [r["default"] for r in replies] == [False] * QUERIES
        served = {rid: c["queries_served"] for rid, c in replicas_of(clipper, "2").items()}
        assert set(served) == {f"h1/cd-{MODEL}-2-0", f"h2/cd-{MODEL}-2-1"}
        assert all(n > 0 for n in served.values()), served

    def test_stops_the_first_versions_containers_and_keeps_them_for_rollback(
        self, second: bool, views: dict[str, HostView]
    ) -> None:
        assert running(views, "1") == {}
        kept = [c.name for h in HOSTS for c in views[h].containers(MODEL) if c.version == "1"]
        assert sorted(kept) == [f"cd-{MODEL}-1-0", f"cd-{MODEL}-1-1"]


class TestStopModels:
    def test_removes_every_container_of_the_model_from_every_host(
        self, first: object, clipper: Clipper, views: dict[str, HostView]
    ) -> None:
        removed = clipper.stop_models(MODEL)
        assert sorted(removed) == list(HOSTS)
        assert [c.name for v in views.values() for c in v.containers(MODEL)] == []

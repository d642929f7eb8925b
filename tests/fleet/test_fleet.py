"""Fleet operations on the real 3-host test bed: rolling rollout under load, rollback,
faults in the middle of a rollout, the restart policy, the fleet lock, scheduled redeploys.

One model (``fleet-model``, app ``fleet``) whose function answers a tag naming its build.
The tests run in file order and each leaves one version current and serving on all hosts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from clipper_deploy import Clipper
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.orchestration.deploy import DeployError
from clipper_deploy.orchestration.lock import LockHeld
from clipper_deploy.orchestration.playbook import Playbook, load_playbook
from clipper_deploy.orchestration.rollout import RolloutError, current_version
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testing.load import SteadyLoad

FUNCTIONS = Path(__file__).with_name("fleet_functions.py")
MODEL, APP = "fleet-model", "fleet"
QUERY = [1.0, 2.0]


def write_playbook(directory: Path, factory: str = "tagged()", **changes) -> Playbook:
    doc = {
        "model": MODEL,
        "version": 1,
        "function": f"{FUNCTIONS}:{factory}",
        "input_type": "doubles",
        "mode": "auto",
        "app": {"name": APP, "default_output": "default", "slo_micros": 1_000_000},
        "replicas": 3,
        "hosts": "model_hosts",
        "smoke": [{"input": QUERY}],
        "serial": 1,
        "max_fail_percentage": 0,
        "schedule": "* * * * *",
        **changes,
    }
    path = directory / f"fleet-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(doc))
    return load_playbook(path)


@pytest.fixture(scope="module")
def clipper(suite_bed: Testbed, tmp_path_factory) -> Iterator[Clipper]:
    """The suite bed's frontend with version 1 (tag v1) of the fleet model on 3 hosts."""
    clipper = Clipper(suite_bed.layout.inventory, connect_timeout=5, ready_timeout=90)
    clipper.start()
    os.environ["FLEET_TAG"] = "v1"
    playbook = write_playbook(tmp_path_factory.mktemp("fleet"))
    clipper.deploy_playbook(playbook)
    yield clipper
    clipper.stop_models(MODEL)


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    return tmp_path


def answer(clipper: Clipper) -> dict:
    return clipper.predict(APP, QUERY)


def current(clipper: Clipper) -> str:
    with clipper.fleet(clipper.inventory.hosts("model_hosts")) as fleet:
        record = current_version(fleet, MODEL)
    assert record is not None
    return record["model_version"]


def running_versions(clipper: Clipper) -> dict[str, set[str]]:
    """Per host: the versions of the fleet model whose containers run."""
    return {
        host: {c.version for c in containers if c.model == MODEL and c.state == "running"}
        for host, containers in clipper.containers().items()
    }


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class TestRollingRollout:
    def test_under_steady_load_no_query_fails_or_gets_a_default(
        self, clipper: Clipper, playbook_dir: Path
    ) -> None:
        os.environ["FLEET_TAG"] = "v2"
        playbook = write_playbook(playbook_dir)
        url = f"{clipper.query.base_url}/{APP}/predict"
        with SteadyLoad(url, {"input": QUERY}, rate=40, max_seconds=150) as load:
            time.sleep(1)
            result = clipper.rollout_playbook(playbook, 2)
            time.sleep(1)
        assert result is not None and result.batches == [["h1"], ["h2"], ["h3"]]
        assert load.failed == [] and load.defaults == []
        outputs = load.outputs()
        assert len(outputs) > 40 and set(outputs) == {"v1", "v2"}
        assert outputs[-1] == "v2"
        assert running_versions(clipper) == {"h1": {"2"}, "h2": {"2"}, "h3": {"2"}}

    def test_old_containers_are_retained_stopped_for_rollback(self, clipper: Clipper) -> None:
        for containers in clipper.containers().values():
            v1 = [c for c in containers if c.model == MODEL and c.version == "1"]
            assert len(v1) == 1 and v1[0].state == "exited"


class TestRollback:
    def test_switches_back_to_the_previous_retained_version(self, clipper: Clipper) -> None:
        assert clipper.rollback(MODEL) == "1"
        assert current(clipper) == "1"
        reply = answer(clipper)
        assert (reply["output"], reply["default"]) == ("v1", False)
        assert running_versions(clipper) == {"h1": {"1"}, "h2": {"1"}, "h3": {"1"}}
        assert clipper.rollback(MODEL, to=2) == "2"
        assert answer(clipper)["output"] == "v2"

    def test_to_a_version_never_deployed_names_it(self, clipper: Clipper) -> None:
        with pytest.raises(DeployError, match="version 77 of fleet-model is not retained"):
            clipper.rollback(MODEL, to=77)
        assert current(clipper) == "2"


class TestFaultsDuringRollouts:
    def test_a_host_cut_mid_rollout_stops_it_and_every_host_returns_to_the_old_version(
        self, clipper: Clipper, suite_bed: Testbed, playbook_dir: Path
    ) -> None:
        os.environ["FLEET_TAG"] = "v3"
        playbook = write_playbook(playbook_dir)
        outcome: dict = {}

        def roll() -> None:
            try:
                clipper.rollout_playbook(playbook, 3)
            except Exception as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=roll)
        thread.start()
        try:
            wait_for(lambda: current(clipper) == "3", 120, "batch 1 (h1) to switch to v3")
            suite_bed.cut("h2")
            thread.join(180)
        finally:
            suite_bed.heal("h2")
        error = outcome.get("error")
        assert isinstance(error, RolloutError)
        assert list(error.failures) == ["h2"]
        assert "batch 2 of 3" in str(error) and "back on version 2" in str(error)
        assert current(clipper) == "2"
        wait_for(lambda: not answer(clipper)["default"], 20, "version 2 to answer")
        assert answer(clipper)["output"] == "v2"
        versions = running_versions(clipper)
        assert all("3" not in v for v in versions.values()), versions
        assert versions["h1"] == {"2"} and versions["h3"] == {"2"}
        registered = [m for m in clipper.get_all_models() if m.startswith(f"{MODEL}:")]
        assert f"{MODEL}:3" not in registered

    def test_a_stopped_docker_engine_is_named_and_nothing_is_left_half_deployed(
        self, clipper: Clipper, suite_bed: Testbed, playbook_dir: Path
    ) -> None:
        os.environ["FLEET_TAG"] = "v4"
        suite_bed.stop("h3", services=("dockerd",))
        try:
            with pytest.raises(RolloutError) as raised:
                clipper.rollout_playbook(write_playbook(playbook_dir), 4)
        finally:
            suite_bed.start("h3")
        assert list(raised.value.failures) == ["h3"]
        assert "Docker engine on h3 is not running" in raised.value.failures["h3"]
        assert current(clipper) == "2"
        wait_for(
            lambda: running_versions(clipper) == {"h1": {"2"}, "h2": {"2"}, "h3": {"2"}},
            30,
            "version 2 on every host (h3's comes back with its engine)",
        )
        for containers in clipper.containers().values():
            assert not [c for c in containers if c.model == MODEL and c.version == "4"]


class TestRestartPolicy:
    def test_a_killed_replica_comes_back_and_serves_within_5_seconds(
        self, clipper: Clipper, suite_bed: Testbed
    ) -> None:
        name = dc.container_name(MODEL, "2", 0)
        inventory = clipper.inventory
        with clipper.fleet([inventory.host("h1")]) as fleet:
            host = inventory.host("h1")
            pid = int(fleet.run(host, ["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout)
            os.kill(pid, 9)
            killed = time.monotonic()
            replica = dc.replica_id("h1", name)

            def back() -> bool:
                restarted = fleet.run(host, ["docker", "inspect", "-f", "{{.RestartCount}}", name])
                serving = [
                    c
                    for c in fleet.admin.get_all_containers()
                    if c["replica_id"] == replica and c["state"] != "disconnected"
                ]
                return int(restarted.stdout) >= 1 and bool(serving)

            wait_for(back, 5, "the killed replica to serve again")
            assert time.monotonic() - killed < 5


class TestFleetLock:
    def test_a_second_rollout_of_the_model_fails_naming_the_holder(
        self, clipper: Clipper, playbook_dir: Path
    ) -> None:
        holder = clipper.lock(MODEL, "rollout", "9")
        holder.acquire()
        try:
            with pytest.raises(LockHeld) as raised:
                clipper.rollout_playbook(write_playbook(playbook_dir), 10)
        finally:
            holder.release()
        message = str(raised.value)
        assert "rollout" in message and "9" in message and "lock.release" in message
        assert current(clipper) == "2"

    def test_a_second_rollout_with_lock_wait_waits_for_the_first(
        self, clipper: Clipper, playbook_dir: Path
    ) -> None:
        holder = clipper.lock(MODEL, "rollout", "9")
        holder.acquire()
        releaser = threading.Timer(1.5, holder.release)
        releaser.start()
        os.environ["FLEET_TAG"] = "v5"
        clipper.rollout_playbook(write_playbook(playbook_dir), 5, lock_wait=60)
        assert current(clipper) == "5"
        events = clipper.audit_log().read(MODEL)
        assert events[-1]["action"] == "rollout" and events[-1]["result"] == "ok"
        assert events[-1]["hosts"] == ["h1", "h2", "h3"]


class TestScheduledRedeploy:
    def test_a_failing_factory_is_logged_the_old_version_serves_and_the_next_tick_runs(
        self, clipper: Clipper, playbook_dir: Path, monkeypatch
    ) -> None:
        monkeypatch.setenv("FLEET_FLAKY_COUNTER", str(playbook_dir / "calls"))
        playbook = write_playbook(playbook_dir, factory="flaky()")
        fake = [datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)]

        def sleep(seconds: float) -> None:
            fake[0] += timedelta(seconds=seconds)

        runs = clipper.schedule_redeploys(playbook, max_runs=2, clock=lambda: fake[0], sleep=sleep)
        assert [r.result for r in runs] == ["failed", "ok"]
        assert "training data is not there yet" in str(runs[0].error)
        assert current(clipper) == "6"
        assert answer(clipper)["output"] == "trained-2"
        scheduled = [
            e for e in clipper.audit_log().read(MODEL) if e["action"] == "scheduled-redeploy"
        ]
        assert [e["result"] for e in scheduled[-2:]] == ["failed", "ok"]

"""The frontend's reading of the audit log's tail and of the fleet locks (bounded)."""

from __future__ import annotations

import json
from pathlib import Path

from clipper_deploy.frontend.dashboard_state import host_of, rollout_progress
from clipper_deploy.frontend.state_files import AuditTail, lock_holders, tail_lines
from clipper_deploy.orchestration.audit import audit_event, encode_event
from clipper_deploy.orchestration.lock import acquire_command


def write_events(path: Path, count: int) -> None:
    with open(path, "a") as f:
        for i in range(count):
            event = audit_event("deploy", "m", version=str(i), hosts=["h1"], user="u@x")
            f.write(encode_event(event) + "\n")


class TestAuditTail:
    def test_reads_the_last_events_as_the_deployers_write_them(self, tmp_path: Path) -> None:
        write_events(tmp_path / "audit.log", 30)
        events, error = AuditTail(tmp_path).read(5)
        assert error is None
        assert [e["version"] for e in events] == ["25", "26", "27", "28", "29"]

    def test_reads_only_the_tail_of_a_big_log(self, tmp_path: Path) -> None:
        write_events(tmp_path / "audit.log", 5000)
        tail = AuditTail(tmp_path, max_bytes=8192)
        events, _ = tail.read(1000)
        assert 0 < len(events) < 100 and events[-1]["version"] == "4999"
        assert len(tail_lines(tmp_path / "audit.log", 8192)) == len(events)

    def test_skips_broken_lines_and_sees_new_ones(self, tmp_path: Path) -> None:
        log = tmp_path / "audit.log"
        write_events(log, 2)
        with open(log, "a") as f:
            f.write('{"cut in the mid\n[1, 2]\n')
        tail = AuditTail(tmp_path)
        assert len(tail.read(10)[0]) == 2
        write_events(log, 1)
        assert len(tail.read(10)[0]) == 3

    def test_no_log_yet_is_no_events_and_no_error(self, tmp_path: Path) -> None:
        assert AuditTail(tmp_path).read(10) == ([], None)


class TestLocks:
    def test_a_lock_taken_by_the_deployers_command_is_seen(self, tmp_path: Path) -> None:
        import subprocess

        holder = {
            "action": "rollout",
            "version": "7",
            "user": "a@b",
            "started": "2024-01-01T00:00:00Z",
        }
        subprocess.run(["sh", "-c", acquire_command(str(tmp_path), "iris", holder)], check=True)
        (found,) = lock_holders(tmp_path)
        assert found == {**holder, "model": "iris"}

    def test_unreadable_holder_is_reported_not_raised(self, tmp_path: Path) -> None:
        (tmp_path / "locks" / "m").mkdir(parents=True)
        (found,) = lock_holders(tmp_path)
        assert found["model"] == "m" and "not written" in found["unreadable"]
        (tmp_path / "locks" / "m" / "holder.json").write_text("{not json")
        assert "unreadable" in lock_holders(tmp_path)[0]

    def test_no_locks_folder(self, tmp_path: Path) -> None:
        assert lock_holders(tmp_path) == []


def replica(host: str, version: str, state: str = "idle", model: str = "m") -> dict:
    return {
        "replica_id": f"{host}/cd-{model}-{version}-1",
        "model_name": model,
        "model_version": version,
        "state": state,
        "peer": "10.0.0.1:5555",
    }


class TestRolloutProgress:
    def test_hosts_are_done_rolling_or_waiting(self) -> None:
        replicas = [
            replica("h1", "2"),
            replica("h2", "2"),
            replica("h2", "1"),
            replica("h3", "1"),
            replica("h3", "2", state="disconnected"),
            replica("h9", "5", model="other"),
        ]
        holder = {
            "model": "m",
            "action": "rollout",
            "version": "2",
            "started": "2024-01-01T00:00:00Z",
        }
        p = rollout_progress(holder, replicas, current="2")
        assert [(h["host"], h["state"]) for h in p["hosts"]] == [
            ("h1", "done"),
            ("h2", "rolling"),
            ("h3", "waiting"),
        ]
        assert (p["done"], p["total"], p["switched"]) == (1, 3, True)
        assert p["elapsed_s"] > 0

    def test_host_of_a_replica_not_named_by_clipper_deploy_is_its_address(self) -> None:
        assert host_of({"replica_id": "r1", "peer": "10.1.2.3:4000"}) == "10.1.2.3"
        assert json.dumps(host_of(replica("h4", "1"))) == '"h4"'

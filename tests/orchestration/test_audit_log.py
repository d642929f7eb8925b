"""The audit log, for real: appends and reads through a LocalConnection on a tmp root."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clipper_deploy.hosts.connection import connection_for
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.audit import MAX_LINE_BYTES, AuditLog, AuditLogWarning
from clipper_deploy.orchestration.remote_files import StateFileError, local_user

FRONTEND = Host(name="frontend", address="127.0.0.1", connection="local")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "state root"


def audit(root: Path, **kwargs) -> AuditLog:
    return AuditLog(connection_for(FRONTEND), str(root), **kwargs)


def log_lines(root: Path) -> list[str]:
    return (root / "audit.log").read_text().splitlines()


class TestRecord:
    def test_appends_one_json_line_with_every_field(self, root):
        when = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
        written = audit(root, now=lambda: when).record(
            "rollout", "iris", version="7", hosts=["h1", "h2"]
        )
        assert log_lines(root) == [json.dumps(written)]
        assert written == {
            "time": "2024-05-01T10:00:00Z",
            "user": local_user(),
            "action": "rollout",
            "model": "iris",
            "version": "7",
            "hosts": ["h1", "h2"],
            "result": "ok",
            "detail": None,
        }

    def test_each_event_is_a_new_line_at_the_end(self, root):
        log = audit(root)
        for action in ("deploy", "rollout", "rollback", "stop", "scheduled-redeploy"):
            log.record(action, "iris")
        assert [json.loads(line)["action"] for line in log_lines(root)] == [
            "deploy",
            "rollout",
            "rollback",
            "stop",
            "scheduled-redeploy",
        ]

    def test_a_failure_keeps_its_error_text(self, root):
        audit(root).record("deploy", "iris", result="failed", detail=RuntimeError("h2: exit 1"))
        assert json.loads(log_lines(root)[0])["detail"] == "RuntimeError: h2: exit 1"

    def test_shell_characters_are_stored_verbatim(self, root, tmp_path):
        detail = "$(touch pwned) `touch pwned` 'quoted' \"double\" \\ % %s\nsecond line"
        audit(root).record("deploy", "iris", result="failed", detail=detail)
        assert json.loads(log_lines(root)[0])["detail"] == detail
        assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()

    def test_user_can_be_overridden(self, root):
        assert audit(root, user="scheduler@fe").record("stop", "iris")["user"] == "scheduler@fe"

    def test_an_unwritable_log_is_an_error_naming_the_host(self, tmp_path):
        blocker = tmp_path / "a file"
        blocker.write_text("")
        with pytest.raises(StateFileError, match=r"^127\.0\.0\.1: cannot append to the audit"):
            audit(blocker / "root").record("deploy", "iris")


class TestConcurrentAppends:
    def test_appends_from_many_deployers_never_interleave(self, root):
        writers, each = 8, 12
        # Lines close to the size limit make interleaving likely if writes were split.
        hosts = [f"host-{i:03d}.fleet.example.com" for i in range(100)]
        start = threading.Barrier(writers)

        def write(n: int) -> None:
            log = audit(root, user=f"writer{n}@test")
            start.wait()
            for i in range(each):
                log.record("rollout", f"model{n}", version=str(i), hosts=hosts, detail="x" * 500)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        raw = (root / "audit.log").read_bytes()
        lines = raw.decode().splitlines()
        assert raw.endswith(b"\n") and len(lines) == writers * each
        assert max(len(line) + 1 for line in lines) > 3000
        assert all(len(line) + 1 <= MAX_LINE_BYTES for line in lines)
        events = [json.loads(line) for line in lines]  # every line is whole JSON
        for n in range(writers):
            mine = [e["version"] for e in events if e["user"] == f"writer{n}@test"]
            assert mine == [str(i) for i in range(each)]  # each writer's order is kept


class TestRead:
    @pytest.fixture
    def log(self, root) -> AuditLog:
        clock = iter(datetime(2024, 5, 1, 10, m, tzinfo=UTC) for m in range(60))
        log = audit(root, now=lambda: next(clock))
        log.record("deploy", "iris", version="1")
        log.record("deploy", "digits", version="1")
        log.record("rollout", "iris", version="2", result="failed", detail="h2 down")
        log.record("rollback", "iris", version="1")
        return log

    def test_reads_every_event_oldest_first(self, log):
        assert [(e["action"], e["model"]) for e in log.read()] == [
            ("deploy", "iris"),
            ("deploy", "digits"),
            ("rollout", "iris"),
            ("rollback", "iris"),
        ]

    def test_filters_by_model(self, log):
        assert [e["version"] for e in log.read("iris")] == ["1", "2", "1"]
        assert [e["action"] for e in log.read(model="digits")] == ["deploy"]
        assert log.read("unknown") == []

    def test_limit_keeps_the_most_recent(self, log):
        assert [e["action"] for e in log.read("iris", limit=2)] == ["rollout", "rollback"]
        assert log.read(limit=0) == []
        assert len(log.read(limit=100)) == 4

    def test_a_missing_log_reads_as_empty(self, root):
        assert audit(root).read() == []

    def test_corrupt_lines_are_skipped_with_a_warning(self, log, root):
        with (root / "audit.log").open("a") as f:
            f.write('{"action": "deploy", "model": "ir\n')  # a line cut short
            f.write("garbage\n")
        log.record("stop", "iris")
        with pytest.warns(AuditLogWarning) as caught:
            events = log.read("iris")
        assert [str(w.message).split(": ")[0].rsplit(":", 1)[1] for w in caught] == ["5", "6"]
        assert [e["action"] for e in events] == ["deploy", "rollout", "rollback", "stop"]

    def test_bad_limit(self, log):
        with pytest.raises(ValueError, match="limit"):
            log.read(limit=-1)


class TestTrack:
    def test_records_ok_when_the_block_succeeds(self, root):
        log = audit(root)
        with log.track("rollout", "iris", version="7", hosts=["h1"]) as event:
            event["hosts"].append("h2")
        [written] = log.read()
        assert (written["result"], written["hosts"], written["version"]) == (
            "ok",
            ["h1", "h2"],
            "7",
        )

    def test_records_failed_with_the_error_and_reraises(self, root):
        log = audit(root)
        with (
            pytest.raises(RuntimeError, match="h2 unreachable"),
            log.track("deploy", "iris", version="7"),
        ):
            raise RuntimeError("h2 unreachable")
        [written] = log.read()
        assert written["result"] == "failed"
        assert written["detail"] == "RuntimeError: h2 unreachable"

    def test_the_block_may_set_its_own_result(self, root):
        log = audit(root)
        with log.track("rollout", "iris") as event:
            event.update(result="partial", detail="1 of 4 hosts failed")
        assert log.read()[0]["result"] == "partial"

    def test_a_log_that_cannot_be_written_does_not_hide_the_blocks_error(self, tmp_path):
        blocker = tmp_path / "a file"
        blocker.write_text("")
        log = audit(blocker / "root")
        with (
            pytest.warns(RuntimeWarning, match="could not write the audit log"),
            pytest.raises(KeyError),
            log.track("deploy", "iris"),
        ):
            raise KeyError("the real problem")


def test_times_are_utc_and_sortable(root):
    base = datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC)
    moments = iter([base, base + timedelta(seconds=1)])
    log = audit(root, now=lambda: next(moments))
    log.record("deploy", "iris")
    log.record("deploy", "iris")
    times = [e["time"] for e in log.read()]
    assert times == ["2024-05-01T23:59:59Z", "2024-05-02T00:00:00Z"] == sorted(times)

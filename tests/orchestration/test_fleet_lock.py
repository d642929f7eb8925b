"""The fleet lock, for real: its shell commands run through a LocalConnection on a tmp root.

A LocalConnection runs the same command lines a Fabric Connection would send over SSH, so
this is the lock's behaviour minus the network. Competing deployers are threads, each with its
own connection (so each command is its own shell process, as for two deployers).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from clipper_deploy.hosts.connection import LocalConnection, connection_for
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.lock import FleetLock, LockError, LockHeld

FRONTEND = Host(name="frontend", address="127.0.0.1", connection="local")


def conn() -> LocalConnection:
    connection = connection_for(FRONTEND)
    assert isinstance(connection, LocalConnection)
    return connection


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "state root"  # a space, to prove the quoting


def lock(root: Path, **kwargs) -> FleetLock:
    kwargs.setdefault("model", "iris")
    return FleetLock(conn(), str(root), **kwargs)


def holder_file(root: Path, model: str = "iris") -> Path:
    return root / "locks" / model / "holder.json"


class TestAcquire:
    def test_creates_the_lock_folder_with_the_holder(self, root):
        mine = lock(root, action="rollout", version="7")
        holder = mine.acquire()
        on_disk = json.loads(holder_file(root).read_text())
        assert on_disk == holder
        assert on_disk["action"] == "rollout" and on_disk["version"] == "7"
        assert on_disk["pid"] == os.getpid() and on_disk["hostname"] == socket.gethostname()
        assert on_disk["user"].endswith("@" + socket.gethostname())
        assert on_disk["started"].endswith("Z") and len(on_disk["token"]) == 32
        assert mine.held

    def test_status_shows_the_holder_then_nothing_after_release(self, root):
        mine = lock(root)
        assert mine.status() is None
        holder = mine.acquire()
        assert lock(root).status() == holder
        assert mine.release() is True
        assert mine.status() is None and not holder_file(root).parent.exists()
        assert not mine.held

    def test_locks_of_different_models_are_independent(self, root):
        with lock(root, model="iris"), lock(root, model="digits"):
            assert {p.name for p in (root / "locks").iterdir()} == {"iris", "digits"}

    def test_the_same_object_cannot_take_it_twice(self, root):
        mine = lock(root)
        mine.acquire()
        with pytest.raises(RuntimeError, match="already held"):
            mine.acquire()

    def test_values_with_shell_characters_are_stored_verbatim(self, root):
        version = '7\'; touch pwned; echo "$(id)" `id` #'
        lock(root, version=version).acquire()
        assert json.loads(holder_file(root).read_text())["version"] == version
        assert not list(Path.cwd().glob("pwned")) and not (root / "pwned").exists()


class TestCompetition:
    def test_a_second_deployer_fails_at_once_naming_the_holder(self, root):
        lock(root, action="rollout", version="7").acquire()
        begin = time.monotonic()
        with pytest.raises(LockHeld) as caught:
            lock(root, action="deploy", version="8").acquire()
        assert time.monotonic() - begin < 2
        message = str(caught.value)
        assert message.startswith("model iris is locked: rollout of version 7 by ")
        assert f"(pid {os.getpid()} on {socket.gethostname()}) since 20" in message
        assert "`invoke lock.release iris`" in message
        assert caught.value.holder["version"] == "7"

    def test_of_many_deployers_starting_together_exactly_one_gets_it(self, root):
        contenders = 8
        start = threading.Barrier(contenders)
        outcomes: list[object] = [None] * contenders

        def contend(i: int) -> None:
            mine = lock(root, version=str(i))
            start.wait()
            try:
                mine.acquire()
                outcomes[i] = "won"
            except LockHeld as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        winners = [i for i, outcome in enumerate(outcomes) if outcome == "won"]
        assert len(winners) == 1
        losers = [o for o in outcomes if isinstance(o, LockHeld)]
        assert len(losers) == contenders - 1
        assert json.loads(holder_file(root).read_text())["version"] == str(winners[0])
        # Every loser saw the winner (or, racing the write of holder.json, "unknown").
        for loser in losers:
            assert loser.holder.get("version") in (str(winners[0]), None)

    def test_a_waiting_deployer_gets_the_lock_once_it_is_released(self, root):
        first = lock(root, action="rollout")
        first.acquire()
        threading.Timer(0.3, first.release).start()
        second = lock(root, action="rollback")
        begin = time.monotonic()
        second.acquire(wait=10, poll=0.05)
        waited = time.monotonic() - begin
        assert 0.2 < waited < 5
        assert json.loads(holder_file(root).read_text())["action"] == "rollback"

    def test_a_waiting_deployer_gives_up_after_its_wait(self, root):
        lock(root, version="7").acquire()
        begin = time.monotonic()
        with pytest.raises(LockHeld, match="still locked after waiting 1 s") as caught:
            lock(root).acquire(wait=0.6, poll=0.1)
        assert 0.6 <= time.monotonic() - begin < 3
        assert caught.value.waited >= 0.6

    def test_with_blocks_take_turns(self, root):
        inside = []
        order = threading.Lock()

        def work(i: int) -> None:
            with lock(root, version=str(i), wait=20, poll=0.02):
                with order:
                    inside.append(("in", i))
                time.sleep(0.05)
                with order:
                    inside.append(("out", i))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(inside) == 8
        # Never two deployers inside at once: every "in" is followed by its own "out".
        for k in range(0, 8, 2):
            assert inside[k][0] == "in" and inside[k + 1] == ("out", inside[k][1])


class TestRelease:
    def test_the_with_block_releases_on_error(self, root):
        with pytest.raises(KeyError), lock(root):
            raise KeyError("the work failed")
        assert lock(root).status() is None

    def test_release_without_acquire_removes_nothing(self, root):
        lock(root, version="7").acquire()
        assert lock(root).release() is False
        assert lock(root).status()["version"] == "7"

    def test_only_our_own_lock_is_removed(self, root):
        first = lock(root, version="1")
        first.acquire()
        lock(root).force_release()  # someone decided it was stale...
        third = lock(root, version="3")
        third.acquire()  # ...and someone else took it since
        assert first.release() is False
        assert lock(root).status()["token"] == third.holder["token"]
        assert third.release() is True

    def test_a_with_block_whose_lock_was_taken_over_warns(self, root):
        with pytest.warns(RuntimeWarning, match="no longer ours"), lock(root):
            lock(root).force_release()
            lock(root, version="other").acquire()
        assert lock(root).status()["version"] == "other"

    def test_release_after_the_lock_vanished_is_false(self, root):
        mine = lock(root)
        mine.acquire()
        lock(root).force_release()
        assert mine.release() is False


class TestStaleLocks:
    def dead_pid(self) -> int:
        proc = subprocess.Popen(["true"])
        proc.wait()
        return proc.pid

    def plant(self, root: Path, holder: dict | None) -> None:
        folder = holder_file(root).parent
        folder.mkdir(parents=True)
        if holder is not None:
            holder_file(root).write_text(json.dumps(holder))

    def test_a_lock_whose_process_died_here_is_called_stale(self, root):
        self.plant(
            root,
            {
                "action": "deploy",
                "hostname": socket.gethostname(),
                "pid": self.dead_pid(),
                "started": "2024-05-01T10:00:00Z",
                "user": "alice@here",
                "version": "3",
            },
        )
        with pytest.raises(LockHeld, match="no longer runs on this machine, so the lock is stale"):
            lock(root).acquire()

    def test_force_release_removes_it_and_returns_the_old_holder(self, root):
        self.plant(root, {"user": "alice@gone", "version": "3", "pid": 1, "hostname": "gone"})
        removed = lock(root).force_release()
        assert removed is not None and removed["user"] == "alice@gone"
        assert lock(root).status() is None
        lock(root).acquire()

    def test_force_release_of_no_lock_returns_none(self, root):
        assert lock(root).force_release() is None

    def test_a_lock_folder_without_holder_is_held_by_an_unknown_holder(self, root):
        self.plant(root, None)
        status = lock(root).status()
        assert status is not None and "holder.json is missing" in status["unreadable"]
        quick = FleetLock(conn(), str(root), model="iris", sleep=lambda _: None)
        with pytest.raises(LockHeld, match="unknown holder"):
            quick.acquire()
        assert lock(root).force_release() == status

    def test_a_corrupt_holder_is_reported_not_crashed_on(self, root):
        self.plant(root, None)
        holder_file(root).write_text("{not json")
        assert "is not JSON" in lock(root).status()["unreadable"]


class TestErrors:
    def test_an_unusable_root_is_a_lock_error_naming_the_host(self, tmp_path):
        blocker = tmp_path / "a file"
        blocker.write_text("")
        with pytest.raises(LockError) as caught:
            FleetLock(conn(), str(blocker / "root"), model="iris").acquire()
        message = str(caught.value)
        assert message.startswith("127.0.0.1: cannot take the lock ")
        assert "Not a directory" in message or "File exists" in message
        assert caught.value.result.return_code not in (0, 75)

    def test_a_lock_path_that_is_no_folder_is_an_error_after_a_few_tries(self, root):
        (root / "locks").mkdir(parents=True)
        (root / "locks" / "iris").symlink_to(root / "nowhere")  # mkdir: File exists
        with pytest.raises(LockError, match="File exists"):
            lock(root).acquire()

    def test_bad_arguments(self, root):
        with pytest.raises(ValueError, match="model name"):
            lock(root, model="../../etc")
        with pytest.raises(ValueError, match="wait"):
            lock(root).acquire(wait=-1)

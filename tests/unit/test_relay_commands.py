"""Relay command builders, run for real in a local shell against temporary files: the key line
a receiver gets, its removal, what the holder runs. Plus the fan-out of sources."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.relay import (
    MARK,
    RelayKey,
    authorize_command,
    known_hosts_line,
    revoke_command,
    send_command,
)
from clipper_deploy.hosts.transfer import TransferMeter
from clipper_deploy.orchestration.plans.fanout import Source, fan_out


def sh(script: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", "-c", script], input=stdin, text=True, capture_output=True, timeout=30
    )


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "authorized_keys"
    path.write_text("ssh-ed25519 AAAAuserkey user@laptop")  # no trailing newline
    return path


class TestAuthorize:
    def test_adds_one_restricted_expiring_line_and_writes_the_script(
        self, tmp_path: Path, keys: Path
    ) -> None:
        key = RelayKey.generate()
        done = sh(authorize_command("tok1", key.public, "10.0.0.2", str(keys), str(tmp_path)), "x")
        assert done.returncode == 0, done.stderr
        lines = keys.read_text().splitlines()
        assert lines[0] == "ssh-ed25519 AAAAuserkey user@laptop"
        options, kind, blob, comment = lines[1].rsplit(" ", 3)
        assert (kind + " " + blob, comment) == (key.public, f"{MARK}tok1")
        assert options.startswith('restrict,from="10.0.0.2",expiry-time="')
        assert options.endswith(f'",command="sh {tmp_path}/relay/tok1.sh"')
        assert len(options.split('expiry-time="')[1].split('"')[0]) == 12  # YYYYMMDDHHMM
        assert (tmp_path / "relay" / "tok1.sh").read_text() == "x"
        assert (tmp_path / "relay" / "tok1.sh").stat().st_mode & 0o077 == 0

    def test_revoke_removes_only_its_own_line_and_script(self, tmp_path: Path, keys: Path) -> None:
        for token in ("tok1", "tok2"):
            key = RelayKey.generate().public
            sh(authorize_command(token, key, "10.0.0.2", str(keys), str(tmp_path)), "x")
        done = sh(revoke_command("tok1", str(keys), str(tmp_path)))
        assert done.returncode == 0, done.stderr
        text = keys.read_text()
        assert "user@laptop" in text and f"{MARK}tok2" in text and f"{MARK}tok1" not in text
        assert not (tmp_path / "relay" / "tok1.sh").exists()
        assert (tmp_path / "relay" / "tok2.sh").exists()
        sh(revoke_command("tok2", str(keys), str(tmp_path)))
        assert not (tmp_path / "relay").exists()  # the last one leaves no directory

    def test_fails_when_the_keys_file_cannot_be_written(self, tmp_path: Path) -> None:
        command = authorize_command("t", "ssh-ed25519 AAAA", "h", "/proc/x/keys", str(tmp_path))
        assert sh(command, "x").returncode != 0


class TestSend:
    def test_checks_the_host_key_with_a_file_of_its_own_and_never_shows_the_key(self) -> None:
        key = RelayKey.generate()
        target = Host("h2", "10.0.0.3", port=2222, user="deploy")
        command = send_command("tok", target, "[10.0.0.3]:2222 ssh-ed25519 AAAA", "cat blob")
        assert "StrictHostKeyChecking=yes" in command
        assert "UserKnownHostsFile=/var/lib/clipper-deploy/relay/tok/tok.known_hosts" in command
        assert "IdentitiesOnly=yes" in command and "BatchMode=yes" in command
        assert "-p 2222 -l deploy 10.0.0.3 relay" in command
        assert (
            "{ ( cat blob ); echo $? > /var/lib/clipper-deploy/relay/tok/tok.status; } | ssh"
            in (command)
        )
        assert "rm -f /var/lib/clipper-deploy/relay/tok/tok.key" in command
        assert key.private.splitlines()[1] not in command

    def test_the_generated_key_is_one_openssh_reads(self, tmp_path: Path) -> None:
        key = RelayKey.generate()
        path = tmp_path / "k"
        path.write_text(key.private)
        path.chmod(0o600)
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True
        )
        assert derived.stdout.split()[:2] == key.public.split()[:2]


FAKE_SSH = """#!/bin/sh
# Stands in for ssh: what the relay streams goes to $FAKE_OUT; says $FAKE_ERR, exits $FAKE_EXIT.
cat > "$FAKE_OUT"
if [ -n "$FAKE_ERR" ]; then echo "$FAKE_ERR" >&2; fi
exit "${FAKE_EXIT:-0}"
"""


class TestSendRuns:
    """The holder's command run in a local shell, with a stand-in ``ssh`` on PATH."""

    def run(
        self, tmp_path: Path, source: str = "printf layer", exit: int = 0, err: str = ""
    ) -> subprocess.CompletedProcess:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "ssh").write_text(FAKE_SSH)
        (bin_dir / "ssh").chmod(0o755)
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "FAKE_OUT": str(tmp_path / "received"),
            "FAKE_EXIT": str(exit),
            "FAKE_ERR": err,
        }
        target = Host("h3", "10.0.0.3")
        command = send_command("tok", target, "10.0.0.3 ssh-ed25519 AAAA", source, str(tmp_path))
        return subprocess.run(
            ["sh", "-c", command],
            input="KEY",
            text=True,
            capture_output=True,
            timeout=30,
            env=env,
        )

    def test_ends_well_while_another_relay_of_the_holder_is_still_running(
        self, tmp_path: Path
    ) -> None:
        other = tmp_path / "relay" / "other"  # a concurrent relay's own directory
        other.mkdir(parents=True)
        done = self.run(tmp_path)
        assert (done.returncode, done.stderr) == (0, "")
        assert (tmp_path / "received").read_text() == "layer"
        assert other.is_dir() and not (tmp_path / "relay" / "tok").exists()

    def test_the_last_relay_leaves_no_directory(self, tmp_path: Path) -> None:
        assert self.run(tmp_path).returncode == 0
        assert not (tmp_path / "relay").exists()

    def test_a_failed_receive_script_is_named_after_its_own_message(self, tmp_path: Path) -> None:
        done = self.run(tmp_path, exit=1, err="Error: open /var/lib/docker/tmp: no space left")
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            "Error: open /var/lib/docker/tmp: no space left",
            "clipper-relay: the receive script on 10.0.0.3 port 22 exited 1",
        ]
        assert not (tmp_path / "relay").exists()

    def test_a_failed_ssh_says_so(self, tmp_path: Path) -> None:
        done = self.run(tmp_path, exit=255, err="root@10.0.0.3: Permission denied (publickey).")
        assert done.returncode == 255
        assert done.stderr.splitlines()[-1] == (
            "clipper-relay: ssh to 10.0.0.3 port 22 failed (exit status 255)"
        )

    def test_a_failed_source_command_is_reported_though_ssh_ended_well(
        self, tmp_path: Path
    ) -> None:
        done = self.run(tmp_path, source="echo no such image >&2; exit 3")
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            "no such image",
            "clipper-relay: the source command here exited 3: echo no such image >&2; exit 3",
        ]

    def test_a_source_and_a_receive_script_that_both_fail_are_both_named(
        self, tmp_path: Path
    ) -> None:
        done = self.run(tmp_path, source="echo lost it >&2; false", exit=1, err="stdin is empty")
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            "lost it",
            "stdin is empty",
            "clipper-relay: the receive script on 10.0.0.3 port 22 exited 1 and the source "
            "command here exited 1: echo lost it >&2; false",
        ]


class TestKnownHostsLine:
    def test_is_the_clients_entry_for_the_host(self, tmp_path: Path) -> None:
        public = RelayKey.generate().public
        path = tmp_path / "known_hosts"
        path.write_text(f"10.0.0.3 {public}\n[10.0.0.4]:2222 {public}\n")
        assert known_hosts_line(path, Host("h2", "10.0.0.3")) == f"10.0.0.3 {public}"
        assert known_hosts_line(path, Host("h3", "10.0.0.4", port=2222)) == (
            f"[10.0.0.4]:2222 {public}"
        )

    def test_a_host_the_client_does_not_know_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "known_hosts"
        path.write_text("")
        with pytest.raises(Exception, match=r"no host key for 10\.0\.0\.9"):
            known_hosts_line(path, Host("h9", "10.0.0.9"))


class TestFanOut:
    def test_without_holders_the_client_sends_one_copy(self) -> None:
        hosts = [f"h{i}" for i in range(1, 51)]
        sources = fan_out(hosts, [], 2)
        assert [h for h, s in sources.items() if s.host is None] == ["h1"]
        assert set(sources) == set(hosts)

    def test_every_source_holds_the_layer_before_it_passes_it_on(self) -> None:
        hosts = [f"h{i}" for i in range(1, 51)]
        sources = fan_out(hosts, [], 2)
        for receiver, source in sources.items():
            if source.host is not None:
                assert sources[source.host].round < source.round, receiver

    def test_no_holder_sends_more_than_width_copies_a_round(self) -> None:
        sources = fan_out([f"h{i}" for i in range(1, 51)], [], 2)
        per_round: dict[tuple[str, int], int] = {}
        for source in sources.values():
            if source.host is not None:
                key = (source.host, source.round)
                per_round[key] = per_round.get(key, 0) + 1
        assert max(per_round.values()) == 2

    def test_holders_from_the_facts_serve_first_and_width_zero_is_the_client(self) -> None:
        assert fan_out(["h2", "h3"], ["h1"], 2) == {"h2": Source("h1", 1), "h3": Source("h1", 1)}
        assert fan_out(["h2", "h3"], ["h1"], 0) == {"h2": Source(None, 0), "h3": Source(None, 0)}


class TestTransferMeter:
    def test_counts_per_sender_and_tells_listeners(self) -> None:
        meter = TransferMeter()
        heard: list[tuple[str, str, int]] = []
        stop = meter.subscribe(lambda *args: heard.append(args))
        meter.add("client", "h1", 10)
        meter.add("h1", "h2", 7)
        stop()
        meter.add("client", "h2", 5)
        assert meter.sent_by("client") == 15 and meter.sent_by("h1") == 7
        assert heard == [("client", "h1", 10), ("h1", "h2", 7)]

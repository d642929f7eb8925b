"""The pure halves of the fleet lock and the audit log: command lines, events, the table.

The commands themselves are run for real (locally) in ``tests/orchestration``.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta, timezone
from typing import ClassVar

import pytest
from rich.console import Console

from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.audit import (
    FIELDS,
    MAX_DETAIL_CHARS,
    MAX_LINE_BYTES,
    AuditLogWarning,
    append_command,
    audit_event,
    encode_event,
    format_table,
    parse_events,
    read_command,
)
from clipper_deploy.orchestration.lock import (
    LockHeld,
    acquire_command,
    force_release_command,
    lock_dir,
    release_command,
    status_command,
)
from clipper_deploy.orchestration.remote_files import check_model_name, check_root, local_user

WHEN = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


class TestNames:
    @pytest.mark.parametrize("good", ["iris", "iris-v2", "Model_1.b", "0model"])
    def test_model_names_that_are_one_path_component(self, good):
        assert check_model_name(good) == good

    @pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "a/b", "../x", "a b", "-x", 3])
    def test_other_model_names_are_refused(self, bad):
        with pytest.raises(ValueError, match="model name"):
            check_model_name(bad)

    @pytest.mark.parametrize("bad", ["", "/", "relative/path", "~/x"])
    def test_the_root_must_be_an_absolute_folder(self, bad):
        with pytest.raises(ValueError, match="absolute"):
            check_root(bad)

    def test_the_root_loses_its_trailing_slash(self):
        assert check_root("/var/lib/clipper-deploy/") == "/var/lib/clipper-deploy"

    def test_the_lock_folder_is_under_locks(self):
        assert lock_dir("/srv/cd/", "iris") == "/srv/cd/locks/iris"

    def test_local_user_is_user_at_machine(self):
        user, _, machine = local_user().partition("@")
        assert user and machine


class TestLockCommands:
    ROOT = "/srv/it's here"

    def test_every_command_quotes_the_root(self):
        quoted = shlex.quote(f"{self.ROOT}/locks/iris")
        for command in (
            acquire_command(self.ROOT, "iris", {"a": 1}),
            status_command(self.ROOT, "iris"),
            release_command(self.ROOT, "iris", "abc123"),
            force_release_command(self.ROOT, "iris"),
        ):
            assert quoted in command

    def test_the_holder_json_is_one_quoted_word(self):
        holder = {"version": "7'; rm -rf / #", "user": 'a"b'}
        command = acquire_command("/srv", "iris", holder)
        assert shlex.quote(json.dumps(holder, sort_keys=True)) in command

    def test_acquire_is_a_mkdir(self):
        assert "mkdir -- /srv/locks/iris" in acquire_command("/srv", "iris", {})

    def test_release_matches_the_token(self):
        assert "*'\"abc123\"'*)" in release_command("/srv", "iris", "abc123")

    @pytest.mark.parametrize("bad", ["", "a*b", "x'y", "a b"])
    def test_release_refuses_tokens_that_are_not_alphanumeric(self, bad):
        with pytest.raises(ValueError, match="token"):
            release_command("/srv", "iris", bad)

    def test_commands_refuse_unsafe_model_names(self):
        with pytest.raises(ValueError):
            acquire_command("/srv", "../etc", {})


class TestLockHeldMessage:
    HOLDER: ClassVar[dict[str, object]] = {
        "action": "rollout",
        "hostname": "build-7",
        "model": "iris",
        "pid": 4242,
        "started": "2024-05-01T10:00:00Z",
        "token": "t",
        "user": "alice@laptop",
        "version": "7",
    }

    def held(self, holder, **kwargs) -> str:
        kwargs.setdefault("now", WHEN + timedelta(minutes=12))
        return str(LockHeld("iris", holder, path="/srv/locks/iris", host="fe", **kwargs))

    def test_names_holder_time_action_version_and_the_way_out(self):
        assert self.held(self.HOLDER) == (
            "model iris is locked: rollout of version 7 by alice@laptop (pid 4242 on build-7) "
            "since 2024-05-01T10:00:00Z (12 min ago). Wait for it to finish (or give a lock "
            "wait), or, if that run died, release the stale lock with "
            "`invoke lock.release iris`. (lock: fe:/srv/locks/iris)"
        )

    def test_says_how_long_it_waited(self):
        assert "model iris is still locked after waiting 30 s:" in self.held(
            self.HOLDER, waited=30.2
        )

    def test_an_unknown_holder(self):
        message = self.held(
            {"model": "iris", "unreadable": "/srv/locks/iris/holder.json is missing"}
        )
        assert "unknown holder" in message and "invoke lock.release iris" in message

    def test_missing_fields_do_not_break_the_message(self):
        assert "a deploy by an unknown user since an unknown time" in self.held({"model": "iris"})

    def test_keeps_the_holder(self):
        error = LockHeld("iris", self.HOLDER, path="/p", host="fe", waited=1.5)
        assert (error.holder, error.waited, error.host) == (self.HOLDER, 1.5, "fe")


class TestAuditEvent:
    def test_has_every_field_in_order(self):
        event = audit_event(
            "rollout", "iris", version=7, hosts=["h1", "h2"], user="alice@laptop", time=WHEN
        )
        assert tuple(event) == FIELDS
        assert event == {
            "time": "2024-05-01T10:00:00Z",
            "user": "alice@laptop",
            "action": "rollout",
            "model": "iris",
            "version": "7",
            "hosts": ["h1", "h2"],
            "result": "ok",
            "detail": None,
        }

    def test_time_is_utc(self):
        paris = timezone(timedelta(hours=2))
        event = audit_event("stop", "iris", time=datetime(2024, 5, 1, 12, 0, tzinfo=paris))
        assert event["time"] == "2024-05-01T10:00:00Z"

    def test_defaults_to_this_user_and_now(self):
        event = audit_event("stop", "iris")
        assert event["user"] == local_user()
        assert datetime.fromisoformat(event["time"]) <= datetime.now(UTC)

    def test_inventory_hosts_are_recorded_by_name(self):
        hosts = [Host(name="h1", address="10.0.0.1"), Host(name="h2", address="10.0.0.2")]
        assert audit_event("deploy", "iris", hosts=hosts)["hosts"] == ["h1", "h2"]

    def test_an_exception_detail_keeps_its_type(self):
        event = audit_event("deploy", "iris", result="failed", detail=OSError("disk full"))
        assert event["detail"] == "OSError: disk full"

    def test_detail_is_trimmed(self):
        detail = audit_event("deploy", "iris", detail="x" * 5000)["detail"]
        assert len(detail) == MAX_DETAIL_CHARS and detail.endswith("...")

    @pytest.mark.parametrize("bad", ["", "not ok", None])
    def test_result_is_one_word(self, bad):
        with pytest.raises(ValueError, match="result"):
            audit_event("deploy", "iris", result=bad)


class TestEncodeEvent:
    def test_a_normal_event_is_one_json_line(self):
        event = audit_event("deploy", "iris", detail="line 1\nline 2 é", time=WHEN)
        line = encode_event(event)
        assert "\n" not in line and line.isascii()
        assert json.loads(line) == event

    def test_a_long_line_loses_the_end_of_its_detail_first(self):
        event = audit_event("deploy", "iris", hosts=["h1"], detail="é" * 900, time=WHEN)
        line = encode_event(event)  # \u00e9 is 6 bytes in JSON: 5400 bytes of detail
        assert len(line.encode()) <= MAX_LINE_BYTES - 1
        decoded = json.loads(line)
        assert decoded["hosts"] == ["h1"] and decoded["detail"].endswith("...")

    def test_too_many_hosts_are_cut_and_counted(self):
        hosts = [f"host-{i:04d}.example.com" for i in range(400)]
        decoded = json.loads(encode_event(audit_event("deploy", "iris", hosts=hosts)))
        kept = len(decoded["hosts"])
        assert 0 < kept < 400 and decoded["hosts_omitted"] == 400 - kept
        assert decoded["hosts"] == hosts[:kept]

    def test_append_command_quotes_the_line(self):
        line = encode_event(audit_event("deploy", "iris", detail="$(reboot) `x` 'y'"))
        command = append_command("/srv", line)
        assert command.endswith(f"printf '%s\\n' {shlex.quote(line)} >> /srv/audit.log")

    def test_append_command_refuses_line_breaks(self):
        with pytest.raises(ValueError, match="line break"):
            append_command("/srv", "a\nb")

    def test_read_command_tolerates_a_missing_log(self):
        assert read_command("/srv").startswith("test -e /srv/audit.log || exit 3;")


class TestParseEvents:
    def test_reads_one_event_per_line_and_ignores_blank_lines(self):
        text = '{"model": "a"}\n\n{"model": "b"}\n'
        assert parse_events(text) == [{"model": "a"}, {"model": "b"}]

    def test_skips_corrupt_lines_with_a_warning_naming_the_line(self):
        text = '{"model": "a"}\n{"model": "b", "hos\n[1, 2]\n{"model": "c"}\n'
        with pytest.warns(AuditLogWarning) as caught:
            events = parse_events(text, source="fe:/srv/audit.log")
        assert events == [{"model": "a"}, {"model": "c"}]
        assert [str(w.message).split(": ")[0] for w in caught] == [
            "fe:/srv/audit.log:2",
            "fe:/srv/audit.log:3",
        ]


class TestFormatTable:
    def render(self, events) -> str:
        console = Console(record=True, width=200, color_system=None)
        console.print(format_table(events))
        return console.export_text()

    def test_shows_one_row_per_event(self):
        events = [
            audit_event("deploy", "iris", version="1", hosts=["h1"], user="a@m", time=WHEN),
            audit_event(
                "rollout",
                "iris",
                version="2",
                result="failed",
                detail="h2: exit 1\nmore",
                user="b@m",
                time=WHEN,
            ),
        ]
        text = self.render(events)
        assert "2024-05-01T10:00:00Z" in text and "a@m" in text and "rollout" in text
        assert "h2: exit 1" in text and "more" not in text

    def test_long_host_lists_are_summarised(self):
        event = audit_event("deploy", "iris", hosts=[f"h{i}" for i in range(1, 8)])
        event["hosts_omitted"] = 3
        assert "h1, h2, h3, h4 +6" in self.render([event])

    def test_log_text_is_not_markup(self):
        event = audit_event("deploy", "iris", detail="[bold]not bold[/bold]")
        assert "[bold]not bold[/bold]" in self.render([event])

    def test_missing_fields_show_as_dashes(self):
        assert "-" in self.render([{"model": "iris"}])

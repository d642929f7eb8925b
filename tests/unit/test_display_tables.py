"""Tables that fit and words that are true: the status report's replica states, its JSON
document, and the status, audit and lock tables at 80 and 120 columns."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from clipper_deploy.display.tables import (
    Column,
    FittedTable,
    audit_table,
    frontend_lines,
    lock_table,
    status_tables,
)
from clipper_deploy.hosts.docker_commands import ContainerInfo
from clipper_deploy.orchestration.status import build_report, exit_code, replica_state

NOW = 1_764_590_000.0


def container(host: str, model: str, version: str, state: str, status: str) -> ContainerInfo:
    name = f"cd-{model}-{version}-0"
    return ContainerInfo("id", name, state, status, model, version, "sha", f"{host}/{name}")


def a_report() -> dict:
    models = [
        {"model_name": "fleet-model", "model_version": "1", "is_current_version": False},
        {"model_name": "fleet-model", "model_version": "2", "is_current_version": True},
        {"model_name": "other", "model_version": "3", "is_current_version": True},
    ]
    for m in models:
        m.update(input_type="doubles", labels=["a"])
    registered = [
        {
            "replica_id": "h1/cd-fleet-model-2-0",
            "state": "idle",
            "last_heartbeat": NOW - 1.25,
            "queries_served": 1234,
        }
    ]
    containers = {
        "h1": [
            container("h1", "fleet-model", "2", "running", "Up 3 minutes"),
            container("h1", "fleet-model", "1", "exited", "Exited (137) 3 minutes ago"),
        ],
        "h2": [
            container("h2", "other", "3", "exited", "Exited (1) 2 minutes ago"),
            container("h2", "fleet-model", "2", "running", "Up 2 seconds"),
        ],
        "h3": OSError("cannot connect to h3 (10.239.0.13:22): timed out"),
    }
    frontend = {
        "running": True,
        "where": "container clipper-frontend on h1",
        "version": "0.6.0",
        "uptime_s": 300.0,
        "query_url": "http://10.239.0.11:1337",
    }
    apps = [
        {
            "name": "fleet",
            "input_type": "doubles",
            "linked_models": ["fleet-model"],
            "latency_slo_micros": 100000,
            "default_output": "default",
        }
    ]
    return build_report(frontend, apps, models, registered, containers, NOW)


def printed(renderables, width: int) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


class TestReplicaStates:
    @pytest.mark.parametrize(
        ("docker", "code", "registered", "retained", "word"),
        [
            ("running", None, {"state": "idle"}, False, "serving"),
            ("running", None, {"state": "disconnected"}, False, "starting"),
            ("running", None, None, False, "starting"),
            ("restarting", 1, None, False, "restarting"),
            ("exited", 137, None, True, "retained"),
            ("exited", 0, None, True, "retained"),
            ("exited", 1, None, False, "crashed"),
            ("dead", 0, None, False, "crashed"),
            ("exited", 0, None, False, "stopped"),
            ("created", None, None, False, "created"),
        ],
    )
    def test_say_what_the_replica_is(self, docker, code, registered, retained, word):
        assert replica_state(docker, code, registered, retained) == word

    def test_the_exit_status_is_read_from_docker_ps(self):
        assert exit_code("Exited (137) 3 minutes ago") == 137
        assert exit_code("Up 3 minutes") is None

    def test_a_stopped_replica_of_a_retained_version_is_retained_not_crashed(self):
        states = {(r["host"], r["container"]): r["state"] for r in a_report()["replicas"]}
        assert states[("h1", "cd-fleet-model-1-0")] == "retained"
        assert states[("h2", "cd-other-3-0")] == "crashed"  # the current version, exit 1
        assert states[("h1", "cd-fleet-model-2-0")] == "serving"
        assert states[("h2", "cd-fleet-model-2-0")] == "starting"


class TestTheJsonDocument:
    def test_has_the_documented_fields_and_survives_json(self):
        doc = json.loads(json.dumps(a_report()))
        assert set(doc) == {"time", "frontend", "applications", "models", "replicas", "unreachable"}
        assert set(doc["replicas"][0]) == {
            "host",
            "container",
            "model",
            "version",
            "state",
            "docker_state",
            "exit_code",
            "current",
            "last_heartbeat",
            "heartbeat_age_s",
            "queries_served",
        }
        assert doc["replicas"][0]["heartbeat_age_s"] == pytest.approx(1.25)
        assert doc["models"][1] == {
            "name": "fleet-model",
            "version": "2",
            "current": True,
            "input_type": "doubles",
            "labels": ["a"],
        }
        assert doc["applications"][0]["models"] == ["fleet-model"]
        assert doc["unreachable"] == {"h3": "cannot connect to h3 (10.239.0.13:22): timed out"}


class TestFittedTables:
    def table(self) -> FittedTable:
        return FittedTable(
            [Column("key"), Column("extra", drop=2), Column("note", drop=1, shrink=6)],
            [["rollout", "x" * 30, "a long note that will not fit in a narrow terminal"]],
        )

    def test_drop_the_least_important_columns_first(self):
        assert self.table().kept(200) == [0, 1, 2]
        assert self.table().kept(40) == [0, 2]
        assert self.table().kept(10) == [0]

    def test_cut_with_an_ellipsis_and_never_wrap(self):
        text = printed([self.table()], 40)
        rows = [line for line in text.splitlines() if "rollout" in line]
        assert len(rows) == 1 and "…" in rows[0]


@pytest.mark.parametrize("width", [80, 120])
class TestAtEachWidth:
    def test_status_fits_one_line_per_replica(self, width):
        report = a_report()
        text = printed([*frontend_lines(report), *status_tables(report)], width)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width
        replica_rows = [line for line in lines if line.startswith("│ h")]
        assert len(replica_rows) == 5  # 4 replicas and the unreachable host: nothing wrapped
        for word in ("retained", "crashed", "serving", "starting", "unreachable", "1.2 s ago"):
            assert word in text
        assert "fleet-model:1" in text and "fleet-model:2" in text
        assert text.startswith("Frontend: container clipper-frontend on h1, clipper-deploy 0.6.0")

    def test_audit_keeps_a_row_per_event(self, width):
        events = [
            {
                "time": "2026-12-01T11:00:00Z",
                "user": "scheduler@frontend-host",
                "action": action,
                "model": "fleet-model",
                "version": "12",
                "hosts": ["h1", "h2", "h3"],
                "result": "failed" if action == "rollout" else "ok",
                "detail": "rollout of fleet-model:12 stopped at batch 1 of 3\nsecond line",
            }
            for action in ("deploy", "rollout", "scheduled-redeploy")
        ]
        text = printed([audit_table(events)], width)
        rows = [line for line in text.splitlines() if "2026-12-01T11:00:00Z" in line]
        assert len(rows) == 3 and max(len(line) for line in text.splitlines()) <= width
        for action in ("deploy", "rollout", "scheduled-redeploy"):
            assert any(f" {action} " in row for row in rows), action
        assert "second line" not in text
        if width == 120:
            assert "schedule" in text and "h1, h2" in text  # cut, not dropped

    def test_lock_status_fits(self, width):
        holder = {
            "user": "alice@laptop",
            "action": "rollout",
            "version": "7",
            "started": "2026-12-01T11:00:00Z",
            "pid": 4242,
            "hostname": "laptop",
            "token": "secret-ish",
        }
        text = printed([lock_table("fleet-model", holder)], width)
        assert max(len(line) for line in text.splitlines()) <= width
        for value in ("fleet-model", "alice@laptop", "rollout", "2026-12-01T11:00:00Z", "4242"):
            assert value in text
        assert "secret-ish" not in text
        assert "not locked" in printed([lock_table("fleet-model", None)], width)

"""The frontend as a Docker service on the ``[clipper]`` host h1, deployed from this machine.

In order (one module-scoped bed and Clipper): a cold start builds and runs the container on
h1; nothing of the frontend runs or listens here; the seed's flow works through h1; a second
start changes nothing; a restart of the container keeps apps, models, links and the current
version, the replicas come back within 5 s and no query hangs; the token cache is 0600; two
clients with their own caches share the lock and the audit log on h1; a rotated token is
re-read over SSH; stop removes the container and keeps the state. Timings are printed (-s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from remote_helpers import FRONTEND_HOST, PORTS, listeners

import clipper_deploy
from clipper_deploy import Clipper
from clipper_deploy.frontend.client import FrontendError, QueryClient
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.orchestration.frontend_service import FrontendServiceError
from clipper_deploy.testbed import commands

pytestmark = pytest.mark.bed

APP, MODEL = "remote-app", "remote-model"
EXIT_APP, EXIT_MODEL = "exit-app", "exit-model"
REPLICAS_BACK_S = 5.0
QUERY_TIMEOUT_S = 3.0


def on_h1(clipper: Clipper, command: str) -> Any:
    """Run a shell command on h1 over the same SSH path clipper-deploy uses."""
    result = clipper.frontend.service.run(command, "run a test command")
    assert result.ok, f"{command}: {result.stderr}"
    return result


def doubled(xs: Any) -> list[str]:
    return [str(sum(x) * 2) for x in xs]


def connected_replicas(clipper: Clipper) -> list[dict[str, Any]]:
    return [r for r in clipper.admin.get_all_containers() if r.get("state") != "disconnected"]


class TestRemoteFrontend:
    def test_a_cold_start_runs_the_container_on_h1(self, remote_clipper: Clipper) -> None:
        started = time.monotonic()
        status = remote_clipper.start()
        cold = time.monotonic() - started
        print(f"\n[timing] cold start() on a fresh h1: {cold:.1f} s ({status['message']})")
        record = remote_clipper.frontend.service.container()
        assert record is not None and record.running
        assert record.image.startswith(f"{dc.FRONTEND_IMAGE}:")
        assert status["where"] == f"container {dc.FRONTEND_CONTAINER} on {FRONTEND_HOST}"

    def test_nothing_of_the_frontend_runs_or_listens_here(
        self, remote_clipper: Clipper, remote_bed: Any
    ) -> None:
        h1 = remote_bed.layout.host(FRONTEND_HOST)
        here = {"0.0.0.0", "::", "*", "127.0.0.1", remote_bed.layout.bridge_address, h1.address}
        local = [(a, p) for a, p in listeners() if p in PORTS and a in here]
        assert local == [], f"frontend ports bound on the control machine: {local}"
        assert not remote_clipper.frontend.config.pid_path.exists()
        on_host = listeners(h1.netns)
        assert {(h1.address, p) for p in PORTS} <= set(on_host), on_host

    def test_the_seeds_flow_works_through_h1(self, remote_clipper: Clipper) -> None:
        remote_clipper.register_application(APP, "doubles", "-1.0", 100_000)
        assert remote_clipper.deploy_predict_function(
            MODEL, 1, doubled, [APP], "doubles", hosts="h2", mode="auto"
        )
        remote_clipper.link_model_to_app(APP, MODEL)
        reply = remote_clipper.predict(APP, [1.0, 2.0])
        assert reply["output"] == "6.0" and not reply["default"], reply

    def test_a_deploy_from_a_process_that_exits_keeps_being_answered(
        self, remote_clipper: Clipper, remote_inventory: Path, remote_bed: Any
    ) -> None:
        script = f"""
from clipper_deploy import Clipper

def tripled(xs):
    return [str(sum(x) * 3) for x in xs]

c = Clipper({str(remote_inventory)!r})
c.register_application({EXIT_APP!r}, "doubles", "-1.0", 1_000_000)
c.deploy_predict_function(
    {EXIT_MODEL!r}, 1, tripled, [{EXIT_APP!r}], "doubles", hosts="h3", mode="auto"
)
c.link_model_to_app({EXIT_APP!r}, {EXIT_MODEL!r})
print("deployed; exiting")
"""
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=900
        )
        print(f"\n[timing] deploy from a separate process: {time.monotonic() - started:.1f} s")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert proc.stdout.strip().endswith("deployed; exiting")
        query = QueryClient(remote_clipper.frontend.service.query_url, timeout=QUERY_TIMEOUT_S)
        answered, until = 0, time.monotonic() + 3.0
        while time.monotonic() < until:
            reply = query.predict(EXIT_APP, [1.0, 2.0])
            assert reply["output"] == "9.0" and not reply["default"], reply
            answered += 1
        print(f"[after exit] {answered} queries answered by h1 in 3 s")
        h1 = remote_bed.layout.host(FRONTEND_HOST)
        here = {"0.0.0.0", "::", "*", "127.0.0.1", remote_bed.layout.bridge_address, h1.address}
        assert [(a, p) for a, p in listeners() if p in PORTS and a in here] == []

    def test_a_replica_without_the_key_is_refused_by_the_remote_frontend(
        self, remote_clipper: Clipper, remote_bed: Any
    ) -> None:
        def no_proof() -> float:
            text = QueryClient(
                remote_clipper.frontend.service.query_url, token=remote_clipper.admin.token
            ).metrics()
            found = re.search(
                r'^clipper_replica_refusals_total{reason="no_proof"} (\S+)$', text, re.M
            )
            return float(found.group(1)) if found else 0.0

        before = no_proof()
        ip, _, port = remote_clipper.frontend.replica_address.rpartition(":")
        docker = commands.docker_cli(remote_bed.layout.host("h2"))
        inspect = [*docker, "inspect", f"cd-{MODEL}-1-0"]
        (record,) = json.loads(subprocess.run(inspect, check=True, capture_output=True).stdout)
        # The version's own model files, mounted as a deploy mounts them into its replicas.
        model_dir = next(m["Source"] for m in record["Mounts"] if m["Destination"] == "/model")
        rogue = [
            *docker, "run", "--detach", "--name", "rogue", "--network", "host",
            "--mount", f"type=bind,source={model_dir},target=/model,readonly",
            "--env", f"CLIPPER_IP={ip}", "--env", f"CLIPPER_PORT={port}",
            "--env", f"CLIPPER_MODEL_NAME={MODEL}", "--env", "CLIPPER_MODEL_VERSION=1",
            "--env", "CLIPPER_INPUT_TYPE=doubles",
            "--env", f"CLIPPER_REPLICA_ID=h2/cd-{MODEL}-1-0", dc.image_name(MODEL, "1"),
        ]  # fmt: skip
        subprocess.run(rogue, check=True, capture_output=True, timeout=60)
        try:
            deadline = time.monotonic() + 20
            while no_proof() <= before:
                assert time.monotonic() < deadline, "the rogue replica was not refused"
                time.sleep(0.3)
            replicas = [r for r in connected_replicas(remote_clipper) if r["model_name"] == MODEL]
            assert len(replicas) == 1 and replicas[0]["replica_id"] == f"h2/cd-{MODEL}-1-0"
            assert remote_clipper.predict(APP, [1.0, 2.0])["output"] == "6.0"
        finally:
            subprocess.run([*docker, "rm", "--force", "rogue"], capture_output=True, timeout=60)

    def test_a_second_start_is_already_running_and_changes_nothing(
        self, remote_clipper: Clipper
    ) -> None:
        before = remote_clipper.frontend.service.container()
        started = time.monotonic()
        status = remote_clipper.start()
        print(f"\n[timing] second start() (already running): {time.monotonic() - started:.1f} s")
        assert status["message"].startswith("already running"), status["message"]
        assert remote_clipper.frontend.service.container() == before

    def test_the_command_line_shows_where_the_frontend_runs(
        self, remote_clipper: Clipper, remote_inventory: Path
    ) -> None:
        command = Path(sys.executable).parent / "clipper-deploy"

        def cli(*argv: str) -> str:
            proc = subprocess.run(
                [str(command), *argv, "--inventory", str(remote_inventory)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            return proc.stdout

        status = cli("status")
        print(f"\n[cli] {status.splitlines()[0]}")
        version = clipper_deploy.__version__
        assert status.startswith(
            f"Frontend: container {dc.FRONTEND_CONTAINER} on {FRONTEND_HOST}, "
            f"clipper-deploy {version}, up "
        )
        assert APP in status and MODEL in status
        detail = cli("frontend.status")
        assert f"runs:        container {dc.FRONTEND_CONTAINER} on {FRONTEND_HOST}" in detail
        assert "--- docker logs clipper-frontend on h1" in cli("frontend.logs", "--lines", "5")
        plan = cli("frontend.start", "--check")
        assert "frontend.start: already running" in plan and "nothing to change" in plan, plan

    def test_a_restart_keeps_the_state_and_no_query_hangs(self, remote_clipper: Clipper) -> None:
        admin = remote_clipper.admin
        before = (
            admin.get_all_applications(verbose=True),
            admin.get_all_models(verbose=True),
            admin.get_linked_models(APP),
        )
        query = QueryClient(remote_clipper.frontend.service.query_url, timeout=QUERY_TIMEOUT_S)
        durations: list[float] = []
        errors: list[str] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    query.predict(APP, [1.0, 2.0])
                except (FrontendError, OSError) as exc:
                    errors.append(str(exc)[:80])
                    time.sleep(0.05)
                durations.append(time.monotonic() - t)

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        time.sleep(0.5)
        started = time.monotonic()
        on_h1(remote_clipper, dc.shell(dc.restart_frontend()))
        remote_clipper.frontend.service.wait_until_answering(30)
        answering = time.monotonic() - started
        deadline = time.monotonic() + REPLICAS_BACK_S
        while not connected_replicas(remote_clipper) and time.monotonic() < deadline:
            time.sleep(0.1)
        back = time.monotonic() - started
        time.sleep(0.5)
        stop.set()
        worker.join(QUERY_TIMEOUT_S + 5)
        print(
            f"\n[timing] docker restart {dc.FRONTEND_CONTAINER}: admin port answers after "
            f"{answering:.1f} s, replica back after {back:.1f} s; {len(durations)} queries, "
            f"{len(errors)} failed fast, slowest {max(durations):.2f} s"
        )
        assert connected_replicas(remote_clipper), "no replica back within 5 s of the answer"
        assert back - answering <= REPLICAS_BACK_S
        assert max(durations) < QUERY_TIMEOUT_S + 0.5, "a query hung through the restart"
        after = (
            admin.get_all_applications(verbose=True),
            admin.get_all_models(verbose=True),
            admin.get_linked_models(APP),
        )
        assert after[0] == before[0] and after[2] == before[2]
        current = [(m["model_name"], m["model_version"], m["is_current_version"]) for m in after[1]]
        assert current == [
            (m["model_name"], m["model_version"], m["is_current_version"]) for m in before[1]
        ]
        assert remote_clipper.predict(APP, [1.0, 2.0])["output"] == "6.0"

    def test_the_client_caches_the_token_mode_0600(self, remote_clipper: Clipper) -> None:
        path = remote_clipper.frontend.service.token_path
        assert path.stat().st_mode & 0o777 == 0o600
        on_host = on_h1(
            remote_clipper, f"cat {remote_clipper.frontend.config.state_dir}/admin.token"
        )
        assert path.read_text().strip() == on_host.stdout.strip()

    def test_two_clients_share_the_lock_and_the_audit_log_on_h1(
        self, remote_clipper: Clipper, remote_inventory: Path, tmp_path: Path
    ) -> None:
        other = tmp_path / "client-b"
        (other / "work").mkdir(parents=True)
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(other / "config"),
            "XDG_CACHE_HOME": str(other / "cache"),
        }
        env.pop("CLIPPER_DEPLOY_CACHE", None)
        script = f"""
import json, sys
import clipper_deploy
from clipper_deploy import Clipper
from clipper_deploy.orchestration.frontend_service import FrontendServiceError
from clipper_deploy.testbed import commands
from clipper_deploy.errors import ClipperDeployError
c = Clipper({str(remote_inventory)!r}, say=lambda s: None)
out = {{"token_cached": None, "locked": None}}
try:
    with c.operation("deploy", {MODEL!r}, "9", []):
        out["locked"] = "acquired"
except ClipperDeployError as exc:
    out["locked"] = str(exc)
if sys.argv[1] == "free":
    with c.operation("rollback", {MODEL!r}, "1", []) as event:
        event["detail"] = "client b was here"
c.admin.get_all_applications()
out["token_cached"] = str(c.frontend.service.token_path)
print(json.dumps(out))
"""

        def client_b(mode: str) -> dict[str, Any]:
            proc = subprocess.run(
                [sys.executable, "-c", script, mode],
                cwd=other / "work",
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            return json.loads(proc.stdout.strip().splitlines()[-1])

        with remote_clipper.lock(MODEL, "deploy", "2"):
            held = client_b("held")
        assert f"pid {os.getpid()}" in held["locked"], held["locked"]
        assert "locked" in held["locked"]
        freed = client_b("free")
        assert freed["locked"] == "acquired"
        assert Path(freed["token_cached"]).is_relative_to(other)
        assert Path(freed["token_cached"]).stat().st_mode & 0o777 == 0o600
        events = remote_clipper.audit_log().read(MODEL)
        assert any(e.get("detail") == "client b was here" for e in events), events
        # client b's processes have exited; the frontend on h1 keeps answering
        assert remote_clipper.predict(APP, [1.0, 2.0])["output"] == "6.0"

    def test_the_dashboard_in_the_container_sees_the_audit_log_and_a_held_lock(
        self, remote_clipper: Clipper
    ) -> None:
        admin = remote_clipper.admin

        def get(path: str, token: str | None) -> tuple[int, bytes]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            req = urllib.request.Request(admin.base_url + path, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        status, page = get("/dashboard", None)
        assert status == 200 and b'id="login-form"' in page  # the assets are in the image
        assert get("/dashboard/api/state", None)[0] == 401
        with remote_clipper.lock(MODEL, "rollout", "3"):
            status, body = get("/dashboard/api/state", admin.token)
        assert status == 200
        doc = json.loads(body)
        assert doc["audit"]["error"] is None
        assert any(e.get("detail") == "client b was here" for e in doc["audit"]["events"])
        (op,) = doc["operations"]
        assert (op["model"], op["action"], op["version"]) == (MODEL, "rollout", "3")

    def test_a_rotated_token_is_read_again_over_ssh(self, remote_clipper: Clipper) -> None:
        service = remote_clipper.frontend.service
        old = service.token_path.read_text()
        started = time.monotonic()
        remote_clipper.frontend.service.rotate_token()
        print(f"\n[timing] rotate-token (restart included): {time.monotonic() - started:.1f} s")
        assert service.token_path.read_text() != old
        service.token_path.write_text(old)  # a client whose cache predates the rotation
        assert remote_clipper.admin.get_linked_models(APP) == [MODEL]
        assert service.token_path.read_text() != old

    def test_a_new_clipper_deploy_replaces_the_container_and_keeps_the_state(
        self, remote_clipper: Clipper, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = remote_clipper.frontend.service.container()
        assert before is not None
        monkeypatch.setattr(clipper_deploy, "__version__", f"{before.tool_version}.post1")
        started = time.monotonic()
        status = remote_clipper.start()
        print(f"\n[timing] upgrade start() (new image): {time.monotonic() - started:.1f} s")
        after = remote_clipper.frontend.service.container()
        assert after is not None and after.running
        assert after.image != before.image and after.tool_version.endswith(".post1")
        assert status["version"] == after.tool_version
        assert remote_clipper.admin.get_linked_models(APP) == [MODEL]
        deadline = time.monotonic() + REPLICAS_BACK_S
        while not connected_replicas(remote_clipper) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert remote_clipper.predict(APP, [1.0, 2.0])["output"] == "6.0"

    def test_an_unreachable_frontend_host_is_named(
        self, remote_bed: Any, remote_inventory: Path
    ) -> None:
        clipper = Clipper(remote_inventory, say=lambda s: None, connect_timeout=2.0)
        remote_bed.cut(FRONTEND_HOST)
        try:
            with pytest.raises(FrontendServiceError) as caught:
                clipper.stop()
        finally:
            remote_bed.heal(FRONTEND_HOST)
        print(f"\n[message] {caught.value}")
        assert str(caught.value).startswith("frontend host unreachable")
        assert f"{FRONTEND_HOST} (" in str(caught.value)

    def test_a_missing_token_says_how_to_fix_it(self, remote_clipper: Clipper) -> None:
        service = remote_clipper.frontend.service
        remote_clipper.stop()
        on_h1(remote_clipper, f"rm -f {service.state_dir}/admin.token")
        service.token_path.unlink()
        with pytest.raises(FrontendServiceError) as caught:
            remote_clipper.admin.get_all_applications()
        print(f"\n[message] {caught.value}")
        assert str(caught.value).startswith("admin token missing")
        assert "invoke frontend.start" in str(caught.value)
        remote_clipper.start()  # the frontend makes a new token; the state is kept
        assert remote_clipper.admin.get_linked_models(APP) == [MODEL]

    def test_stop_removes_the_container_and_keeps_the_state(self, remote_clipper: Clipper) -> None:
        state = remote_clipper.frontend.config.state_dir
        remote_clipper.stop()
        assert remote_clipper.frontend.service.container() is None
        kept = on_h1(remote_clipper, f"ls {state}").stdout.split()
        assert {"state.sqlite", "admin.token"} <= set(kept), kept
        started = time.monotonic()
        remote_clipper.start()
        print(f"\n[timing] start() after stop (image cached): {time.monotonic() - started:.1f} s")
        assert remote_clipper.admin.get_linked_models(APP) == [MODEL]

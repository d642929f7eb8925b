"""The remote frontend's pure parts: its docker command lines, the start plan read off the
host's facts, where the client caches the admin token, and the remote state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper_deploy.frontend.config import FrontendConfig
from clipper_deploy.frontend.tokens import remote_token_path, write_private
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts import frontend_files as ff
from clipper_deploy.hosts.inventory import Inventory
from clipper_deploy.orchestration import frontend_service as fs
from clipper_deploy.orchestration.frontend_access import FrontendAccess, frontend_host
from clipper_deploy.orchestration.frontend_service import plan_start, wanted_container

SHA = "ab" * 32
BASE = "clipper-deploy/base:py3.11-bookworm-x"
STATE = "/var/lib/clipper-deploy/frontend"


def wanted(sha: str = SHA, bind: str = "10.0.0.11"):
    return wanted_container(FrontendConfig(state_dir=Path(STATE), bind=bind), sha, BASE)


def reading(**kw) -> dc.FrontendHostReading:
    return dc.FrontendHostReading(**{"container": None, **kw})


def running(w, **kw) -> dc.FrontendContainer:
    fields = {
        "state": "running",
        "started_at": "2026-12-01T09:00:00Z",
        "image": w.image,
        "bundle": w.spec.bundle,
        "tool_version": w.spec.tool_version,
        "config_hash": w.spec.config_hash,
        **kw,
    }
    return dc.FrontendContainer(**fields)


class TestFrontendCommands:
    def test_the_container_runs_locked_down_on_the_host_network_with_its_state(self) -> None:
        w = wanted()
        line = dc.shell(dc.run_frontend(w.spec))
        assert line.startswith(
            "docker run --detach --name clipper-frontend --restart unless-stopped "
            "--network host --user 10001:10001 --cap-drop ALL "
            "--security-opt no-new-privileges --read-only "
            "--tmpfs /tmp:rw,nosuid,nodev,size=64m "
            f"--volume {STATE}:{STATE} --stop-timeout 10 "
        )
        assert f" {w.image} --state-dir {STATE} --bind 10.0.0.11 --query-port 1337 " in line
        assert f"--label org.clipper-deploy.bundle={SHA}" in line

    def test_a_replaced_or_stopped_frontend_is_stopped_gracefully_before_removal(self) -> None:
        assert dc.stop_and_remove_frontend() == (
            "{ docker stop --time 10 clipper-frontend; docker rm --force clipper-frontend; }"
            " >/dev/null 2>&1"
        )
        w = wanted()
        assert fs.start_command(w.spec) == (
            f"{ff.prepare_state_dir(STATE)} && {{ {dc.stop_and_remove_frontend()}; "
            f"{dc.shell(dc.run_frontend(w.spec))}; }}"
        )

    def test_the_image_is_named_by_version_and_bundle(self) -> None:
        assert dc.frontend_image("0.1.0", SHA) == "clipper-deploy/frontend:0.1.0-abababababab"

    def test_the_state_directory_belongs_to_the_container_user_mode_0700(self) -> None:
        assert ff.prepare_state_dir(STATE) == f"install -d -o 10001 -g 10001 -m 700 {STATE}"
        assert ff.state_dir_ready("10001:10001 700")
        assert not ff.state_dir_ready("0:0 755")

    def test_rotation_removes_the_token_and_restarts(self) -> None:
        assert ff.rotate_token(STATE) == (
            f"rm -f {STATE}/admin.token && docker restart --time 10 clipper-frontend >/dev/null"
        )

    def test_facts_parse_into_their_sections(self) -> None:
        w = wanted()
        out = (
            "::container\nrunning\t2026-12-01T09:00:00Z\timg:1\tsha\t0.1.0\tcfg\n"
            f"::image\n{SHA}\n::base\npresent\n::bundle\n::state\n10001:10001 700\n"
        )
        facts = dc.parse_frontend_facts(out)
        assert facts.container == dc.FrontendContainer(
            "running", "2026-12-01T09:00:00Z", "img:1", "sha", "0.1.0", "cfg"
        )
        assert (facts.image_bundle, facts.base_image_present, facts.bundle_present) == (
            SHA,
            True,
            False,
        )
        assert facts.state_dir == "10001:10001 700"
        assert "clipper-frontend" in dc.frontend_facts(w.image, BASE, "/b", STATE)

    def test_no_container_parses_as_none(self) -> None:
        assert dc.parse_frontend_facts("::container\n::image\n").container is None


class TestStartPlan:
    def test_a_fresh_host_gets_every_step(self) -> None:
        plan = plan_start("h1", reading(), wanted())
        assert plan.lines == [
            f"h1: ship-base {BASE}",
            "h1: upload frontend bundle abababababab",
            "h1: build clipper-deploy/frontend:0.1.0-abababababab",
            "h1: start clipper-frontend",
        ]

    def test_the_same_image_running_needs_nothing(self) -> None:
        w = wanted()
        facts = reading(container=running(w), image_bundle=SHA, state_dir="10001:10001 700")
        plan = plan_start("h1", facts, w)
        assert plan.steps == () and plan.notes[0].startswith("already running")

    def test_a_new_version_builds_and_replaces_the_container(self) -> None:
        old = wanted("cd" * 32)
        facts = reading(
            container=running(old),
            image_bundle="cd" * 32,
            base_image_present=True,
            state_dir="10001:10001 700",
        )
        plan = plan_start("h1", facts, wanted())
        assert [s.kind for s in plan] == ["upload", "build", "start"]
        assert plan.steps[-1].reason.startswith("replaces clipper-deploy/frontend:0.1.0-cdcd")

    def test_changed_settings_replace_the_container_without_a_build(self) -> None:
        w = wanted()
        facts = reading(
            container=running(w, config_hash="other"),
            image_bundle=SHA,
            state_dir="10001:10001 700",
        )
        (step,) = plan_start("h1", facts, w).steps
        assert (step.kind, step.reason) == ("start", "the frontend's settings changed")

    def test_a_stopped_container_is_started_again(self) -> None:
        w = wanted()
        facts = reading(
            container=running(w, state="exited"), image_bundle=SHA, state_dir="10001:10001 700"
        )
        (step,) = plan_start("h1", facts, w).steps
        assert step.reason == "the container is exited"
        assert step.command.startswith(ff.prepare_state_dir(STATE))


class TestTokenCache:
    def test_one_file_per_inventory_and_address_under_the_config_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        a = remote_token_path(tmp_path / "a.ini", "10.0.0.11", 1338)
        b = remote_token_path(tmp_path / "b.ini", "10.0.0.11", 1338)
        assert a != b and a.parent == tmp_path / "clipper-deploy" / "tokens"
        assert a.name.startswith("10.0.0.11_1338-")

    def test_the_cached_token_is_mode_0600(self, tmp_path: Path) -> None:
        path = tmp_path / "tokens" / "t.token"
        write_private(path, "secret\n")
        assert path.stat().st_mode & 0o777 == 0o600


class TestRemoteStateDir:
    def access(self, tmp_path: Path, extra: str = "") -> FrontendAccess:
        inv = tmp_path / "inventory.ini"
        inv.write_text(f"[clipper]\nh1 ansible_host=10.0.0.11 {extra}\n")
        inventory = Inventory.from_file(inv)
        return FrontendAccess(inventory, frontend_host(inventory), say=lambda s: None)

    def test_the_default_is_on_the_host(self, tmp_path: Path) -> None:
        assert str(self.access(tmp_path).config.state_dir) == STATE

    def test_a_relative_one_is_under_the_hosts_root(self, tmp_path: Path) -> None:
        config = self.access(tmp_path, "clipper_state_dir=front").config
        assert str(config.state_dir) == "/var/lib/clipper-deploy/front"
        assert config.bind == "10.0.0.11"

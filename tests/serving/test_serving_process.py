"""The process helper and ``invoke frontend.start|stop|status`` on this machine."""

from __future__ import annotations

import stat

import pytest
from invoke import Context
from serving_helpers import free_port

from clipper_deploy.cli import frontend_tasks
from clipper_deploy.frontend import process
from clipper_deploy.frontend.client import AdminClient
from clipper_deploy.frontend.config import FrontendConfig
from clipper_deploy.frontend.tokens import client_token_path


@pytest.fixture
def config(tmp_path, client_config):
    cfg = FrontendConfig(
        state_dir=tmp_path / "state",
        query_port=free_port(),
        admin_port=free_port(),
        replica_port=free_port(),
    )
    yield cfg
    process.stop(cfg.state_dir)


class TestProcessHelper:
    def test_start_waits_until_it_answers_and_copies_the_token(self, config):
        st = process.start(config)
        assert st.running and st.pid
        token_path = client_token_path("127.0.0.1", config.admin_port)
        assert st.token_path == str(token_path)
        assert stat.S_IMODE(token_path.stat().st_mode) == 0o600
        admin = AdminClient(f"http://127.0.0.1:{config.admin_port}")  # token from the config
        admin.add_app("a", "doubles")
        assert admin.get_all_applications() == ["a"]

    def test_start_twice_keeps_the_first(self, config):
        first = process.start(config)
        second = process.start(config)
        assert second.pid == first.pid and "already running" in second.message

    def test_stop_then_status(self, config):
        pid = process.start(config).pid
        stopped = process.stop(config.state_dir)
        assert not stopped.running and f"stopped pid {pid}" == stopped.message
        assert not process.pid_alive(pid)
        assert "not running" in process.status(config.state_dir).message

    def test_a_failed_start_shows_the_log(self, config):
        process.start(config)
        clash = FrontendConfig(
            state_dir=config.state_dir.parent / "other",
            query_port=config.query_port,
            admin_port=free_port(),
            replica_port=free_port(),
        )
        with pytest.raises(process.FrontendProcessError, match="exited with status 1"):
            process.start(clash, timeout=15)


class TestInvokeTasks:
    def test_start_status_stop(self, config, capsys):
        ctx = Context()
        frontend_tasks.start(
            ctx,
            state_dir=str(config.state_dir),
            query_port=config.query_port,
            admin_port=config.admin_port,
            replica_port=config.replica_port,
        )
        out = capsys.readouterr().out
        assert "started as pid" in out and "admin token: copied to" in out
        frontend_tasks.status(ctx, state_dir=str(config.state_dir))
        out = capsys.readouterr().out
        assert "the frontend runs as pid" in out and "0 replica(s)" in out
        frontend_tasks.stop(ctx, state_dir=str(config.state_dir))
        assert "stopped pid" in capsys.readouterr().out

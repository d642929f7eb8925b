"""The clipper-deploy command's argument handling and settings."""

from __future__ import annotations

import pytest
from invoke import Context, Exit

from clipper_deploy.cli.program import ClipperDeployConfig, help_first, program
from clipper_deploy.cli.settings import seconds_setting, setting


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["cd", "deploy", "--help"], ["cd", "--help", "deploy"]),
        (["cd", "lock.status", "-h"], ["cd", "-h", "lock.status"]),
        (["cd", "--help", "deploy"], ["cd", "--help", "deploy"]),
        (["cd", "deploy", "--playbook", "p.yml"], ["cd", "deploy", "--playbook", "p.yml"]),
        (["cd", "--list"], ["cd", "--list"]),
    ],
)
def test_task_help_is_asked_before_the_task(argv: list[str], expected: list[str]) -> None:
    assert help_first(argv) == expected


def test_the_program_serves_the_projects_namespace() -> None:
    names = set(program.namespace.task_names)
    assert {"deploy", "rollout", "rollback", "status", "testbed.up", "frontend.start"} <= names


def test_settings_come_from_clipper_deploy_files_and_variables(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "clipper-deploy.yaml").write_text("inventory: from-file.ini\nlock_wait: 5\n")
    monkeypatch.chdir(tmp_path)
    config = ClipperDeployConfig()
    config.load_shell_env()
    c = Context(config=config)
    assert setting(c, "inventory") == "from-file.ini"
    assert seconds_setting(c, "lock_wait") == 5.0
    assert seconds_setting(c, "lock_wait", "2.5") == 2.5  # a flag beats the file
    monkeypatch.setenv("CLIPPER_DEPLOY_LOCK_WAIT", "7")
    config = ClipperDeployConfig()
    config.load_shell_env()
    assert seconds_setting(Context(config=config), "lock_wait") == 7.0


def test_a_bad_number_of_seconds_names_its_source(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    c = Context(config=ClipperDeployConfig())
    with pytest.raises(Exit, match="--lock-wait must be a number of seconds >= 0, not '-1'"):
        seconds_setting(c, "lock_wait", "-1")

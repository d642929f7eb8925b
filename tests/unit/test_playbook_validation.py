"""A playbook is checked when it is loaded: a bad value fails at once, naming file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.orchestration.playbook import PlaybookError, load_playbook

GOOD = """\
model: m
function: f.py:predict
input_type: doubles
replicas: 2
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "play.yml"
    path.write_text(GOOD + extra)
    return path


def error_of(tmp_path: Path, extra: str) -> str:
    path = write(tmp_path, extra)
    with pytest.raises(PlaybookError) as raised:
        load_playbook(path)
    return str(raised.value)


class TestLoadTimeValidation:
    def test_a_good_playbook_loads(self, tmp_path: Path) -> None:
        book = load_playbook(write(tmp_path, "serial: [1, '50%']\nmax_fail_percentage: 20\n"))
        assert (book.model, book.replicas, book.serial) == ("m", 2, [1, "50%"])

    def test_the_container_network_defaults_to_host_and_can_be_set(self, tmp_path: Path) -> None:
        assert load_playbook(write(tmp_path, "")).network == "host"
        book = load_playbook(write(tmp_path, "container: {network: bridge}\n"))
        assert book.network == "bridge" and book.deploy_settings()["network"] == "bridge"

    def test_a_bad_network_name_is_refused(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "container: {network: 'host; rm -rf /'}\n")
        assert "container.network must be a Docker network name" in message

    def test_serial_zero_names_the_line(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "serial: 0\n")
        assert message.startswith(f"{tmp_path / 'play.yml'}:5: serial 0 is not a batch size;")

    def test_max_fail_percentage_out_of_range_names_the_line(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "retain: 2\nmax_fail_percentage: 300\n")
        assert message.startswith(f"{tmp_path / 'play.yml'}:6: max_fail_percentage 300 is out")

    def test_a_bad_cron_names_the_line(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "schedule: '61 * * * *'\n")
        assert message.startswith(f"{tmp_path / 'play.yml'}:5: schedule '61 * * * *' is not")

    def test_retain_zero_is_refused(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "retain: 0\n")
        assert f"{tmp_path / 'play.yml'}:5: retain" in message and "not 0" in message

    def test_an_unknown_key_names_its_line(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "replica: 3\n")
        assert message.startswith(f"{tmp_path / 'play.yml'}:5: unknown key(s) replica;")

    def test_a_bad_replicas_value_names_its_line(self, tmp_path: Path) -> None:
        path = tmp_path / "play.yml"
        path.write_text(GOOD.replace("replicas: 2", "replicas: two"))
        with pytest.raises(PlaybookError, match=r"play.yml:4: replicas must be a whole number"):
            load_playbook(path)

    def test_invalid_yaml_names_the_line(self, tmp_path: Path) -> None:
        message = error_of(tmp_path, "labels: [a, b\n")
        assert f"{tmp_path / 'play.yml'}:" in message and "not valid YAML" in message

    def test_every_playbook_error_is_a_clipper_deploy_error(self, tmp_path: Path) -> None:
        with pytest.raises(ClipperDeployError):
            load_playbook(tmp_path / "missing.yml")

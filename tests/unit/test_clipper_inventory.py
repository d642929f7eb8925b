"""The Clipper facade's checks of its inventory, before anything is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper_deploy.clipper import Clipper, ClipperError

REPOSITORY_EXAMPLE = Path(__file__).resolve().parents[2] / "inventory.ini"


class TestInventoryChecks:
    def test_the_repository_example_is_refused_so_its_placeholders_are_never_contacted(
        self,
    ) -> None:
        with pytest.raises(ClipperError, match="the repository's example inventory"):
            Clipper(REPOSITORY_EXAMPLE)

    def test_a_copy_without_the_marker_is_accepted(self, tmp_path: Path) -> None:
        text = REPOSITORY_EXAMPLE.read_text().replace("clipper_example_inventory=true", "")
        (tmp_path / "inventory.ini").write_text(text)
        clipper = Clipper(tmp_path / "inventory.ini")
        assert clipper.frontend_host.name == "frontend"
        assert clipper.frontend_config.bind == "frontend.example.invalid"

    def test_the_clipper_group_needs_exactly_one_host(self, tmp_path: Path) -> None:
        (tmp_path / "inventory.ini").write_text("[clipper]\na\nb\n[model_hosts]\nc\n")
        with pytest.raises(ClipperError, match="exactly one host"):
            Clipper(tmp_path / "inventory.ini")


class TestFrontendSettingsFromTheInventory:
    def write(self, tmp_path: Path, line: str) -> Clipper:
        (tmp_path / "inventory.ini").write_text(
            f"[clipper]\nfe ansible_host=127.0.0.1 ansible_connection=local {line}\n"
            "[model_hosts]\nh1\n"
        )
        return Clipper(tmp_path / "inventory.ini")

    def test_metrics_are_behind_the_token_by_default(self, tmp_path: Path) -> None:
        config = self.write(tmp_path, "").frontend_config
        assert config.metrics_open is False
        assert "--metrics-open" not in config.argv()

    def test_clipper_metrics_open_opens_them(self, tmp_path: Path) -> None:
        config = self.write(tmp_path, "clipper_metrics_open=true").frontend_config
        assert config.metrics_open is True
        assert "--metrics-open" in config.argv()

    def test_limits(self, tmp_path: Path) -> None:
        config = self.write(
            tmp_path,
            "clipper_max_body_bytes=2048 clipper_max_batch_inputs=10 clipper_max_queue=50 "
            "clipper_idle_timeout=5 clipper_batch_timeout=2.5",
        ).frontend_config
        assert (config.max_body_bytes, config.max_batch_inputs, config.max_queue) == (2048, 10, 50)
        assert (config.idle_timeout_s, config.batch_timeout_s) == (5.0, 2.5)

    def test_a_flag_that_is_not_a_boolean(self, tmp_path: Path) -> None:
        with pytest.raises(ClipperError, match="expected true or false"):
            _ = self.write(tmp_path, "clipper_metrics_open=perhaps").frontend_config

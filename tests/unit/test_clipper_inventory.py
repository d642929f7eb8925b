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

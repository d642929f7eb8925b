"""Removing pruned or stopped versions' bundles on a host: the shell line runs for real on a
directory laid out as a host's ``/var/lib/clipper-deploy`` (blobs hard-linked into bundles)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from clipper_deploy.hosts.upload import remove_bundles_command

OLD, KEPT = "a" * 64, "b" * 64


def lay_out(root: Path) -> None:
    """Two bundles: OLD holds a pickle only it uses (twice: two paths, one blob) and an
    environment layer it shares with KEPT; one more blob belongs to no bundle."""
    blobs = root / "blobs"
    blobs.mkdir(parents=True)
    for name, text in (("pickle", "state"), ("layer", "env"), ("loose", "other")):
        (blobs / name).write_text(text)
    for sha in (OLD, KEPT):
        (root / "bundles" / sha / "model").mkdir(parents=True)
        os.link(blobs / "layer", root / "bundles" / sha / "layer.tar")
    os.link(blobs / "pickle", root / "bundles" / OLD / "model" / "func.pkl")
    os.link(blobs / "pickle", root / "bundles" / OLD / "copy.pkl")


def run(command: str) -> None:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout and not done.stderr, done


class TestRemoveBundles:
    def test_frees_the_state_only_the_removed_bundle_held(self, tmp_path: Path) -> None:
        lay_out(tmp_path)
        run(remove_bundles_command([OLD], str(tmp_path)))
        assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == [KEPT]
        assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == ["layer", "loose"]
        assert (tmp_path / "bundles" / KEPT / "layer.tar").read_text() == "env"

    def test_a_bundle_already_gone_is_not_an_error(self, tmp_path: Path) -> None:
        lay_out(tmp_path)
        run(remove_bundles_command(["c" * 64], str(tmp_path)))
        assert len(list((tmp_path / "blobs").iterdir())) == 3

    def test_nothing_to_remove_is_a_no_op(self) -> None:
        assert remove_bundles_command([]) == "true"

    def test_only_hashes_are_accepted(self) -> None:
        with pytest.raises(ValueError, match="is not a bundle hash"):
            remove_bundles_command(["../../etc"])

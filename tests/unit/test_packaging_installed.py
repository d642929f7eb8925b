"""Installed distributions are read again exactly when they change."""

from __future__ import annotations

import os
from pathlib import Path

from clipper_deploy.packaging.environment import installed_distributions
from clipper_deploy.packaging.installed import kept, path_stamp


def make_dist(site: Path, name: str, version: str) -> Path:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return info


def test_the_stamp_changes_on_install_remove_and_metadata_edit(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    first = path_stamp([str(site)])
    info = make_dist(site, "alpha", "1.0")
    second = path_stamp([str(site)])
    assert second != first
    meta = info / "METADATA"
    meta.write_text(meta.read_text().replace("1.0", "1.1"))
    os.utime(meta, ns=(1, 10**18))  # an edit in place: only the file's time moves
    assert path_stamp([str(site)]) != second


def test_kept_reads_again_only_after_a_change(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    calls: list[int] = []

    def read() -> int:
        calls.append(1)
        return len(calls)

    assert kept("probe", [str(site)], read) == 1
    assert kept("probe", [str(site)], read) == 1
    make_dist(site, "beta", "2.0")
    assert kept("probe", [str(site)], read) == 2


def test_installed_distributions_sees_a_new_install(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_dist(site, "gamma", "1.0")
    names = [p.name for _, p in installed_distributions([str(site)])]
    assert names == ["gamma"]
    make_dist(site, "delta", "3.0")
    names = [p.name for _, p in installed_distributions([str(site)])]
    assert names == ["delta", "gamma"]

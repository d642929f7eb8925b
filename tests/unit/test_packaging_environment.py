"""Environment capture: conda-meta records, channel names, pip and conda kept apart."""

from __future__ import annotations

import json
from pathlib import Path

from clipper_deploy.packaging.environment import (
    CondaPackage,
    canonical_name,
    channel_base,
    channel_display_name,
    parse_conda_record,
    python_dists_of,
    read_conda_meta,
)

NUMPY_RECORD = {
    "name": "numpy",
    "version": "1.26.4",
    "build": "py311h64a7726_0",
    "channel": "https://conda.anaconda.org/conda-forge/linux-64",
    "subdir": "linux-64",
    "depends": ["python >=3.11,<3.12.0a0", "libblas >=3.9.0"],
    "url": "https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311h64a7726_0.conda",
    "sha256": "abc",
    "files": [
        "bin/f2py",
        "lib/python3.11/site-packages/numpy/__init__.py",
        "lib/python3.11/site-packages/numpy-1.26.4.dist-info/METADATA",
    ],
}


class TestCondaRecords:
    def test_a_record_keeps_name_version_build_and_channel(self) -> None:
        record = parse_conda_record(NUMPY_RECORD)
        assert (record.name, record.version, record.build) == ("numpy", "1.26.4", "py311h64a7726_0")
        assert record.channel == "https://conda.anaconda.org/conda-forge"
        assert record.display == "conda-forge::numpy 1.26.4 py311h64a7726_0"
        assert record.python_dists == ("numpy",)

    def test_the_channel_falls_back_to_the_url(self) -> None:
        data = {k: v for k, v in NUMPY_RECORD.items() if k != "channel"}
        assert parse_conda_record(data).channel == "https://conda.anaconda.org/conda-forge"

    def test_paths_data_is_read_when_files_is_empty(self) -> None:
        data = dict(NUMPY_RECORD, files=[])
        data["paths_data"] = {"paths": [{"_path": "site-packages/tiny-0.1.dist-info/RECORD"}]}
        assert parse_conda_record(data).python_dists == ("tiny",)

    def test_a_prefix_is_read_without_conda(self, tmp_path: Path) -> None:
        meta = tmp_path / "conda-meta"
        meta.mkdir()
        (meta / "numpy-1.26.4-py311h64a7726_0.json").write_text(json.dumps(NUMPY_RECORD))
        (meta / "history").write_text("==> 2024 <==\n")
        (meta / "broken.json").write_text("{")
        assert [r.name for r in read_conda_meta(tmp_path)] == ["numpy"]
        assert read_conda_meta(tmp_path / "missing") == ()


class TestNames:
    def test_channel_names(self) -> None:
        assert channel_base("file:///srv/chan/noarch/") == "file:///srv/chan"
        assert channel_display_name("https://conda.anaconda.org/bioconda") == "bioconda"
        assert channel_display_name("file:///srv/chan") == "file:///srv/chan"

    def test_distribution_names_are_normalized(self) -> None:
        assert canonical_name("Scikit_Learn") == "scikit-learn"
        assert python_dists_of(["a/Foo_Bar-1.0.dist-info/x", "b/baz-2.egg-info/PKG-INFO"]) == (
            "baz",
            "foo-bar",
        )

    def test_display_of_a_local_channel(self) -> None:
        package = CondaPackage("liba", "1.0", "0", "file:///tmp/chan")
        assert package.display == "file:///tmp/chan::liba 1.0 0"

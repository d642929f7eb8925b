"""Bundle hashing and the atomic writer."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from clipper_deploy.packaging import bundle as bundle_module
from clipper_deploy.packaging.bundle import (
    content_hash,
    entry_from_bytes,
    entry_from_file,
    model_identity,
    write_bundle,
)
from clipper_deploy.packaging.errors import BundleWriteError


class TestHashes:
    def test_content_hash_is_order_independent_and_content_sensitive(self) -> None:
        assert content_hash({"a": "1", "b": "2"}) == content_hash({"b": "2", "a": "1"})
        assert content_hash({"a": "1"}) != content_hash({"a": "2"})
        assert content_hash({"a": "1"}) != content_hash({"b": "1"})

    def test_model_identity_ignores_the_creation_time(self) -> None:
        model = {"name": "m", "version": "1", "created": "2024-01-01T00:00:00Z"}
        later = dict(model, created="2025-01-01T00:00:00Z")
        assert model_identity(model) == model_identity(later)
        assert model_identity(model) != model_identity(dict(model, version="2"))


class TestWriter:
    def entries(self, tmp_path: Path):
        source = tmp_path / "big.whl"
        source.write_bytes(b"wheel")
        return [
            entry_from_bytes("Dockerfile", b"FROM x\n"),
            entry_from_bytes("runtime/pkg/__main__.py", b"print(1)\n"),
            entry_from_file("wheels/big.whl", source, "ab"),
        ]

    def test_writes_everything_under_the_hash(self, tmp_path: Path) -> None:
        path, reused = write_bundle(self.entries(tmp_path), "f" * 64, tmp_path / "bundles")
        assert not reused and path.name == "f" * 64
        assert (path / "runtime" / "pkg" / "__main__.py").read_bytes() == b"print(1)\n"
        assert (path / "wheels" / "big.whl").read_bytes() == b"wheel"
        assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == ["f" * 64]

    def test_an_existing_bundle_is_reused(self, tmp_path: Path) -> None:
        write_bundle(self.entries(tmp_path), "e" * 64, tmp_path / "bundles")
        _, reused = write_bundle(self.entries(tmp_path), "e" * 64, tmp_path / "bundles")
        assert reused

    @pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
    def test_a_failed_write_leaves_nothing(self, tmp_path: Path, monkeypatch, code) -> None:
        calls = []

        def failing(dest, data, mode):
            calls.append(dest)
            if len(calls) == 2:
                raise OSError(code, "simulated")
            dest.write_bytes(data)

        monkeypatch.setattr(bundle_module, "_write_bytes", failing)
        bundles = tmp_path / "bundles"
        with pytest.raises(BundleWriteError) as info:
            write_bundle(self.entries(tmp_path), "d" * 64, bundles)
        assert list(bundles.iterdir()) == []
        if code == errno.ENOSPC:
            assert "No space left on device" in str(info.value)

"""A bundle: the build context a Docker host needs, in a directory named by its content hash.

Its ``model/`` directory (the function's pickle and ``model.json``) is not built into the
image: ``.dockerignore`` leaves it out of the build context, and the host mounts it read-only
into the version's containers. The rest (Dockerfile, environment layers, runtime) depends only
on the environment.

Pure parts (entries, hashes) are apart from the writer. The writer fills a temporary directory
next to the final one and renames it into place, so a bundle directory is either complete or
absent -- a full disk or any other error leaves nothing behind. Large files (wheels, the conda
layer) are hard-linked from the client cache when possible, so writing a bundle costs little
more than its small files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipper_deploy.packaging.errors import BundleWriteError
from clipper_deploy.settings import MODEL_DIR

FUNC_FILE = f"{MODEL_DIR}/func.pkl"
MODEL_FILE = f"{MODEL_DIR}/model.json"
DOCKERIGNORE = (
    f"# The model files are mounted read-only into the containers, not built in.\n{MODEL_DIR}\n"
)


@dataclass(frozen=True)
class BundleEntry:
    """One file of a bundle: its relative path, hash, and bytes or a source file."""

    path: str
    sha256: str
    data: bytes | None = None
    source: Path | None = None
    mode: int = 0o644
    size: int = 0


def entry_from_bytes(path: str, data: bytes, mode: int = 0o644) -> BundleEntry:
    """An entry whose content is in memory."""
    return BundleEntry(path, hashlib.sha256(data).hexdigest(), data=data, mode=mode, size=len(data))


def entry_from_file(path: str, source: Path, sha256: str, mode: int = 0o644) -> BundleEntry:
    """An entry copied (or hard-linked) from ``source``, whose hash is already known."""
    return BundleEntry(path, sha256, source=source, mode=mode, size=source.stat().st_size)


def entries_from_package(package_dir: Path, prefix: str) -> list[BundleEntry]:
    """Every file of the Python package at ``package_dir``, under ``prefix/`` in the bundle,
    in sorted order; bytecode caches are left out."""
    entries: list[BundleEntry] = []
    for path in sorted(package_dir.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        rel = path.relative_to(package_dir).as_posix()
        entries.append(entry_from_bytes(f"{prefix}/{rel}", path.read_bytes()))
    return entries


@dataclass(frozen=True)
class Bundle:
    """A written bundle.

    ``sha256`` is the content hash and the directory's name; ``files`` maps every relative path
    to its sha256 (so a shipper can send only what a host lacks); ``model`` is ``model.json``;
    ``environment`` is the hash of everything but the model files (:func:`environment_hash`):
    what the image is built from, the same for every version of a function in one environment.
    """

    path: Path
    sha256: str
    files: Mapping[str, str]
    model: Mapping[str, Any]
    reused: bool = False
    warnings: tuple[str, ...] = field(default=())
    environment: str = ""

    @property
    def dockerfile(self) -> Path:
        """The bundle's ``Dockerfile``."""
        return self.path / "Dockerfile"

    @property
    def image_id(self) -> str | None:
        """The ID of the image made on the client (the sha256 of its config), None when hosts
        build the Dockerfile."""
        sha = self.files.get(IMAGE_CONFIG)
        return f"sha256:{sha}" if sha else None

    @property
    def load_files(self) -> tuple[str, ...]:
        """The files a host streams into ``docker load`` (the manifest, the config, then the
        layers the bundle holds: not the base image's), () when hosts build the Dockerfile."""
        if IMAGE_MANIFEST not in self.files:
            return ()
        (entry,) = json.loads((self.path / IMAGE_MANIFEST).read_text(encoding="utf-8"))
        layers = [p for p in entry["Layers"] if p in self.files]
        return (IMAGE_MANIFEST, entry["Config"], *layers)

    @property
    def size(self) -> int:
        """Total size of the bundle's files in bytes."""
        return sum((self.path / rel).stat().st_size for rel in self.files)


def content_hash(files: Mapping[str, str]) -> str:
    """sha256 over ``sha256sum``-style lines (``<hash>  <path>``), sorted by path."""
    lines = "".join(f"{files[path]}  {path}\n" for path in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


IMAGE_CONFIG = "image/config.json"
IMAGE_MANIFEST = "manifest.json"
"""docker load reads its index at the top of the archive, so it is at the top of the bundle."""
"""A client-made image's config (:mod:`~.image_archive`): it carries the environment's hash, so
the hash leaves it out (it is made from the hashed files)."""


def environment_hash(files: Mapping[str, str]) -> str:
    """The content hash of a bundle's build context: every file but the model files (which are
    mounted, not built in) and the image config made from the others. Two versions of a
    function in one environment share it, so a host that has the image of one tags it for the
    other."""
    return content_hash(
        {p: h for p, h in files.items() if not p.startswith(f"{MODEL_DIR}/") and p != IMAGE_CONFIG}
    )


def model_json(model: Mapping[str, Any]) -> bytes:
    """The canonical bytes of ``model.json``."""
    return (json.dumps(dict(model), indent=2, sort_keys=True) + "\n").encode("utf-8")


def model_identity(model: Mapping[str, Any]) -> str:
    """The hash of ``model.json`` without its ``created`` time (part of the bundle's identity).

    Bundling the same function in the same environment twice gives the same bundle, created
    once.
    """
    return hashlib.sha256(
        model_json({k: v for k, v in model.items() if k != "created"})
    ).hexdigest()


def write_bundle(
    entries: Iterable[BundleEntry], bundle_sha256: str, bundles_dir: Path
) -> tuple[Path, bool]:
    """Write ``entries`` to ``bundles_dir/<bundle_sha256>`` atomically.

    Returns the directory and whether it already existed (then nothing is written).
    """
    final = bundles_dir / bundle_sha256
    if final.is_dir():
        return final, True
    entries = list(entries)
    tmp: str | None = None
    try:
        bundles_dir.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".partial-{bundle_sha256[:12]}-", dir=bundles_dir)
        os.chmod(tmp, 0o755)
        for entry in entries:
            dest = Path(tmp, entry.path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if entry.data is not None:
                _write_bytes(dest, entry.data, entry.mode)
            elif entry.source is not None:
                _place_file(entry.source, dest, entry.mode)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and final.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)  # written meanwhile by someone else
                return final, True
            raise
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(exc, bundles_dir, sum(e.size for e in entries)) from exc
    return final, False


def _write_bytes(dest: Path, data: bytes, mode: int) -> None:
    with open(dest, "wb") as f:
        f.write(data)
    os.chmod(dest, mode)


def _place_file(source: Path, dest: Path, mode: int) -> None:
    try:
        os.link(source, dest)
        if (os.stat(dest).st_mode & 0o777) == mode:
            return
        os.unlink(dest)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
    shutil.copyfile(source, dest)
    os.chmod(dest, mode)


def _write_error(exc: OSError, bundles_dir: Path, size: int) -> BundleWriteError:
    mib = size / (1 << 20)
    if exc.errno == errno.ENOSPC:
        return BundleWriteError(
            f"No space left on device while writing the bundle to {bundles_dir} (it needs about "
            f"{mib:.1f} MiB); nothing was kept. Free some space there, or pass bundles_dir= a "
            "directory on a file system with room."
        )
    return BundleWriteError(
        f"Could not write the bundle to {bundles_dir}: {exc}; nothing was kept. Check that the "
        "directory is writable, or pass bundles_dir= another directory."
    )


def read_files(path: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``path`` (for a bundle found on disk)."""
    out: dict[str, str] = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = Path(root, name)
            digest = hashlib.sha256(full.read_bytes()).hexdigest()
            out[full.relative_to(path).as_posix()] = digest
    return out

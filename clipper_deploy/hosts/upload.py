"""Content-addressed upload of a bundle: send only the files a host does not have yet.

On each host, under ``/var/lib/clipper-deploy`` (``root``)::

    blobs/<sha256>              every file ever uploaded, named by its content hash
    bundles/<bundle sha256>/    a bundle, assembled from blobs with hard links

Two round trips: (1) one command says whether the bundle is already assembled (then done) or
which of its blobs are missing; (2) one SSH channel streams those blobs as a tar into
``tar -x`` (as ``blobs/<sha>.part-<token>``), checks their hashes, renames them into place,
and assembles the bundle in a temporary directory renamed into place, so a half-made bundle
is never seen. A redeploy of the same environment sends only the function, ``model.json``
and the Dockerfile.
"""

from __future__ import annotations

import contextlib
import posixpath
import shlex
import tarfile
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts.transfer import Sent, stream_into
from clipper_deploy.settings import REMOTE_ROOT


class UploadError(ClipperDeployError, RuntimeError):
    """An upload failed for a reason the user can fix on the host (a full disk); the message
    says how much room there is, how much was needed, and what to do."""


@dataclass(frozen=True)
class UploadReport:
    """What an upload did on one host."""

    bundle_dir: str
    uploaded: int
    uploaded_bytes: int
    already_there: bool


def bundle_dir(bundle_sha: str, root: str = REMOTE_ROOT) -> str:
    return posixpath.join(root, "bundles", bundle_sha)


def probe_command(target: str, hashes: list[str], root: str = REMOTE_ROOT) -> str:
    """Prints ``present`` if the bundle is assembled, else the hashes not in ``blobs/``."""
    blobs = shlex.quote(posixpath.join(root, "blobs"))
    listed = " ".join(hashes)
    return (
        f"if [ -d {shlex.quote(target)} ]; then echo present; else "
        f"mkdir -p {blobs} && cd {blobs} && for h in {listed}; do "
        '[ -e "$h" ] || echo "$h"; done; fi'
    )


def receive_command(assemble: str, root: str = REMOTE_ROOT) -> str:
    """Unpack the missing blobs (a tar on standard input) into ``blobs/``, then ``assemble``."""
    blobs = shlex.quote(posixpath.join(root, "blobs"))
    return f"set -e\nmkdir -p {blobs}\ntar -x --no-same-owner -f - -C {blobs}\n{assemble}"


def assemble_command(
    files: Mapping[str, str],
    bundle_sha: str,
    fresh: list[str],
    token: str,
    root: str = REMOTE_ROOT,
) -> str:
    """Check the hashes of the blobs just uploaded (as ``<sha>.part-<token>``) and move them
    into place, then hard-link every file into the bundle directory, atomically."""
    blobs = posixpath.join(root, "blobs")
    final = bundle_dir(bundle_sha, root)
    tmp = posixpath.join(root, "bundles", f".{bundle_sha}.{token}")
    q = shlex.quote
    lines = ["set -e", f"cd {q(blobs)}"]
    if fresh:
        checks = "".join(f"{h}  {h}.part-{token}\\n" for h in fresh)
        lines.append(f"printf '{checks}' | sha256sum --check --quiet --strict")
        lines += [f"mv -f {h}.part-{token} {h}" for h in fresh]
    directories = sorted({posixpath.dirname(p) for p in files if posixpath.dirname(p)})
    lines.append(f"mkdir -p {q(tmp)}")
    if directories:
        lines.append("mkdir -p " + " ".join(q(posixpath.join(tmp, d)) for d in directories))
    for path, sha in sorted(files.items()):
        lines.append(f"ln -f {q(posixpath.join(blobs, sha))} {q(posixpath.join(tmp, path))}")
    lines.append(f"if [ -d {q(final)} ]; then rm -rf {q(tmp)}; else mv {q(tmp)} {q(final)}; fi")
    return "\n".join(lines)


def upload_bundle(
    connection: Any,
    local_dir: Path,
    files: Mapping[str, str],
    bundle_sha: str,
    root: str = REMOTE_ROOT,
    *,
    on_sent: Sent | None = None,
) -> UploadReport:
    """Make ``bundles/<bundle_sha>`` exist on the connection's host, uploading what is missing.

    ``files`` maps each relative path of the bundle (in ``local_dir``) to its sha256;
    ``on_sent(sent, total)`` follows the bytes of the archive sent.
    """
    target = bundle_dir(bundle_sha, root)
    by_hash: dict[str, str] = {}
    for path, sha in files.items():
        by_hash.setdefault(sha, path)
    probe = connection.run(probe_command(target, sorted(by_hash), root), hide=True, in_stream=False)
    if probe.stdout.strip() == "present":
        return UploadReport(target, 0, 0, already_there=True)
    missing = [h for h in probe.stdout.split() if h in by_hash]
    token = uuid.uuid4().hex[:12]
    sent_bytes = sum((local_dir / by_hash[sha]).stat().st_size for sha in missing)
    assemble = assemble_command(files, bundle_sha, missing, token, root)
    try:
        if not missing:
            connection.run(assemble, hide=True, in_stream=False)
        else:
            with tempfile.TemporaryFile() as archive:
                with tarfile.open(fileobj=archive, mode="w") as tar:
                    for sha in missing:
                        tar.add(local_dir / by_hash[sha], arcname=f"{sha}.part-{token}")
                archive.seek(0)
                received = stream_into(
                    connection,
                    ["sh", "-c", receive_command(assemble, root)],
                    archive,
                    on_sent=on_sent,
                )
            if not received.ok:
                raise OSError(f"receiving the bundle failed: {received.stderr.strip()}")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            connection.run(cleanup_command(bundle_sha, token, root), hide=True, in_stream=False)
        full = disk_full_message(connection, root, sent_bytes, exc)
        if full:
            raise UploadError(full) from exc
        raise
    return UploadReport(target, len(missing), sent_bytes, already_there=False)


def disk_full_message(connection: Any, root: str, needed: int, exc: BaseException) -> str | None:
    """Why an upload of ``needed`` bytes failed, when the cause is a full file system under
    ``root`` (the SFTP error alone only says "Failure" or "size mismatch"); None otherwise."""
    if isinstance(exc, KeyboardInterrupt):
        return None
    try:
        out = connection.run(
            f"df -Pk {shlex.quote(root)} | tail -n 1", hide=True, in_stream=False, warn=True
        )
        free = int(out.stdout.split()[3]) * 1024
    except Exception:
        return None
    said = str(exc) + str(getattr(getattr(exc, "result", None), "stderr", ""))
    if free >= needed and "No space left" not in said:
        return None
    detail = said.strip().splitlines()[-1] if said.strip() else "no details"
    return (
        f"no space left in {root}: {_size(free)} free, this upload needs {_size(needed)} "
        f"({type(exc).__name__}: {detail}); free space on the host "
        f"(`docker system prune`; old bundles in {root}/bundles) or grow its file system, "
        "then deploy again"
    )


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def cleanup_command(bundle_sha: str, token: str, root: str = REMOTE_ROOT) -> str:
    """Remove what a failed upload left: its ``.part`` blobs and half-assembled directory."""
    blobs = shlex.quote(posixpath.join(root, "blobs"))
    tmp = shlex.quote(posixpath.join(root, "bundles", f".{bundle_sha}.{token}"))
    return f"rm -rf {blobs}/*.part-{token} {tmp}"

"""Content-addressed upload of a bundle: send only the files a host does not have yet.

On each host, under ``/var/lib/clipper-deploy`` (``root``)::

    blobs/<sha256>              every file ever uploaded, named by its content hash
    bundles/<bundle sha256>/    a bundle, assembled from blobs with hard links

Two round trips: (1) one command says whether the bundle is already assembled (then done) or
which of its blobs are missing; (2) one SSH channel streams those blobs as a tar into
``tar -x`` (as ``blobs/<sha>.part-<token>``), checks their hashes, renames them into place,
and assembles the bundle in a temporary directory renamed into place, so a half-made bundle
is never seen. A redeploy of the same environment sends only the function and
``model.json``. The missing blobs are written into the SSH channel as a tar while it is being
made (no local temporary copy), so a large pickle goes at the link's speed.

A bundle's ``model/`` directory (the function's pickle and ``model.json``) is what the
version's containers mount read-only; :func:`remove_bundles_command` deletes bundles (and the
blobs only they held) when their versions are pruned or stopped.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shlex
import tarfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts.transfer import Sent, stream_into
from clipper_deploy.settings import MODEL_DIR, REMOTE_ROOT


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


def bundles_root(root: str = REMOTE_ROOT) -> str:
    """The directory holding every assembled bundle on a host."""
    return posixpath.join(root, "bundles")


def bundle_dir(bundle_sha: str, root: str = REMOTE_ROOT) -> str:
    return posixpath.join(bundles_root(root), bundle_sha)


def model_dir(bundle_sha: str, root: str = REMOTE_ROOT) -> str:
    """The bundle's model files on the host (mounted read-only into its containers)."""
    return posixpath.join(bundle_dir(bundle_sha, root), MODEL_DIR)


def is_bundle_hash(text: str) -> bool:
    """Whether ``text`` can name a bundle directory (a hex digest; labels read off a host are
    checked before they reach a command line)."""
    return bool(text) and len(text) <= 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def remove_bundles_command(bundle_shas: Iterable[str], root: str = REMOTE_ROOT) -> str:
    """Shell: delete the bundles ``bundle_shas`` and every blob that only they linked to (a
    pruned version's pickle), keeping blobs other bundles still use (its environment layer).

    The blobs' inodes are noted, the bundle directories removed, then blobs with one link left
    among those inodes deleted. Prints nothing; succeeds when the bundles are already gone."""
    shas = sorted(set(bundle_shas))
    for sha in shas:
        if not is_bundle_hash(sha):
            raise ValueError(f"{sha!r} is not a bundle hash")
    if not shas:
        return "true"
    q = shlex.quote
    dirs = " ".join(q(bundle_dir(sha, root)) for sha in shas)
    blobs = q(posixpath.join(root, "blobs"))
    return (
        f"inodes=$(find {dirs} -type f -printf '%i ' 2>/dev/null); "
        f"rm -rf {dirs}; "
        f'[ -z "$inodes" ] || [ ! -d {blobs} ] || '
        f"find {blobs} -maxdepth 1 -type f -links 1 -printf '%i %p\\n' | "
        'awk -v keep="$inodes" \'BEGIN { n = split(keep, k, " "); '
        "for (i = 1; i <= n; i++) s[k[i]] = 1 } ($1 in s) { print $2 }' | "
        "xargs -r rm -f; true"
    )


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


def send_blobs_command(hashes: list[str], token: str, root: str = REMOTE_ROOT) -> str:
    """On a host that holds them: ``hashes``' blobs as a tar on standard output, named
    ``<sha>.part-<token>`` as :func:`receive_command` expects (a relay's source)."""
    blobs = shlex.quote(posixpath.join(root, "blobs"))
    transform = shlex.quote(f"s,$,.part-{token},")
    return f"tar -c -f - -C {blobs} --transform {transform} -- {' '.join(hashes)}"


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


def missing_blobs(
    connection: Any, files: Mapping[str, str], bundle_sha: str, root: str = REMOTE_ROOT
) -> list[str] | None:
    """Ask the host which of the bundle's blobs (``files``: path -> sha256) it lacks; None
    when the bundle is assembled there already (one round trip)."""
    probe = connection.run(
        probe_command(bundle_dir(bundle_sha, root), sorted(set(files.values())), root),
        hide=True,
        in_stream=False,
    )
    if probe.stdout.strip() == "present":
        return None
    return probe.stdout.split()


def upload_bundle(
    connection: Any,
    local_dir: Path,
    files: Mapping[str, str],
    bundle_sha: str,
    root: str = REMOTE_ROOT,
    *,
    receiver: str | None = None,
    on_sent: Sent | None = None,
    missing: Sequence[str] | None = None,
) -> UploadReport:
    """Make ``bundles/<bundle_sha>`` exist on the connection's host, uploading what is missing.

    ``files`` maps each relative path of the bundle (in ``local_dir``) to its sha256;
    ``receiver`` names the host in the transfer meter; ``on_sent(sent, total)`` follows the
    bytes of the archive sent. ``missing`` (the blobs the host lacks, known from its facts)
    saves the first round trip; the hashes of what arrives are checked either way, and a
    blob that went away since makes the assembly fail, not a broken bundle.
    """
    target = bundle_dir(bundle_sha, root)
    by_hash: dict[str, str] = {}
    for path, sha in files.items():
        by_hash.setdefault(sha, path)
    missing = missing_blobs(connection, files, bundle_sha, root) if missing is None else missing
    if missing is None:
        return UploadReport(target, 0, 0, already_there=True)
    missing = [h for h in missing if h in by_hash]
    token = uuid.uuid4().hex[:12]
    sent_bytes = sum((local_dir / by_hash[sha]).stat().st_size for sha in missing)
    assemble = assemble_command(files, bundle_sha, missing, token, root)
    try:
        if not missing:
            connection.run(assemble, hide=True, in_stream=False)
        else:
            members = [(local_dir / by_hash[sha], f"{sha}.part-{token}") for sha in missing]
            with streamed_tar(members) as archive:
                received = stream_into(
                    connection,
                    ["sh", "-c", receive_command(assemble, root)],
                    archive,
                    receiver=receiver,
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


@contextlib.contextmanager
def streamed_tar(members: Sequence[tuple[Path, str]]) -> Iterator[BinaryIO]:
    """A readable pipe carrying a tar of ``members`` (``(file, name in the tar)``), written by
    a thread while it is read: no local temporary copy, whatever the files' size. An error of
    the writer is raised on exit; leaving early (the remote end failed) stops the writer."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    failed: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|") as tar:
                for source, name in members:
                    tar.add(source, arcname=name)
        except BrokenPipeError:
            pass  # the reader went away: its side reports why
        except BaseException as exc:
            failed.append(exc)

    writer = threading.Thread(target=write, name="upload-tar", daemon=True)
    writer.start()
    try:
        yield reader
    finally:
        reader.close()  # unblocks a writer still sending
        writer.join()
    if failed:
        raise failed[0]


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

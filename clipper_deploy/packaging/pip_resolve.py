"""Resolve pip requirements to Linux wheels with pip's own resolver, and fetch them once.

Resolution is ``pip install --dry-run --report`` for the target platform (every manylinux tag
the target's glibc runs, the target's CPython and ABI, binaries only), so markers, extras and
conflicts are judged by pip itself. A distribution with no usable Linux build ("No matching
distribution found") is removed and the resolution retried; its name is reported, or raised in
strict mode. The resolution is cached by its inputs, and each wheel by its sha256, so bundling
the same environment again runs no pip at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from clipper_deploy.packaging.cache import (
    Cache,
    digest,
    file_sha256,
    read_json,
    store_file,
    write_json,
)
from clipper_deploy.packaging.environment import canonical_name, requirement_name
from clipper_deploy.packaging.errors import (
    IndexUnreachableError,
    PipResolutionError,
    UnavailablePackagesError,
)
from clipper_deploy.packaging.printer import Printer
from clipper_deploy.packaging.selection import Selection
from clipper_deploy.packaging.target import Target

PIP_RETRIES = 2
PIP_TIMEOUT = 30
_FORMAT = 1
_NO_MATCH = re.compile(r"No matching distribution found for ([^\s;]+)")
_UNREACHABLE = (
    "Retrying (Retry(",
    "connection broken by",
    "Could not fetch URL",
    "NewConnectionError",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "Temporary failure in name resolution",
)
_PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE")


@dataclass(frozen=True)
class Wheel:
    """One resolved wheel."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str

    @property
    def requirement(self) -> str:
        """The hash-pinned line of ``requirements.txt``."""
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class PipResolution:
    """The wheel set for a selection, and the pins skipped for lack of a Linux build."""

    wheels: tuple[Wheel, ...]
    skipped: tuple[str, ...] = ()
    cached: bool = False


def pip_argv(python: str) -> list[str]:
    """How pip is run: the client's own, as a module."""
    return [python, "-m", "pip"]


def target_options(target: Target) -> list[str]:
    """pip options that describe the container instead of this machine."""
    options = ["--only-binary=:all:", "--python-version", target.python]
    options += ["--implementation", "cp", "--abi", target.abi]
    for platform in target.pip_platforms():
        options += ["--platform", platform]
    return options


def network_options(index_url: str | None) -> list[str]:
    """Retries, timeout and, when given, the index URL."""
    options = ["--retries", str(PIP_RETRIES), "--timeout", str(PIP_TIMEOUT)]
    if index_url:
        options += ["--index-url", index_url]
    return options


def resolve_argv(
    python: str,
    target: Target,
    *,
    requirements_file: str,
    report_file: str,
    target_dir: str,
    constraints_file: str | None = None,
    index_url: str | None = None,
) -> list[str]:
    """``pip install --dry-run --report`` for the target platform.

    ``--target`` (an empty directory nothing is written to, in a dry run) is what lets older
    pips, such as Python 3.11's stock 23.2, take platform options at all.
    """
    argv = [*pip_argv(python), "install", "--dry-run", "--ignore-installed", "--quiet"]
    argv += ["--disable-pip-version-check", "--report", report_file, "--target", target_dir]
    argv += target_options(target) + network_options(index_url)
    argv += ["-r", requirements_file]
    if constraints_file:
        argv += ["-c", constraints_file]
    return argv


def download_argv(
    python: str, target: Target, urls: Sequence[str], dest: str, index_url: str | None = None
) -> list[str]:
    """``pip download`` of exact wheel URLs, without dependencies (they are already resolved)."""
    argv = [*pip_argv(python), "download", "--no-deps", "--quiet", "--disable-pip-version-check"]
    argv += ["--dest", dest, *target_options(target), *network_options(index_url)]
    return argv + list(urls)


def parse_report(report: dict[str, Any]) -> list[Wheel]:
    """The wheels of a ``pip install --report`` document, sorted by name."""
    wheels: list[Wheel] = []
    for item in report.get("install", []):
        meta = item.get("metadata", {})
        info = item.get("download_info", {})
        url = str(info.get("url", ""))
        hashes = info.get("archive_info", {}).get("hashes", {})
        sha256 = hashes.get("sha256") or _hash_from(info.get("archive_info", {}).get("hash", ""))
        filename = unquote(urlparse(url).path.rsplit("/", 1)[-1])
        if not filename.endswith(".whl") or not sha256:
            raise PipResolutionError(
                f"pip resolved {meta.get('name')} to {url or 'an unknown location'}, which is not "
                "a wheel with a sha256 hash; the container can only install such wheels offline."
            )
        wheels.append(Wheel(str(meta["name"]), str(meta["version"]), filename, url, sha256))
    return sorted(wheels, key=lambda w: canonical_name(w.name))


def _hash_from(text: str) -> str:
    algo, _, value = str(text).partition("=")
    return value if algo == "sha256" else ""


def unavailable_requirement(output: str) -> str | None:
    """The requirement pip found no distribution for, if that is why it failed."""
    match = _NO_MATCH.search(output)
    return match.group(1) if match else None


def looks_unreachable(output: str) -> bool:
    """True when pip's output shows it could not talk to an index."""
    return any(marker in output for marker in _UNREACHABLE)


def resolution_key(selection: Selection, target: Target, index_url: str | None) -> str:
    """The cache key of a resolution: everything that can change its answer."""
    return digest(
        {
            "format": _FORMAT,
            "requirements": list(selection.requirements),
            "constraints": list(selection.constraints),
            "python": target.python,
            "platforms": target.pip_platforms(),
            "index_url": index_url,
            "pip_env": {k: os.environ.get(k) for k in _PIP_ENV},
        }
    )


def skipped_warning(skipped: Iterable[str], target: Target) -> list[str]:
    """The seed's warning, for pip packages with no Linux build."""
    return [
        "The following pip packages in your environment have no build for the container's "
        f"platform ({target.describe()}) on the package index the container will use:",
        ", ".join(skipped),
        "We will skip their installation when deploying your function. If your function uses "
        "these packages, the container will experience a runtime error when queried.",
        "Removed unavailable packages from supplied environment specifications",
    ]


def strict_error(skipped: Sequence[str], target: Target) -> UnavailablePackagesError:
    """The error raised instead of skipping, in strict mode."""
    return UnavailablePackagesError(
        f"These pip packages have no build for the container's platform ({target.describe()}): "
        f"{', '.join(skipped)}. pip_strict is set, so nothing was skipped. Uninstall them from "
        "the environment you deploy from (or use auto mode if the function does not need them), "
        "or deploy without pip_strict to skip them with a warning.",
        skipped,
    )


def _matches(requirement: str, name: str) -> bool:
    return requirement_name(requirement) == requirement_name(name)


def resolve(
    selection: Selection,
    target: Target,
    cache: Cache,
    *,
    printer: Printer,
    index_url: str | None = None,
    strict: bool = False,
    refresh: bool = False,
    python: str | None = None,
) -> PipResolution:
    """Resolve ``selection`` for ``target``: from the cache, or with pip (see module docstring)."""
    key = resolution_key(selection, target, index_url)
    path = cache.pip_resolution(key)
    cached = None if refresh else read_json(path)
    if cached is not None:
        resolution = PipResolution(
            wheels=tuple(Wheel(**w) for w in cached["wheels"]),
            skipped=tuple(cached["skipped"]),
            cached=True,
        )
    else:
        resolution = _run_resolver(selection, target, python or sys.executable, index_url)
    if resolution.skipped:
        if strict:
            raise strict_error(resolution.skipped, target)
        for line in skipped_warning(resolution.skipped, target):
            printer.warn(line)
    if cached is None:
        write_json(
            path,
            {
                "wheels": [w.__dict__ for w in resolution.wheels],
                "skipped": list(resolution.skipped),
            },
        )
    return resolution


def _run_resolver(
    selection: Selection, target: Target, python: str, index_url: str | None
) -> PipResolution:
    requirements = list(selection.requirements)
    constraints = list(selection.constraints)
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="clipper-pip-") as tmp:
        for _ in range(len(requirements) + len(constraints) + 1):
            req_file = os.path.join(tmp, "requirements.txt")
            Path(req_file).write_text("".join(r + "\n" for r in requirements), encoding="utf-8")
            con_file = None
            if constraints:
                con_file = os.path.join(tmp, "constraints.txt")
                Path(con_file).write_text("".join(c + "\n" for c in constraints), encoding="utf-8")
            report = os.path.join(tmp, "report.json")
            argv = resolve_argv(
                python,
                target,
                requirements_file=req_file,
                report_file=report,
                target_dir=os.path.join(tmp, "target"),
                constraints_file=con_file,
                index_url=index_url,
            )
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            output = proc.stderr + proc.stdout
            if proc.returncode == 0:
                wheels = parse_report(read_json(Path(report)) or {})
                return PipResolution(tuple(wheels), tuple(skipped))
            missing = unavailable_requirement(output)
            if missing is None or looks_unreachable(output):
                raise _failure(output, index_url)
            hit = [r for r in requirements if _matches(r, missing)]
            if hit:
                requirements = [r for r in requirements if r not in hit]
                skipped.extend(hit)
                continue
            pinned = [c for c in constraints if _matches(c, missing)]
            if pinned:  # a dependency's locally installed version has no Linux build: let pip pick
                constraints = [c for c in constraints if c not in pinned]
                continue
            raise _failure(output, index_url)
    raise PipResolutionError("pip's resolver kept failing; run again with refresh=True.")


def _failure(output: str, index_url: str | None) -> PipResolutionError:
    lines = [
        line
        for line in output.splitlines()
        if line.strip() and "is ignored: it is neither a file nor a directory" not in line
    ]
    text = "\n".join(lines[-25:])
    if looks_unreachable(output):
        where = index_url or "pip's configured index"
        return IndexUnreachableError(
            f"Could not reach the package index ({where}) to resolve Linux wheels for the "
            "container. Check the network or proxy settings, or pass pip_index_url= with an "
            f"index this machine can reach (a local mirror works). pip said:\n{text}"
        )
    return PipResolutionError(
        "pip could not resolve the environment's packages for the container's platform. "
        "Make the versions installed here consistent (pip check), or deploy in auto mode "
        f"to ship only what the function uses. pip said:\n{text}"
    )


def fetch_wheels(
    resolution: PipResolution,
    target: Target,
    cache: Cache,
    *,
    index_url: str | None = None,
    python: str | None = None,
) -> dict[str, Path]:
    """Make sure every wheel is in the cache; return ``filename -> cached path``.

    Wheels already cached (by sha256) are not downloaded again. ``file://`` URLs (a local
    mirror) are copied; others are fetched with ``pip download`` in one call. Every file's hash
    is checked against the resolution.
    """
    paths = {w.filename: cache.wheel(w.sha256, w.filename) for w in resolution.wheels}
    missing = [w for w in resolution.wheels if not paths[w.filename].exists()]
    if not missing:
        return paths
    with tempfile.TemporaryDirectory(prefix="clipper-wheels-", dir=_tmp_parent(cache)) as tmp:
        remote: list[Wheel] = []
        for wheel in missing:
            parsed = urlparse(wheel.url)
            if parsed.scheme == "file":
                shutil.copyfile(unquote(parsed.path), os.path.join(tmp, wheel.filename))
            else:
                remote.append(wheel)
        if remote:
            argv = download_argv(
                python or sys.executable, target, [w.url for w in remote], tmp, index_url
            )
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise _failure(proc.stderr + proc.stdout, index_url)
        for wheel in missing:
            got = Path(tmp) / wheel.filename
            if not got.exists() or file_sha256(got) != wheel.sha256:
                raise PipResolutionError(
                    f"Downloaded {wheel.filename} does not match the sha256 pip resolved "
                    f"({wheel.sha256}). The index may have changed; run again with refresh=True."
                )
            store_file(got, paths[wheel.filename])
    return paths


def _tmp_parent(cache: Cache) -> str:
    parent = cache.root / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent)

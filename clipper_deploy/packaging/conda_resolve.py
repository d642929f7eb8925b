"""Check the captured conda records against the container's linux-64 channels, with py-rattler.

Three steps, each with the seed's words:

1. *Availability*: every record is looked up by name in the configured channels for linux-64
   and noarch. One whose version is not there is removed with the seed's warning, and the
   deploy goes on (the exact build is pinned when the channel has it, else only the version).
2. *Solve*: the remaining specs are solved together for linux-64 (virtual packages of the
   target: ``__linux``, ``__glibc``, ``__unix``, ``__archspec``). A conflict raises
   :class:`CondaUnsatisfiableError` with the seed's text and the solver's explanation.
3. *Layer*: the solution is linked by rattler into a directory as a linux-64 prefix whose
   hard-coded paths point at ``/opt/conda`` (``alternative_target_prefix``), and written as a
   deterministic tar that the Dockerfile ``ADD``s. The base image needs no conda at all.

Resolutions (keyed by specs, channels and target) and layers (keyed by the solved packages'
hashes) are cached, so the same environment is neither solved nor downloaded twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import tempfile
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clipper_deploy.packaging.cache import Cache, digest, file_sha256, read_json, write_json
from clipper_deploy.packaging.environment import CondaPackage, channel_base
from clipper_deploy.packaging.errors import CondaChannelError, CondaUnsatisfiableError
from clipper_deploy.packaging.layer_tar import write_layer_tar
from clipper_deploy.packaging.printer import Printer
from clipper_deploy.packaging.target import CONDA_PREFIX_IN_IMAGE, Target

UNSATISFIABLE_HEAD = (
    "Your conda dependencies are unsatisfiable (see error text below). Please resolve these "
    "issues and call `deploy_predict_func` again."
)
MISSING_HEAD = (
    "The following packages in your conda environment aren't available in the linux-64 conda "
    "channel the container will use:"
)
MISSING_TAIL = (
    "We will skip their installation when deploying your function. If your function uses these "
    "packages, the container will experience a runtime error when queried.",
    "Removed unavailable packages from supplied environment specifications",
)
_FORMAT = 2
_DROPPED_FROM_LAYER = {"CACHEDIR.TAG"}

T = TypeVar("T")


@dataclass(frozen=True)
class SolvedPackage:
    """One package of the solution, as it will be installed."""

    name: str
    version: str
    build: str
    subdir: str
    url: str
    sha256: str

    @property
    def explicit(self) -> str:
        """The ``@EXPLICIT`` line: URL with its sha256."""
        return f"{self.url}#sha256:{self.sha256}" if self.sha256 else self.url


@dataclass(frozen=True)
class CondaResolution:
    """What the conda layer installs, and what was removed as unavailable."""

    packages: tuple[SolvedPackage, ...]
    removed: tuple[CondaPackage, ...]
    channels: tuple[str, ...]
    specs: tuple[str, ...]
    cached: bool = False

    @property
    def key(self) -> str:
        """Identity of the solution (the conda layer's cache key)."""
        return digest(
            {
                "format": _FORMAT,
                "prefix": CONDA_PREFIX_IN_IMAGE,
                "packages": sorted([p.url, p.sha256] for p in self.packages),
            }
        )


@dataclass(frozen=True)
class CondaLayer:
    """The linked prefix as a tar, and where its site-packages is inside the image."""

    path: Path
    sha256: str
    site_packages: str | None


def default_channels(packages: Iterable[CondaPackage]) -> list[str]:
    """The channels the records came from, most used first (ties keep first-seen order)."""
    counts: dict[str, int] = {}
    for package in packages:
        if package.channel:
            counts[package.channel] = counts.get(package.channel, 0) + 1
    return sorted(counts, key=lambda c: -counts[c])


def spec_for(package: CondaPackage, available: Iterable[tuple[str, str]]) -> str | None:
    """The match spec for ``package`` given the channel's ``(version, build)`` pairs.

    The exact build when the channel has it, else the version with any build, else ``None``.
    """
    pairs = set(available)
    if (package.version, package.build) in pairs:
        return f"{package.name} =={package.version} {package.build}"
    if any(version == package.version for version, _ in pairs):
        return f"{package.name} =={package.version}"
    return None


def missing_warning(removed: Sequence[CondaPackage]) -> list[str]:
    """The seed's warning for packages missing from the channel."""
    return [MISSING_HEAD, ", ".join(p.display for p in removed), *MISSING_TAIL]


def unsatisfiable_message(explanation: str) -> str:
    """The seed's conflict text followed by the solver's explanation."""
    return f"{UNSATISFIABLE_HEAD}\nUnsatisfiableError: {explanation.strip()}"


def resolution_key(
    packages: Sequence[CondaPackage], channels: Sequence[str], target: Target
) -> str:
    """The cache key of a conda resolution."""
    return digest(
        {
            "format": _FORMAT,
            "records": sorted([p.name, p.version, p.build] for p in packages),
            "channels": list(channels),
            "subdirs": list(target.conda_subdirs),
            "glibc": list(target.glibc),
        }
    )


def _run(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion, also from code that already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


def virtual_packages(target: Target) -> list[Any]:
    """The virtual packages a linux-64 container provides to the solver."""
    import rattler

    def vp(name: str, version: str) -> Any:
        return rattler.GenericVirtualPackage(
            rattler.PackageName(name), rattler.Version(version), rattler.BuildString("0")
        )

    glibc = f"{target.glibc[0]}.{target.glibc[1]}"
    return [
        vp("__linux", target.linux_kernel),
        vp("__glibc", glibc),
        vp("__unix", "0"),
        vp("__archspec", "1"),
    ]


class CondaResolver:
    """Availability check, solve and layer build against a set of channels."""

    def __init__(self, target: Target, cache: Cache, channels: Sequence[str]) -> None:
        self.target = target
        self.cache = cache
        self.channels = [channel_base(c) for c in channels]
        self._records: list[Any] | None = None

    def _channel_objects(self) -> list[Any]:
        import rattler

        return [rattler.Channel(c) for c in self.channels]

    def _gateway(self) -> Any:
        import rattler

        return rattler.Gateway(cache_dir=str(self.cache.conda_repodata))

    def resolve(
        self, packages: Sequence[CondaPackage], printer: Printer, *, refresh: bool = False
    ) -> CondaResolution:
        """Check availability, warn about removed packages, solve; cached unless ``refresh``."""
        key = resolution_key(packages, self.channels, self.target)
        path = self.cache.conda_resolution(key)
        data = None if refresh else read_json(path)
        if data is not None:
            resolution = CondaResolution(
                packages=tuple(SolvedPackage(**p) for p in data["packages"]),
                removed=tuple(p for p in packages if p.name in set(data["removed"])),
                channels=tuple(self.channels),
                specs=tuple(data["specs"]),
                cached=True,
            )
        else:
            printer.line("Fetching package metadata .........")
            resolution = _run(self._resolve(packages, printer))
        if resolution.removed:
            for line in missing_warning(resolution.removed):
                printer.warn(line)
        if data is None:
            write_json(
                path,
                {
                    "packages": [p.__dict__ for p in resolution.packages],
                    "removed": [p.name for p in resolution.removed],
                    "specs": list(resolution.specs),
                },
            )
        return resolution

    async def _resolve(self, packages: Sequence[CondaPackage], printer: Printer) -> CondaResolution:
        import rattler
        from rattler.exceptions import SolverError

        gateway = self._gateway()
        channels = self._channel_objects()
        names = sorted({p.name for p in packages})
        try:
            found = await gateway.query(
                channels, list(self.target.conda_subdirs), names, recursive=False
            )
        except Exception as exc:
            raise self._channel_error(exc) from exc
        available: dict[str, set[tuple[str, str]]] = {}
        for records in found:
            for record in records:
                available.setdefault(record.name.normalized, set()).add(
                    (str(record.version), str(record.build))
                )
        specs: list[str] = []
        removed: list[CondaPackage] = []
        for package in packages:
            spec = spec_for(package, available.get(package.name, ()))
            if spec is None:
                removed.append(package)
            else:
                specs.append(spec)
        printer.line("Solving package specifications: ..........")
        solved: list[Any] = []
        if specs:
            try:
                solved = await rattler.solve(
                    channels,
                    specs,
                    gateway=gateway,
                    platforms=list(self.target.conda_subdirs),
                    virtual_packages=virtual_packages(self.target),
                )
            except SolverError as exc:
                raise CondaUnsatisfiableError(unsatisfiable_message(str(exc)), str(exc)) from exc
            except Exception as exc:
                raise self._channel_error(exc) from exc
        self._records = solved
        return CondaResolution(
            packages=tuple(
                sorted(
                    (
                        SolvedPackage(
                            name=r.name.normalized,
                            version=str(r.version),
                            build=str(r.build),
                            subdir=str(r.subdir),
                            url=str(r.url),
                            sha256=r.sha256.hex() if r.sha256 else "",
                        )
                        for r in solved
                    ),
                    key=lambda p: p.name,
                )
            ),
            removed=tuple(removed),
            channels=tuple(self.channels),
            specs=tuple(specs),
        )

    def _channel_error(self, exc: BaseException) -> CondaChannelError:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        return CondaChannelError(
            f"Could not read the conda channel(s) {', '.join(self.channels)} for "
            f"{'/'.join(self.target.conda_subdirs)}: {detail}. Check the names or URLs in "
            "conda_channels; a local channel must be indexed (noarch/repodata.json and "
            "linux-64/repodata.json, e.g. with rattler-index or conda index)."
        )

    def layer(
        self, resolution: CondaResolution, packages: Sequence[CondaPackage], printer: Printer
    ) -> CondaLayer:
        """The cached layer tar of ``resolution``, building it (one solve and link) if needed."""
        tar_path = self.cache.conda_layer(resolution.key)
        meta_path = tar_path.with_suffix(".json")
        meta = read_json(meta_path)
        if tar_path.exists() and meta is not None:
            return CondaLayer(tar_path, meta["sha256"], meta.get("site_packages"))
        if self._records is None:  # the resolution came from the cache: solve again
            resolution = self.resolve(packages, _Quiet(), refresh=True)
            tar_path = self.cache.conda_layer(resolution.key)
            meta_path = tar_path.with_suffix(".json")
        assert self._records is not None
        tmp_parent = self.cache.root / "tmp"
        tmp_parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="clipper-conda-", dir=tmp_parent) as tmp:
            prefix = Path(tmp) / "prefix"
            _run(self._install(prefix))
            site_packages = _site_packages(prefix)
            tmp_tar = Path(tmp) / "prefix.tar"
            write_prefix_tar(prefix, tmp_tar)
            sha256 = file_sha256(tmp_tar)
            tar_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_tar, tar_path)
        write_json(meta_path, {"sha256": sha256, "site_packages": site_packages})
        return CondaLayer(tar_path, sha256, site_packages)

    async def _install(self, prefix: Path) -> None:
        import rattler

        await rattler.install(
            list(self._records or ()),
            target_prefix=str(prefix),
            cache_dir=str(self.cache.conda_pkgs),
            platform=rattler.Subdir(self.target.conda_subdir),
            execute_link_scripts=False,
            show_progress=False,
            alternative_target_prefix=CONDA_PREFIX_IN_IMAGE,
        )


class _Quiet:
    def line(self, text: str) -> None:
        return None

    def warn(self, text: str) -> None:
        return None


def _site_packages(prefix: Path) -> str | None:
    found = sorted(prefix.glob("lib/python3.*/site-packages"))
    if not found:
        return None
    return f"{CONDA_PREFIX_IN_IMAGE}/{found[-1].relative_to(prefix).as_posix()}"


def write_prefix_tar(prefix: Path, dest: Path) -> None:
    """Write ``prefix`` as a reproducible tar (:func:`~.layer_tar.write_layer_tar`): the same
    prefix always gives the same bytes, so an unchanged environment keeps Docker's layer cache
    and the shipper's content hashes. Its paths are the image's (``opt/conda/...``): the tar is a
    layer as it is, its sha256 also its diff ID."""
    write_layer_tar(prefix, dest, prefix=CONDA_PREFIX_IN_IMAGE, skip=_DROPPED_FROM_LAYER)

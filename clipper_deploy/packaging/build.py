"""``build_bundle``: from a live Python function to a bundle a Docker host can build and run.

The steps, in the order a user sees them:

1. check the arguments (name, version, input type, target Python) -- nothing is written yet;
2. pickle the function (user modules by value) and, in parallel with capturing the
   environment, prove in a clean Python that it loads and runs on the sample input;
3. ``Supplied environment details``; choose what to ship (``full`` or ``auto``);
4. conda: availability (seed's warning), solve (seed's error), linux-64 layer;
5. pip: resolve Linux wheels with pip (warning or strict error), fetch the ones not cached,
   and install them here, for the container, into one cached ``site-packages`` layer;
6. render the Dockerfile and environment files, write the bundle atomically under its
   content hash; ``Serialized and supplied predict function``.

The function's pickle is streamed to a file next to the bundles and hashed as it is written;
the round trip reads that file in place and the bundle hard-links it as ``model/func.pkl``, so
its bytes are never held in this process's memory. ``model/`` (the pickle and ``model.json``)
is left out of the image (``.dockerignore``): hosts mount it read-only into the version's
containers, and the Dockerfile depends only on the environment (``Bundle.environment``, the
hash of everything but ``model/``), so a host that has an image of that environment tags it for
a new version of the function instead of building.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import importlib.util
import json
import os
import platform
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clipper_deploy
from clipper_deploy.images.base import UnsupportedPythonError
from clipper_deploy.images.base_layer import BaseLayer
from clipper_deploy.packaging import image_archive, pip_resolve
from clipper_deploy.packaging.bundle import (
    DOCKERIGNORE,
    FUNC_FILE,
    MODEL_FILE,
    Bundle,
    BundleEntry,
    content_hash,
    entries_from_package,
    entry_from_bytes,
    entry_from_file,
    environment_hash,
    model_identity,
    model_json,
    write_bundle,
)
from clipper_deploy.packaging.cache import Cache
from clipper_deploy.packaging.closure import function_label, serialize_function
from clipper_deploy.packaging.conda_resolve import (
    CondaLayer,
    CondaResolution,
    CondaResolver,
    default_channels,
)
from clipper_deploy.packaging.env_layer import (
    SITE_PACKAGES_LAYER,
    build_env_layer,
    site_packages_in_image,
)
from clipper_deploy.packaging.environment import (
    Environment,
    capture_environment,
    report_environment,
)
from clipper_deploy.packaging.errors import (
    BundleWriteError,
    CondaChannelError,
    InvalidModelError,
    PythonVersionMismatchError,
    RuntimeNotFoundError,
)
from clipper_deploy.packaging.printer import Printer, as_printer
from clipper_deploy.packaging.roundtrip import RoundTripper, RoundTripResult, default_roundtripper
from clipper_deploy.packaging.selection import MODES, Mode, Selection, select
from clipper_deploy.packaging.target import (
    CONDA_PREFIX_IN_IMAGE,
    MODEL_PATH_IN_IMAGE,
    VENV_IN_IMAGE,
    Target,
    default_base_image,
    default_target_python,
)
from clipper_deploy.packaging.templates import (
    CONDA_EXPLICIT,
    DOCKERFILE,
    ENVIRONMENT,
    REQUIREMENTS,
    render,
)
from clipper_deploy.packaging.validation import (
    check_python,
    validate_base_image,
    validate_callable,
    validate_input_type,
    validate_labels,
    validate_name,
    validate_version,
)

SERIALIZED = "Serialized and supplied predict function"
RUNTIME_PACKAGE = "clipper_runtime"
CONDA_LAYER = "conda/prefix.tar"
"""Where a bundle holds the conda prefix layer (its paths are the image's: ``opt/conda/...``)."""


@dataclass
class _Tee:
    """Forwards to the user's printer and remembers the warnings."""

    inner: Printer
    warnings: list[str] = field(default_factory=list)

    def line(self, text: str) -> None:
        self.inner.line(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.inner.warn(text)


def locate_runtime(runtime_dir: str | os.PathLike[str] | None = None) -> Path:
    """The container runtime package directory: the ``clipper_runtime`` package installed
    with this clipper-deploy (so the image runs the client's own version).

    ``runtime_dir``, else ``$CLIPPER_DEPLOY_RUNTIME_DIR``, replace it (to try a changed runtime).
    """
    if runtime_dir is not None:
        path = Path(runtime_dir)
    elif os.environ.get("CLIPPER_DEPLOY_RUNTIME_DIR"):
        path = Path(os.environ["CLIPPER_DEPLOY_RUNTIME_DIR"])
    else:
        spec = importlib.util.find_spec(RUNTIME_PACKAGE)
        found = spec.submodule_search_locations if spec is not None else None
        if not found:
            raise RuntimeNotFoundError(
                f"The container runtime package {RUNTIME_PACKAGE} is not installed next to "
                "clipper-deploy: the installation is incomplete. Reinstall it "
                "(`pip install --force-reinstall clipper-deploy`), or set "
                "CLIPPER_DEPLOY_RUNTIME_DIR (or runtime_dir=) to a clipper_runtime directory."
            )
        path = Path(next(iter(found)))
    if not (path / "__main__.py").is_file():
        raise RuntimeNotFoundError(
            f"The container runtime was not found at {path} (it needs a __main__.py). Set "
            "CLIPPER_DEPLOY_RUNTIME_DIR (or runtime_dir=) to the clipper_runtime package "
            "directory, or unset it to use the installed one."
        )
    return path


def runtime_entries(runtime: Path) -> list[BundleEntry]:
    """The runtime's files under ``runtime/clipper_runtime/`` (no caches)."""
    return entries_from_package(runtime, f"runtime/{RUNTIME_PACKAGE}")


def model_document(
    *,
    name: str,
    version: str,
    input_type: str,
    labels: Sequence[str],
    env: Environment,
    payload_sha256: str,
    function: str,
    mode: Mode,
    target: Target,
    base_image: str,
    by_value: Sequence[str],
    created: str,
) -> dict[str, Any]:
    """The content of ``model.json``."""
    return {
        "name": name,
        "version": version,
        "input_type": input_type,
        "labels": list(labels),
        "function": function,
        "python": env.python,
        "cloudpickle": env.cloudpickle,
        "payload_sha256": payload_sha256,
        "created": created,
        "mode": mode,
        "target_python": target.python,
        "base_image": base_image,
        "by_value_modules": list(by_value),
        "clipper_deploy": clipper_deploy.__version__,
    }


def dockerfile_context(
    *,
    base_image: str,
    target: Target,
    model: dict[str, Any],
    conda_layer: CondaLayer | None,
    site_packages_layer: str | None = SITE_PACKAGES_LAYER,
) -> dict[str, Any]:
    """The variables the Dockerfile template sees."""
    return {
        "base_image": base_image,
        "target_python": target.python,
        "venv": VENV_IN_IMAGE,
        "site_packages": site_packages_in_image(VENV_IN_IMAGE, target),
        "site_packages_layer": site_packages_layer,
        "conda": conda_layer is not None,
        "conda_prefix": CONDA_PREFIX_IN_IMAGE,
        "conda_site_packages": conda_layer.site_packages if conda_layer else None,
        "model": model,
        "model_path": MODEL_PATH_IN_IMAGE,
    }


def build_bundle(
    func: Callable[..., Any],
    name: str,
    version: str | int,
    input_type: str,
    labels: Iterable[str] = (),
    *,
    mode: Mode = "full",
    sample_input: Any = None,
    target_python: str | None = None,
    base_image: str | None = None,
    conda_channels: Sequence[str] | None = None,
    pip_strict: bool = False,
    pip_index_url: str | None = None,
    template_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    bundles_dir: str | os.PathLike[str] | None = None,
    printer: Printer | Callable[[str], None] | None = None,
    environment: Environment | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    roundtrip: RoundTripper | None = None,
    roundtrip_timeout: float = 300.0,
    base_layer: BaseLayer | None = None,
) -> Bundle:
    """Package ``func`` into a bundle and return it (see the module docstring for the steps).

    ``mode`` is ``"full"`` (ship the whole environment, as the seed does) or ``"auto"`` (only
    the distributions the function uses). ``sample_input`` is called through the loaded
    function in a clean Python. ``environment`` replaces the captured one (for tests and
    tools); ``refresh`` re-resolves instead of using cached resolutions. With ``base_layer``
    (the registry-free base image's, :attr:`~clipper_deploy.images.configured.BaseImage.layer`)
    and the default Dockerfile, the bundle also holds the image itself as a ``docker load``
    archive (:mod:`~.image_archive`): hosts load it instead of building. Every error is a
    :class:`~clipper_deploy.packaging.errors.PackagingError` raised before the bundle
    directory is touched (a failed write leaves nothing behind).
    """
    out = _Tee(as_printer(printer))
    func = validate_callable(func)
    name = validate_name(name)
    version = validate_version(version)
    input_type = validate_input_type(input_type)
    labels = validate_labels(labels)
    if base_image is None:
        try:
            base_image = default_base_image()
        except UnsupportedPythonError as exc:
            raise PythonVersionMismatchError(
                str(exc), client=default_target_python(), target="none"
            ) from None
    base_image = validate_base_image(base_image)
    target_python = target_python or default_target_python()
    if mode not in MODES:
        raise InvalidModelError(f"Invalid mode {mode!r}: use 'full' (the default) or 'auto'.")
    try:
        target = Target(python=str(target_python))
    except ValueError as exc:
        raise InvalidModelError(f"Invalid target_python: {exc}.") from None
    check_python(platform.python_version(), target.python, base_image)
    runtime = locate_runtime(runtime_dir)
    cache = Cache.at(cache_dir)
    bundles = Path(bundles_dir) if bundles_dir is not None else cache.bundles

    label = function_label(func)
    try:
        bundles.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleWriteError(
            f"Could not create the bundles directory {bundles}: {exc}. Check that it is "
            "writable, or pass bundles_dir= another directory."
        ) from exc
    pickle_path = bundles / f".payload-{uuid.uuid4().hex[:12]}.pkl"
    try:
        return _package(
            func,
            label,
            pickle_path,
            name=name,
            version=version,
            input_type=input_type,
            labels=labels,
            mode=mode,
            sample_input=sample_input,
            target=target,
            base_image=base_image,
            conda_channels=conda_channels,
            pip_strict=pip_strict,
            pip_index_url=pip_index_url,
            template_dir=template_dir,
            cache=cache,
            bundles=bundles,
            out=out,
            environment=environment,
            runtime=runtime,
            refresh=refresh,
            roundtrip=roundtrip or default_roundtripper(),
            roundtrip_timeout=roundtrip_timeout,
            base_layer=base_layer,
        )
    finally:
        pickle_path.unlink(missing_ok=True)  # the bundle holds its own link to it


def _package(
    func: Callable[..., Any],
    label: str,
    pickle_path: Path,
    *,
    name: str,
    version: str,
    input_type: str,
    labels: tuple[str, ...],
    mode: Mode,
    sample_input: Any,
    target: Target,
    base_image: str,
    conda_channels: Sequence[str] | None,
    pip_strict: bool,
    pip_index_url: str | None,
    template_dir: str | os.PathLike[str] | None,
    cache: Cache,
    bundles: Path,
    out: _Tee,
    environment: Environment | None,
    runtime: Path,
    refresh: bool,
    roundtrip: RoundTripper,
    roundtrip_timeout: float,
    base_layer: BaseLayer | None,
) -> Bundle:
    """Steps 2-6 of :func:`build_bundle`, with the pickle streamed to ``pickle_path``."""
    payload = serialize_function(func, pickle_path, label)
    env, checked = _capture_while_checking(
        payload.path,
        payload.by_value,
        label=label,
        sample_input=sample_input,
        environment=environment,
        roundtrip=roundtrip,
        timeout=roundtrip_timeout,
        printer=out,
    )
    selection = select(env, mode, checked.modules)
    for package in selection.local:
        out.line(
            f"  {package.name} {package.version} comes from a local directory "
            f"({package.local_url}): its modules are pickled by value, not installed."
        )
    if selection.tool:
        out.line(
            f"  Not shipped: {len(selection.tool)} distribution(s) of the deploying tool "
            f"({', '.join(p.name for p in selection.tool)}); the image runs clipper-deploy "
            f"{clipper_deploy.__version__}'s own container runtime"
        )

    conda_resolution, conda_layer = _conda(selection, target, cache, conda_channels, out, refresh)
    resolution = pip_resolve.resolve(
        selection,
        target,
        cache,
        printer=out,
        index_url=pip_index_url,
        strict=pip_strict,
        refresh=refresh,
    )
    wheels = pip_resolve.fetch_wheels(resolution, target, cache, index_url=pip_index_url)
    conda_site_packages = conda_layer.site_packages if conda_layer else None
    env_layer = (
        build_env_layer(
            resolution.wheels,
            wheels,
            target,
            cache,
            printer=out,
            conda_site_packages=conda_site_packages,
        )
        if resolution.wheels or conda_site_packages
        else None
    )

    model = model_document(
        name=name,
        version=version,
        input_type=input_type,
        labels=labels,
        env=env,
        payload_sha256=payload.sha256,
        function=label,
        mode=mode,
        target=target,
        base_image=base_image,
        by_value=payload.by_value,
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    context = dockerfile_context(
        base_image=base_image,
        target=target,
        model=model,
        conda_layer=conda_layer,
        site_packages_layer=SITE_PACKAGES_LAYER if env_layer else None,
    )
    dockerfile = render(DOCKERFILE, context, template_dir)
    entries = [
        entry_from_bytes("Dockerfile", dockerfile.encode()),
        entry_from_bytes(".dockerignore", DOCKERIGNORE.encode()),
        entry_from_file(FUNC_FILE, payload.path, payload.sha256),
        entry_from_bytes(MODEL_FILE, model_json(model)),
        entry_from_bytes(
            "requirements.txt",
            render(
                REQUIREMENTS,
                {
                    "wheels": resolution.wheels,
                    "skipped": resolution.skipped,
                    "target": target.describe(),
                },
                template_dir,
            ).encode(),
        ),
        *(
            [entry_from_file(SITE_PACKAGES_LAYER, env_layer.path, env_layer.sha256)]
            if env_layer
            else []
        ),
        *runtime_entries(runtime),
        *_conda_entries(conda_resolution, conda_layer, target, template_dir),
    ]
    if (
        base_layer is not None
        and base_layer.python == target.python  # else the build says why it cannot be
        and _is_default_dockerfile(dockerfile, context, template_dir)
    ):
        entries += image_archive.bundle_entries(
            entries,
            base=base_layer,
            context=context,
            runtime_prefix="runtime/",
            site_packages=(SITE_PACKAGES_LAYER, env_layer.diff_id) if env_layer else None,
            conda=(CONDA_LAYER, f"sha256:{conda_layer.sha256}") if conda_layer else None,
        )
    identity = {e.path: e.sha256 for e in entries}
    identity[MODEL_FILE] = model_identity(model)
    digest = content_hash(identity)
    path, reused = write_bundle(entries, digest, bundles)
    files = {e.path: e.sha256 for e in entries}
    if reused:
        model = _read_model(path / MODEL_FILE, model)
        files[MODEL_FILE] = entry_from_bytes(MODEL_FILE, model_json(model)).sha256
    out.line(SERIALIZED)
    size = sum(e.size for e in entries) / (1 << 20)
    out.line(f"  bundle {digest[:12]} at {path} ({len(files)} files, {size:.1f} MiB)")
    return Bundle(
        path=path,
        sha256=digest,
        files=files,
        model=model,
        reused=reused,
        warnings=tuple(out.warnings),
        environment=environment_hash(files),
    )


def _is_default_dockerfile(
    dockerfile: str, context: dict[str, Any], template_dir: str | os.PathLike[str] | None
) -> bool:
    """True when ``dockerfile`` is the built-in one (no override in ``template_dir`` or
    ``$CLIPPER_DEPLOY_TEMPLATES``): only then does the client-made image equal its build."""
    if os.environ.get("CLIPPER_DEPLOY_TEMPLATES"):
        return False
    return template_dir is None or dockerfile == render(DOCKERFILE, context, None)


def _capture_while_checking(
    payload: Path,
    by_value: tuple[str, ...],
    *,
    label: str,
    sample_input: Any,
    environment: Environment | None,
    roundtrip: RoundTripper,
    timeout: float,
    printer: Printer,
) -> tuple[Environment, RoundTripResult]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(
            roundtrip.run,
            payload,
            label=label,
            sample=sample_input,
            has_sample=sample_input is not None,
            by_value=by_value,
            timeout=timeout,
        )
        env = environment if environment is not None else capture_environment()
        checked = future.result()
    report_environment(env, printer)
    return env, checked


def _conda(
    selection: Selection,
    target: Target,
    cache: Cache,
    channels: Sequence[str] | None,
    printer: Printer,
    refresh: bool,
) -> tuple[CondaResolution | None, CondaLayer | None]:
    if not selection.conda:
        return None, None
    chosen = list(channels) if channels else default_channels(selection.conda)
    if not chosen:
        raise CondaChannelError(
            "The conda records of this environment name no channel, and conda_channels is "
            "not set. Pass conda_channels=[...] with the linux-64 channel(s) the container "
            "should use."
        )
    resolver = CondaResolver(target, cache, chosen)
    resolution = resolver.resolve(selection.conda, printer, refresh=refresh)
    if not resolution.packages:
        return resolution, None
    return resolution, resolver.layer(resolution, selection.conda, printer)


def _conda_entries(
    resolution: CondaResolution | None,
    layer: CondaLayer | None,
    target: Target,
    template_dir: str | os.PathLike[str] | None,
) -> list[BundleEntry]:
    if resolution is None:
        return []
    entries = [
        entry_from_bytes(
            "environment.yml",
            render(
                ENVIRONMENT,
                {
                    "channels": resolution.channels,
                    "packages": resolution.packages,
                    "removed": resolution.removed,
                    "conda_prefix": CONDA_PREFIX_IN_IMAGE,
                },
                template_dir,
            ).encode(),
        )
    ]
    if layer is not None:
        entries.append(entry_from_file(CONDA_LAYER, layer.path, layer.sha256))
        entries.append(
            entry_from_bytes(
                "conda/explicit.txt",
                render(
                    CONDA_EXPLICIT,
                    {"packages": resolution.packages, "subdir": target.conda_subdir},
                    template_dir,
                ).encode(),
            )
        )
    return entries


def _read_model(path: Path, fallback: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fallback
    return data if isinstance(data, dict) else fallback

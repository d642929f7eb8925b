"""The frontend's bundle: the build context of the image a remote ``[clipper]`` host runs.

Made on the client, registry-free, as a model's bundle is: a ``Dockerfile`` rendered from
``templates/frontend/Dockerfile.j2`` (FROM the configured base image), one ``site-packages``
layer holding the frontend's own dependencies, and the installed ``clipper_deploy`` package's
files (no caches). The dependencies are what ``import clipper_deploy.frontend.server`` loads,
measured in a clean subprocess (``clipper_deploy/__init__.py`` is lazy, so that is aiohttp's
stack and prometheus_client), selected from the client's environment at its versions
(:func:`~.selection.select_auto`), resolved for the Linux target and installed here into a
cached layer (:mod:`.env_layer`). The bundle's content hash names the image, so a new
clipper-deploy (any changed file of the package) is a new image.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import clipper_deploy
from clipper_deploy.packaging import pip_resolve
from clipper_deploy.packaging.bundle import (
    Bundle,
    content_hash,
    entries_from_package,
    entry_from_bytes,
    entry_from_file,
    write_bundle,
)
from clipper_deploy.packaging.cache import Cache
from clipper_deploy.packaging.env_layer import (
    SITE_PACKAGES_LAYER,
    build_env_layer,
    site_packages_in_image,
)
from clipper_deploy.packaging.environment import (
    Environment,
    canonical_name,
    capture_environment,
    requirement_name,
)
from clipper_deploy.packaging.errors import PackagingError
from clipper_deploy.packaging.printer import as_printer
from clipper_deploy.packaging.selection import RUNTIME_PACKAGES, Selection, select_auto
from clipper_deploy.packaging.target import VENV_IN_IMAGE, Target, default_target_python
from clipper_deploy.packaging.templates import DOCKERFILE, render

SERVER_MODULE = "clipper_deploy.frontend.server"
PACKAGE_ROOT = "/opt/clipper-deploy"
"""Where the image holds the ``clipper_deploy`` package (on ``PYTHONPATH``)."""
NOT_SHIPPED = frozenset({"_distutils_hack", "clipper_deploy"})
"""Loaded by the client's venv itself (setuptools' ``.pth`` hook), or shipped as files."""

_MEASURE = f"import sys\nimport {SERVER_MODULE}\nprint('\\n'.join(sorted(sys.modules)))\n"


class FrontendPackagingError(PackagingError):
    """The frontend's image could not be prepared on the client; the message says why."""


def frontend_template_dir() -> Path:
    """The installed package's ``templates/frontend`` (package data, as the bundle's)."""
    return Path(str(importlib.resources.files("clipper_deploy") / "templates" / "frontend"))


def server_modules(python: str | None = None) -> list[str]:
    """The modules ``import clipper_deploy.frontend.server`` loads, in a clean interpreter."""
    proc = subprocess.run(
        [python or sys.executable, "-I", "-c", _MEASURE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise FrontendPackagingError(
            f"`import {SERVER_MODULE}` fails in a clean Python on this machine, so the frontend "
            f"cannot be packaged: {proc.stderr.strip()[-800:]}. Reinstall clipper-deploy "
            "(`pip install --force-reinstall clipper-deploy`)."
        )
    return [m for m in proc.stdout.split() if m.split(".", 1)[0] not in NOT_SHIPPED]


def frontend_selection(env: Environment, modules: list[str]) -> Selection:
    """The distributions the frontend imports (at the client's versions); the model runtime's
    own packages (numpy, cloudpickle) only if the frontend imports them."""
    selection = select_auto(env, modules)
    tops = {m.split(".", 1)[0] for m in modules}
    unused = {canonical_name(p) for p in RUNTIME_PACKAGES if p not in tops}
    keep = tuple(r for r in selection.requirements if requirement_name(r) not in unused)
    return dataclasses.replace(selection, requirements=keep)


def dockerfile(base_image: str, target: Target, with_layer: bool) -> str:
    """The frontend's Dockerfile."""
    context = {
        "base_image": base_image,
        "target_python": target.python,
        "venv": VENV_IN_IMAGE,
        "site_packages": site_packages_in_image(VENV_IN_IMAGE, target),
        "site_packages_layer": SITE_PACKAGES_LAYER if with_layer else None,
        "package_root": PACKAGE_ROOT,
        "tool_version": clipper_deploy.__version__,
    }
    return render(DOCKERFILE, context, frontend_template_dir())


def build_frontend_bundle(
    base_image: str,
    *,
    cache_dir: str | Path | None = None,
    say: Callable[[str], None] = print,
    environment: Environment | None = None,
) -> Bundle:
    """The frontend's bundle (written once per content hash under the cache's ``bundles/``)."""
    printer = as_printer(say)
    target = Target(python=default_target_python())
    cache = Cache.at(cache_dir)
    env = environment if environment is not None else capture_environment()
    selection = frontend_selection(env, server_modules())
    resolution = pip_resolve.resolve(selection, target, cache, printer=printer, strict=True)
    wheels = pip_resolve.fetch_wheels(resolution, target, cache)
    layer = (
        build_env_layer(resolution.wheels, wheels, target, cache, printer=printer)
        if resolution.wheels
        else None
    )
    entries = [
        entry_from_bytes("Dockerfile", dockerfile(base_image, target, layer is not None).encode()),
        *([entry_from_file(SITE_PACKAGES_LAYER, layer.path, layer.sha256)] if layer else []),
        *entries_from_package(Path(clipper_deploy.__file__).resolve().parent, "clipper_deploy"),
    ]
    files = {e.path: e.sha256 for e in entries}
    digest = content_hash(files)
    path, reused = write_bundle(entries, digest, cache.bundles)
    model = {"frontend": True, "clipper_deploy": clipper_deploy.__version__}
    return Bundle(path=path, sha256=digest, files=files, model=model, reused=reused)

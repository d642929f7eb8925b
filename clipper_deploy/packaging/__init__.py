"""Package a prediction function: closure, environment, dependency checks, bundle.

The entry point is :func:`build_bundle`::

    from clipper_deploy.packaging import build_bundle

    bundle = build_bundle(centered_predict, "example-model", 1, "doubles", ["example"],
                          sample_input=xs[:3])
    bundle.path      # ~/.cache/clipper-deploy/bundles/<sha256>/ (Dockerfile, func.pkl, ...)
    bundle.files     # relative path -> sha256, for shipping only what a host lacks

Modules, one concern each: :mod:`.validation` (arguments), :mod:`.closure` (cloudpickle),
:mod:`.roundtrip` (clean-subprocess check), :mod:`.environment` (capture),
:mod:`.selection` (full/auto), :mod:`.conda_resolve` (py-rattler), :mod:`.pip_resolve` (pip),
:mod:`.templates` (Jinja2), :mod:`.bundle` (hashing, atomic write), :mod:`.cache`,
:mod:`.build` (the steps in order).
"""

from __future__ import annotations

from clipper_deploy.packaging.build import SERIALIZED, build_bundle, locate_runtime
from clipper_deploy.packaging.bundle import Bundle
from clipper_deploy.packaging.closure import Payload, serialize_function
from clipper_deploy.packaging.environment import (
    CondaPackage,
    Environment,
    PipPackage,
    capture_environment,
    read_conda_meta,
)
from clipper_deploy.packaging.errors import (
    BundleWriteError,
    CondaChannelError,
    CondaUnsatisfiableError,
    EnvLayerError,
    IndexUnreachableError,
    InvalidModelError,
    NotCallableError,
    PackagingError,
    PipResolutionError,
    PythonVersionMismatchError,
    RoundTripError,
    RuntimeNotFoundError,
    TemplateError,
    UnavailablePackagesError,
    UnpicklableClosureError,
)
from clipper_deploy.packaging.printer import ConsolePrinter, Printer, RecordingPrinter
from clipper_deploy.packaging.roundtrip import RoundTripper, shutdown_workers
from clipper_deploy.packaging.target import (
    DEFAULT_TARGET_PYTHON,
    Target,
    default_base_image,
    default_target_python,
)
from clipper_deploy.packaging.validation import INPUT_TYPES

__all__ = [
    "DEFAULT_TARGET_PYTHON",
    "INPUT_TYPES",
    "SERIALIZED",
    "Bundle",
    "BundleWriteError",
    "CondaChannelError",
    "CondaPackage",
    "CondaUnsatisfiableError",
    "ConsolePrinter",
    "EnvLayerError",
    "Environment",
    "IndexUnreachableError",
    "InvalidModelError",
    "NotCallableError",
    "PackagingError",
    "Payload",
    "PipPackage",
    "PipResolutionError",
    "Printer",
    "PythonVersionMismatchError",
    "RecordingPrinter",
    "RoundTripError",
    "RoundTripper",
    "RuntimeNotFoundError",
    "Target",
    "TemplateError",
    "UnavailablePackagesError",
    "UnpicklableClosureError",
    "build_bundle",
    "capture_environment",
    "default_base_image",
    "default_target_python",
    "locate_runtime",
    "read_conda_meta",
    "serialize_function",
    "shutdown_workers",
]

"""Errors raised while packaging a prediction function.

Every error is a :class:`PackagingError` whose message says what happened and what to do about
it, so a caller can print ``str(error)`` as it is. Nothing is written to the bundles directory
when one is raised.
"""

from __future__ import annotations

from collections.abc import Sequence

from clipper_deploy.errors import ClipperDeployError


class PackagingError(ClipperDeployError):
    """The function could not be packaged; the message says why and what to do."""


class InvalidModelError(PackagingError):
    """A model name, version, input type, label or base image name is not acceptable."""


class NotCallableError(PackagingError):
    """The object handed over as the prediction function cannot be called."""


class PythonVersionMismatchError(PackagingError):
    """The container's Python differs from the client's in major.minor version."""

    def __init__(self, message: str, client: str, target: str) -> None:
        super().__init__(message)
        self.client = client
        self.target = target


class UnpicklableClosureError(PackagingError):
    """Something the function captures cannot be pickled.

    ``where`` is the path from the function to the offending object, for example
    ``predict.__globals__['state'].lock``; ``type_name`` is that object's type.
    """

    def __init__(self, message: str, where: str, type_name: str) -> None:
        super().__init__(message)
        self.where = where
        self.type_name = type_name


class RoundTripError(PackagingError):
    """The payload did not load, or did not run on the sample input, in a clean interpreter.

    ``stage`` is ``"load"``, ``"sample"``, ``"output"`` or ``"process"``; ``details`` holds the
    subprocess's traceback or output.
    """

    def __init__(self, message: str, stage: str, details: str = "") -> None:
        super().__init__(message)
        self.stage = stage
        self.details = details


class CondaUnsatisfiableError(PackagingError):
    """The captured conda specs conflict in the container's linux-64 channel(s)."""

    def __init__(self, message: str, explanation: str) -> None:
        super().__init__(message)
        self.explanation = explanation


class CondaChannelError(PackagingError):
    """A configured conda channel could not be read."""


class EnvLayerError(PackagingError):
    """The resolved wheels could not be installed into the environment layer."""


class PipResolutionError(PackagingError):
    """pip's resolver could not produce a Linux wheel set for the captured requirements."""


class IndexUnreachableError(PipResolutionError):
    """The package index could not be reached."""


class UnavailablePackagesError(PipResolutionError):
    """Strict mode: some distributions have no usable Linux build."""

    def __init__(self, message: str, packages: Sequence[str]) -> None:
        super().__init__(message)
        self.packages = tuple(packages)


class BundleWriteError(PackagingError):
    """The bundle could not be written (disk full, permissions, ...); nothing was left behind."""


class RuntimeNotFoundError(PackagingError):
    """The container runtime (``container/clipper_runtime``) could not be found."""


class TemplateError(PackagingError):
    """A bundle template could not be found or rendered."""

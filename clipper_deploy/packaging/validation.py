"""Checks on what the user hands to :func:`build_bundle`, run before anything is written.

Model names and versions take what the seed's Clipper and Docker take: lowercase letters,
digits and the separators ``_``, ``.`` and ``-`` (``example_model``, ``v1.2``), as Docker
requires of an image name's part: starting and ending with a letter or digit, ``.`` and ``_``
alone between them (``__`` allowed), at most 63 characters. Every place a name goes (image
``clipper-deploy/<name>:<version>``, container ``cd-<name>-<version>-<n>``, labels, the
frontend's records, lock and audit paths) takes that form as it is. Clipper accepts five input
types, and
loads a cloudpickle payload only in a Python of the same major.minor version as the one that
wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from clipper_deploy import settings
from clipper_deploy.packaging.errors import (
    InvalidModelError,
    NotCallableError,
    PythonVersionMismatchError,
)

INPUT_TYPES = settings.INPUT_TYPES
"""Clipper's five input types (one list, in :mod:`clipper_deploy.settings`)."""
NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
NAME_MAX = 63
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")

_NAME_RULE = (
    "Model names and versions are at most 63 lowercase letters, digits and the separators "
    "'_', '.' and '-', starting and ending with a letter or digit, with no '.' or '_' next "
    "to another separator (Docker image names take no other form)"
)


def suggest_name(text: str) -> str:
    """Turn ``text`` into the nearest valid name (``"My Model 2"`` -> ``"my-model-2"``)."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", text.strip().lower())
    name = re.sub(
        r"[._-]{2,}",
        lambda m: m.group(0) if "." not in m.group(0) and "_" not in m.group(0) else "-",
        name,
    )
    return name.strip("._-")[:NAME_MAX].rstrip("._-") or "model"


def is_name(text: str) -> bool:
    """True when ``text`` is a valid model name or version."""
    return len(text) <= NAME_MAX and bool(NAME.match(text))


def validate_name(name: object) -> str:
    """Return the model name, or raise :class:`InvalidModelError` saying how to fix it."""
    if not isinstance(name, str) or not is_name(name):
        hint = f" Try {suggest_name(name)!r}." if isinstance(name, str) and name.strip() else ""
        raise InvalidModelError(f"Invalid model name {name!r}. {_NAME_RULE}.{hint}")
    return name


def validate_version(version: object) -> str:
    """Return the version as a string (ints are accepted), or raise :class:`InvalidModelError`."""
    if isinstance(version, bool) or not isinstance(version, (str, int)):
        raise InvalidModelError(
            f"Invalid model version {version!r}: give a string or an integer. {_NAME_RULE}."
        )
    text = str(version)
    if not is_name(text):
        hint = f" Try {suggest_name(text)!r}." if text.strip() else ""
        raise InvalidModelError(f"Invalid model version {text!r}. {_NAME_RULE}.{hint}")
    return text


def validate_input_type(input_type: object) -> str:
    """Return the input type, or raise :class:`InvalidModelError` listing the valid ones."""
    if input_type not in INPUT_TYPES:
        raise InvalidModelError(
            f"Invalid input type {input_type!r}: use one of {', '.join(INPUT_TYPES)}."
        )
    return str(input_type)


def validate_labels(labels: Iterable[object] | str) -> tuple[str, ...]:
    """Return the labels as a tuple of non-empty strings."""
    if isinstance(labels, str):
        raise InvalidModelError(
            f"labels must be a list of strings, got the string {labels!r}: write [{labels!r}]."
        )
    out: list[str] = []
    for label in labels:
        if not isinstance(label, str) or not label.strip() or "\n" in label:
            raise InvalidModelError(
                f"Invalid label {label!r}: labels are non-empty strings on one line."
            )
        out.append(label)
    return tuple(out)


def validate_base_image(base_image: object) -> str:
    """Return the image reference, or raise if it cannot be a Docker image name."""
    if not isinstance(base_image, str) or not _IMAGE_REF.match(base_image):
        raise InvalidModelError(
            f"Invalid base image {base_image!r}: give a Docker image reference such as "
            "'clipper-deploy/base:py3.11-bookworm' or 'python:3.11-slim'."
        )
    return base_image


def validate_callable(func: object) -> Callable[..., Any]:
    """Return ``func`` if it can be called, else raise :class:`NotCallableError`."""
    if not callable(func):
        raise NotCallableError(
            f"The prediction function must be callable, got a {type(func).__name__} "
            f"({_short_repr(func)}). Pass the function itself, e.g. centered_predict, "
            "not the result of calling it."
        )
    return func


def check_python(client: str, target: str, base_image: str) -> None:
    """Raise :class:`PythonVersionMismatchError` unless ``client`` and ``target`` agree.

    Both are ``"major.minor"`` (a longer client version is cut to major.minor).
    """
    client_mm = ".".join(client.split(".")[:2])
    if client_mm != target:
        raise PythonVersionMismatchError(
            f"Python version mismatch: this client runs Python {client_mm} but the container's "
            f"Python is {target} (base image {base_image}). A cloudpickle payload only loads in "
            f"the same major.minor Python. Deploy from a Python {target} environment, or pick a "
            f"base image with Python {client_mm} and pass target_python={client_mm!r}.",
            client=client_mm,
            target=target,
        )


def _short_repr(obj: object, limit: int = 60) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""Load the user's prediction function from ``func.pkl``, explaining any failure.

A load failure must never look healthy: :func:`load_function` raises :class:`LoadError`, whose
message is the full traceback followed by a hint that says what to do (for a missing module,
which one, and that it must be installed in the environment the function is deployed from).
Before anything is unpickled, ``func.pkl`` is checked against the ``payload_sha256`` that
``model.json`` (written with it at packaging time) records: an altered or corrupted payload is
refused, never run. The file (mounted read-only from the host) is hashed in chunks, then
unpickled from the file itself, so loading a function with 1 GB of state needs that 1 GB of
memory, not twice as much.
"""

from __future__ import annotations

import hashlib
import json
import os
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

import cloudpickle

FUNC_FILE = "func.pkl"
MODEL_FILE = "model.json"
_CHUNK = 1 << 20

#: Common modules whose package has another name, for the missing-module hint.
PACKAGE_NAMES = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "yaml": "PyYAML",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
}


class PayloadMismatchError(ValueError):
    """``func.pkl`` is not the payload ``model.json`` was written for."""


class LoadError(Exception):
    """The function could not be loaded; ``str(error)`` is the traceback plus a hint."""

    def __init__(self, traceback_text: str, hint: str) -> None:
        super().__init__(f"{traceback_text.rstrip()}\n{hint}")
        self.traceback_text = traceback_text
        self.hint = hint


def hint_for(exc: BaseException, path: str) -> str:
    """Return the one-paragraph hint shown after the traceback of a failed load."""
    if isinstance(exc, ModuleNotFoundError):
        module = exc.name or "(unknown)"
        top = module.split(".")[0]
        package = f" (package {PACKAGE_NAMES[top]})" if top in PACKAGE_NAMES else ""
        return (
            f"Hint: the prediction function needs the Python module '{module}'{package}, which "
            "is not installed in this container. Install it (pip or conda) in the environment "
            "you deploy from, so that it is captured with the function, then deploy again."
        )
    if isinstance(exc, FileNotFoundError):
        return (
            f"Hint: no {FUNC_FILE} at {path}. Check CLIPPER_MODEL_PATH and that the bundle's "
            f"model directory (model/{FUNC_FILE} on the host) is mounted there; deploy the "
            "version again to upload it."
        )
    if isinstance(exc, PayloadMismatchError):
        return (
            f"Hint: {path} was changed or corrupted after it was packaged, so it was not "
            "unpickled. Deploy the function again from the client (a new bundle is built)."
        )
    if isinstance(exc, TypeError) and "not callable" in str(exc):
        return (
            f"Hint: {path} must hold a callable (the prediction function), "
            "pickled with cloudpickle."
        )
    return (
        "Hint: the function could not be unpickled here. Deploy from a Python and package "
        "versions that match the container's, and make sure everything the function uses "
        "is captured in its closure."
    )


def file_sha256(f: BinaryIO) -> str:
    """sha256 of the rest of the open binary file ``f``, read in chunks."""
    digest = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def verify_payload(payload: bytes | BinaryIO, model_file: str) -> None:
    """Raise :class:`PayloadMismatchError` unless ``payload`` (bytes, or an open file read to
    its end) has the sha256 ``model_file`` records (a directory without ``model.json``, as in
    local tests, is not checked)."""
    try:
        with open(model_file, encoding="utf-8") as f:
            expected = json.load(f).get("payload_sha256")
    except FileNotFoundError:
        return
    if isinstance(payload, bytes | bytearray | memoryview):
        actual = hashlib.sha256(payload).hexdigest()
    else:
        actual = file_sha256(payload)
    if expected != actual:
        raise PayloadMismatchError(
            f"{FUNC_FILE} has sha256 {actual}, but {MODEL_FILE} records {expected}"
        )


def load_function(model_path: str) -> Callable[[Any], Any]:
    """Return the prediction function pickled in ``<model_path>/func.pkl``."""
    path = os.path.join(model_path, FUNC_FILE)
    try:
        with open(path, "rb") as f:
            verify_payload(f, os.path.join(model_path, MODEL_FILE))
            f.seek(0)
            func = cloudpickle.load(f)
        if not callable(func):
            raise TypeError(f"{path} holds a {type(func).__name__}, which is not callable")
    except Exception as exc:  # every failure is reported the same way, with a hint
        raise LoadError(traceback.format_exc(), hint_for(exc, path)) from exc
    return func

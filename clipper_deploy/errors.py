"""The root of every error clipper-deploy raises: catch :class:`ClipperDeployError` once.

Each library error class derives from it (and, where it always did, from ``ValueError`` or
``RuntimeError`` too, so older ``except`` clauses still match). Its message says what went
wrong, where, and what to do, so a caller can print ``str(error)`` as it is::

    try:
        clipper.deploy_playbook(playbook)
    except ClipperDeployError as exc:
        print(f"Deploy failed: {exc}")

This module imports nothing, so any module can import it.
"""

from __future__ import annotations


class ClipperDeployError(Exception):
    """Something clipper-deploy was asked to do failed; the message says why and what to do."""


__all__ = ["ClipperDeployError"]

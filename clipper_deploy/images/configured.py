"""The base image a deploy builds FROM, and how a host that lacks it gets it.

The default is the registry-free Debian image (:class:`~.base.BaseImageSpec`), whose root file
system tarball is built on the client once (:func:`~.build.build_base_tarball`, cached) and
streamed to hosts (:mod:`clipper_deploy.hosts.base_image`); any other image name is pulled by
the hosts from a registry. The tarball is made only when first asked for, so operations that
start no new image (rollback, stop) never build it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from clipper_deploy.images.base import BaseImageSpec
from clipper_deploy.images.base_layer import BaseLayer, read_base_layer
from clipper_deploy.images.build import build_base_tarball, cached_tarball, compressed_tarball


class BaseImage:
    """The image bundles build FROM: ``name``, and for the default image its ``spec`` and a
    ``build`` that returns the cached tarball (building it if needed)."""

    def __init__(
        self,
        name: str,
        spec: BaseImageSpec | None = None,
        build: Callable[[], Path] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.name = name
        self.spec = spec
        self._build = build
        self._tarball: Path | None = None
        self._layer: BaseLayer | None = None
        self._packed: Path | None = None
        self._say = say
        self._lock = threading.Lock()

    @property
    def shipped(self) -> bool:
        """True when hosts get it from the client (a tarball), False when they pull it."""
        return self.spec is not None

    @property
    def tarball(self) -> Path | None:
        with self._lock:
            if self._tarball is None and self._build is not None:
                self._tarball = self._build()
            return self._tarball

    @property
    def shipping_file(self) -> Path | None:
        """What a host that lacks the default image receives: the tarball, gzip-compressed
        (made once); None for a pulled image."""
        tarball = self.tarball
        if tarball is None:
            return None
        with self._lock:
            if self._packed is None:
                self._packed = compressed_tarball(tarball, self._say)
            return self._packed

    @property
    def layer(self) -> BaseLayer | None:
        """The default image's one layer (its diff ID and user files), for images made on the
        client; None for a pulled image, whose layers the client does not know."""
        if self.spec is None:
            return None
        cached = cached_tarball(self.spec)
        tarball = cached if cached.exists() else self.tarball
        if tarball is None:
            return None
        with self._lock:
            if self._layer is None:
                self._layer = read_base_layer(tarball, self.spec.python)
            return self._layer


def configured_base_image(name: str | None, say: Callable[[str], None] = print) -> BaseImage:
    """``name`` (pulled by hosts), or the default registry-free image when None."""
    if name:
        return BaseImage(name)
    spec = BaseImageSpec()
    return BaseImage(spec.tag, spec, lambda: build_base_tarball(spec, say=say), say)

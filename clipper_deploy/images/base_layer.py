"""What a client-made image needs to know of the registry-free base image's one layer.

A host that gets the base image from the client imports its root file system tarball
(``docker import``), so the image has one layer, named (its diff ID) by the tarball's sha256.
A model image made on the client (:mod:`clipper_deploy.packaging.image_archive`) lists that
diff ID first and adds its own layers, one of which replaces ``/etc/passwd`` and ``/etc/group``
with the base's plus the model user: so it needs those two files too. They are read from the
tarball once and kept beside it (``<tarball>.layer.json``), so later deploys read 1 KiB, not
168 MiB.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT = 1
"""Bumped when what the side file holds changes."""
FILES = ("etc/passwd", "etc/group")
DPKG_STATUS = "var/lib/dpkg/status"


@dataclass(frozen=True)
class BaseLayer:
    """The base image's layer: its ``diff_id`` (``sha256:...``), its Python ``python``
    (``3.11``) and that Python's full version (``3.11.2``, from the Debian package; ``python``
    when the package is not found), and the text of its ``/etc/passwd`` and ``/etc/group``."""

    diff_id: str
    python: str
    python_version: str
    passwd: str
    group: str


def side_file(tarball: Path) -> Path:
    return tarball.with_name(tarball.name + ".layer.json")


def read_base_layer(tarball: Path, python: str) -> BaseLayer:
    """The :class:`BaseLayer` of ``tarball`` (whose image runs Python ``python``): from its
    side file when that matches the tarball's size and time, else read (one pass: hash and
    the two files) and kept."""
    stat = tarball.stat()
    stamp = {"format": FORMAT, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    side = side_file(tarball)
    try:
        kept = json.loads(side.read_text(encoding="utf-8"))
        if kept.get("stamp") == stamp:
            return BaseLayer(**kept["layer"])
    except (OSError, ValueError, TypeError, KeyError):
        pass
    layer = _read(tarball, python)
    tmp = side.with_name(f".{side.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"stamp": stamp, "layer": asdict(layer)}), encoding="utf-8")
    os.replace(tmp, side)
    return layer


def _read(tarball: Path, python: str) -> BaseLayer:
    sha = hashlib.sha256()
    with open(tarball, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    found: dict[str, str] = {}
    with tarfile.open(tarball, mode="r:") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if (name in FILES or name == DPKG_STATUS) and member.isfile():
                data = tar.extractfile(member)
                found[name] = data.read().decode("utf-8") if data is not None else ""
    return BaseLayer(
        diff_id=f"sha256:{sha.hexdigest()}",
        python=python,
        python_version=debian_python_version(found.get(DPKG_STATUS, ""), python),
        passwd=found.get("etc/passwd", ""),
        group=found.get("etc/group", ""),
    )


def debian_python_version(dpkg_status: str, python: str) -> str:
    """The upstream version of package ``python<python>-minimal`` in a dpkg status file
    (``3.11.2`` of ``3.11.2-6+deb12u6``), or ``python`` when it is not there."""
    for paragraph in dpkg_status.split("\n\n"):
        lines = [line for line in paragraph.splitlines() if ": " in line and line[0] != " "]
        fields = dict(line.split(": ", 1) for line in lines)
        if fields.get("Package") == f"python{python}-minimal" and "Version" in fields:
            return fields["Version"].split("-", 1)[0].split(":", 1)[-1]
    return python

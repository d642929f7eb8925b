"""A model's image made on the client: a ``docker load`` archive a host assembles from its bundle.

The default Dockerfile (``templates/bundle/Dockerfile.j2``) only unpacks finished layers, so
the client can make the image itself and spare every host the build (its ``RUN`` container,
one commit per step: 9 to 20 s a host on the test bed). The bundle then also holds::

    image/prepare.tar     the Dockerfile's RUN: a bare venv, /model, the model user
    image/runtime.tar     the Dockerfile's COPY of the runtime (with its bytecode)
    image/config.json     the image's config: ENV, CMD, USER, labels and every layer's diff ID
    manifest.json         docker load's index (at the top, where it looks): config, layers

The layers are the base image's (named in the manifest, never sent: a host loads the archive
only once it has the base image, and ``docker load`` skips layers it has), the conda prefix
and the site-packages layer (the bundle's own files, whose paths are already the image's),
then the two above. On the host, ``tar`` streams those files from the bundle directory into
``docker load`` (:func:`load_command`), and the image is tagged by its ID, the sha256 of
``config.json``, which the client knows: the same bytes, the same image on every host.

``config.json`` carries the environment's hash as a label, so it is left out of that hash
(:func:`clipper_deploy.packaging.bundle.environment_hash`): it is a function of the hashed
files. Used only where the client knows the base image's layer (the registry-free default)
and the Dockerfile is the default; otherwise hosts build the Dockerfile as before.
"""

from __future__ import annotations

import hashlib
import io
import json
import py_compile
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipper_deploy.hosts.docker_commands import ENVIRONMENT, MANAGED
from clipper_deploy.images.base_layer import BaseLayer
from clipper_deploy.packaging.bundle import (
    IMAGE_CONFIG,
    IMAGE_MANIFEST,
    BundleEntry,
    entry_from_bytes,
    environment_hash,
)
from clipper_deploy.packaging.layer_tar import (
    directory_info,
    file_info,
    link_info,
    parent_directories,
)

CONFIG = IMAGE_CONFIG
MANIFEST = IMAGE_MANIFEST
PREPARE_LAYER = "image/prepare.tar"
RUNTIME_LAYER = "image/runtime.tar"
BASE_LAYER = "image/base.tar"
"""The base layer's name in the manifest: never in the stream (the host already has it)."""
RUNTIME_IN_IMAGE = "/opt/clipper/runtime"
MODEL_USER = 10001
CREATED = "1970-01-01T00:00:00Z"
"""Every image of one environment is the same bytes, so it cannot carry a build time."""


@dataclass(frozen=True)
class Layer:
    """One layer of the image: its file in the bundle (None for the base's), its diff ID and
    what made it (the image's history)."""

    path: str | None
    diff_id: str
    created_by: str


def tar_bytes(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A reproducible uncompressed tar of ``members`` (info, data for regular files)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return file_info(name, len(data)), data


def link_member(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return link_info(name, target), None


def with_user(text: str, line: str) -> str:
    """``text`` (``/etc/passwd`` or ``/etc/group``) with ``line`` appended unless it has an
    entry of that name already (the Dockerfile's ``grep -q || echo``)."""
    name = line.split(":", 1)[0] + ":"
    if any(existing.startswith(name) for existing in text.splitlines()):
        return text
    return text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"


def prepare_layer(base: BaseLayer, *, venv: str, model_path: str) -> bytes:
    """What the Dockerfile's ``RUN`` makes: ``python3 -m venv --without-pip`` (without its
    activate scripts, which nothing runs), the model directory, the model user and group."""
    venv = venv.strip("/")
    py = f"python{base.python}"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (directory_info(d), None) for d in parent_directories(venv)
    ]
    members += [
        (directory_info(f"{venv}/bin"), None),
        link_member(f"{venv}/bin/python", "python3"),
        link_member(f"{venv}/bin/python3", "/usr/bin/python3"),
        link_member(f"{venv}/bin/{py}", "python3"),
        (directory_info(f"{venv}/include"), None),
        (directory_info(f"{venv}/include/{py}"), None),
        (directory_info(f"{venv}/lib"), None),
        (directory_info(f"{venv}/lib/{py}"), None),
        (directory_info(f"{venv}/lib/{py}/site-packages"), None),
        link_member(f"{venv}/lib64", "lib"),
        file_member(
            f"{venv}/pyvenv.cfg",
            (
                "home = /usr/bin\ninclude-system-site-packages = false\n"
                f"version = {base.python_version}\nexecutable = /usr/bin/{py}\n"
                f"command = /usr/bin/python3 -m venv --without-pip /{venv}\n"
            ).encode(),
        ),
    ]
    members += [(directory_info(d), None) for d in parent_directories(model_path)]
    passwd = with_user(
        base.passwd,
        f"clipper:x:{MODEL_USER}:{MODEL_USER}:clipper-deploy model:/nonexistent:/usr/sbin/nologin",
    )
    group = with_user(base.group, f"clipper:x:{MODEL_USER}:")
    members += [(directory_info("etc"), None), file_member("etc/group", group.encode())]
    members.append(file_member("etc/passwd", passwd.encode()))
    return tar_bytes(sorted(members, key=lambda m: m[0].name))


def runtime_layer(files: Mapping[str, bytes]) -> bytes:
    """The runtime package (``files``: path under the runtime directory -> bytes) at
    :data:`RUNTIME_IN_IMAGE`, with ``unchecked-hash`` bytecode beside each module, as the
    environment layer has (the image sets ``PYTHONDONTWRITEBYTECODE``: without it every
    replica would compile the runtime again). The bytecode is this interpreter's, named by its
    cache tag, as the environment layer's is: an image of another Python ignores it."""
    root = RUNTIME_IN_IMAGE.strip("/")
    members: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {
        d: (directory_info(d), None) for d in parent_directories(root)
    }
    with tempfile.TemporaryDirectory(prefix="clipper-runtime-pyc-") as tmp:
        for rel, data in sorted(files.items()):
            name = f"{root}/{rel}"
            for d in parent_directories(name.rsplit("/", 1)[0]):
                members.setdefault(d, (directory_info(d), None))
            members[name] = file_member(name, data)
            if rel.endswith(".py"):
                pyc = _bytecode(rel, data, Path(tmp))
                folder, module = name.rsplit("/", 1)
                cache = f"{folder}/__pycache__"
                members.setdefault(cache, (directory_info(cache), None))
                stem = module.removesuffix(".py")
                pyc_name = f"{cache}/{stem}.{sys.implementation.cache_tag}.pyc"
                members[pyc_name] = file_member(pyc_name, pyc)
    return tar_bytes([members[k] for k in sorted(members)])


def _bytecode(rel: str, data: bytes, tmp: Path) -> bytes:
    source = tmp / "source.py"
    source.write_bytes(data)
    target = tmp / "out.pyc"
    py_compile.compile(
        str(source),
        cfile=str(target),
        dfile=f"{RUNTIME_IN_IMAGE}/{rel}",
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return target.read_bytes()


def image_config(
    layers: Sequence[Layer], context: Mapping[str, Any], labels: Mapping[str, str]
) -> bytes:
    """The image's config (canonical JSON): what the Dockerfile's ``ENV``, ``USER`` and
    ``CMD`` set, from the same template ``context`` (venv, conda prefix, model path), the
    ``labels`` a build would get, and the layers' diff IDs."""
    path = f"{context['venv']}/bin:"
    if context.get("conda"):
        path += f"{context['conda_prefix']}/bin:"
    path += "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": [
                f"PATH={path}",
                "PYTHONUNBUFFERED=1",
                "PYTHONDONTWRITEBYTECODE=1",
                f"CLIPPER_MODEL_PATH={context['model_path']}",
                f"PYTHONPATH={RUNTIME_IN_IMAGE}",
            ],
            "Cmd": [f"{context['venv']}/bin/python", "-m", "clipper_runtime"],
            "User": f"{MODEL_USER}:{MODEL_USER}",
            "Labels": dict(sorted(labels.items())),
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": layer.created_by} for layer in layers],
    }
    return canonical(config)


def manifest(layers: Sequence[Layer]) -> bytes:
    """``docker load``'s ``manifest.json``: the config and each layer's file, untagged (the host
    tags the image by its ID)."""
    entry = {
        "Config": CONFIG,
        "RepoTags": None,
        "Layers": [layer.path or BASE_LAYER for layer in layers],
    }
    return canonical([entry])


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def image_id(config: bytes) -> str:
    """An image's ID: the sha256 of its config."""
    return f"sha256:{hashlib.sha256(config).hexdigest()}"


def archive_layers(
    *,
    base: BaseLayer,
    conda: tuple[str, str] | None,
    site_packages: tuple[str, str] | None,
    prepare: bytes,
    runtime: bytes,
) -> list[Layer]:
    """The image's layers in the Dockerfile's order: base, prepare (its ``RUN``), the conda
    prefix and site-packages (``conda``, ``site_packages``: bundle path and diff ID, when the
    bundle has them), the runtime."""
    layers = [
        Layer(None, base.diff_id, "clipper-deploy base image (docker import)"),
        Layer(PREPARE_LAYER, _diff_id(prepare), "venv, model directory and model user"),
    ]
    if conda is not None:
        path, diff_id = conda
        layers.append(Layer(path, diff_id, "conda prefix (linked on the client)"))
    if site_packages is not None:
        path, diff_id = site_packages
        layers.append(Layer(path, diff_id, "pip packages (installed on the client)"))
    layers.append(Layer(RUNTIME_LAYER, _diff_id(runtime), "clipper-deploy container runtime"))
    return layers


def _diff_id(tar: bytes) -> str:
    return f"sha256:{hashlib.sha256(tar).hexdigest()}"


def bundle_entries(
    entries: Sequence[BundleEntry],
    *,
    base: BaseLayer,
    context: Mapping[str, Any],
    runtime_prefix: str,
    site_packages: tuple[str, str] | None,
    conda: tuple[str, str] | None,
) -> list[BundleEntry]:
    """The archive's four files for a bundle of ``entries`` (made from the Dockerfile
    ``context``): the runtime is the entries under ``runtime_prefix``; ``site_packages`` and
    ``conda`` are (bundle path, diff ID) of those layers when there are any."""
    prepare = prepare_layer(base, venv=context["venv"], model_path=context["model_path"])
    runtime = runtime_layer(
        {
            e.path.removeprefix(runtime_prefix): e.data or b""
            for e in entries
            if e.path.startswith(runtime_prefix)
        }
    )
    layers = archive_layers(
        base=base,
        conda=conda,
        site_packages=site_packages,
        prepare=prepare,
        runtime=runtime,
    )
    made = [
        entry_from_bytes(PREPARE_LAYER, prepare),
        entry_from_bytes(RUNTIME_LAYER, runtime),
        entry_from_bytes(MANIFEST, manifest(layers)),
    ]
    environment = environment_hash({e.path: e.sha256 for e in [*entries, *made]})
    labels = {MANAGED: "true", ENVIRONMENT: environment}
    return [*made, entry_from_bytes(CONFIG, image_config(layers, context, labels))]

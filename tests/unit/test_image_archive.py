"""The image made on the client: its layers, config and manifest, as pure data (no Docker).

The bed test ``tests/deploy/test_deploy_loaded_image.py`` checks the same image against the
one the Dockerfile builds; these check the parts one by one."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from clipper_deploy.images.base_layer import (
    BaseLayer,
    debian_python_version,
    read_base_layer,
    side_file,
)
from clipper_deploy.packaging import image_archive as ia
from clipper_deploy.packaging.bundle import entry_from_bytes, environment_hash
from clipper_deploy.packaging.layer_tar import write_layer_tar

BASE = BaseLayer(
    diff_id="sha256:" + "b" * 64,
    python="3.11",
    python_version="3.11.2",
    passwd="root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    group="root:x:0:\nnogroup:x:65534:\n",
)
CONTEXT = {
    "venv": "/opt/venv",
    "model_path": "/model",
    "conda": False,
    "conda_prefix": "/opt/conda",
}


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read(data: bytes, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read().decode()


class TestPrepareLayer:
    def test_is_the_dockerfiles_run_step(self) -> None:
        layer = ia.prepare_layer(BASE, venv="/opt/venv", model_path="/model")
        found = members(layer)
        assert found["opt/venv/bin/python3"].linkname == "/usr/bin/python3"
        assert found["opt/venv/bin/python"].linkname == "python3"
        assert found["opt/venv/lib64"].linkname == "lib"
        assert found["opt/venv/lib/python3.11/site-packages"].isdir()
        assert found["model"].isdir() and found["model"].mode == 0o755
        assert all(m.uid == 0 and m.mtime == 0 for m in found.values())
        cfg = read(layer, "opt/venv/pyvenv.cfg")
        assert "home = /usr/bin\n" in cfg and "version = 3.11.2\n" in cfg
        passwd = read(layer, "etc/passwd")
        assert passwd.startswith(BASE.passwd)  # the base's users are kept
        assert passwd.endswith(
            "clipper:x:10001:10001:clipper-deploy model:/nonexistent:/usr/sbin/nologin\n"
        )
        assert read(layer, "etc/group") == BASE.group + "clipper:x:10001:\n"

    def test_a_base_that_has_the_user_keeps_its_files(self) -> None:
        base = BaseLayer(BASE.diff_id, "3.11", "3.11", "clipper:x:5:5::/:/bin/sh", "clipper:x:5:")
        layer = ia.prepare_layer(base, venv="/opt/venv", model_path="/model")
        assert read(layer, "etc/passwd") == "clipper:x:5:5::/:/bin/sh"
        assert read(layer, "etc/group") == "clipper:x:5:"

    def test_same_inputs_same_bytes(self) -> None:
        a = ia.prepare_layer(BASE, venv="/opt/venv", model_path="/model")
        assert a == ia.prepare_layer(BASE, venv="/opt/venv", model_path="/model")


class TestRuntimeLayer:
    def test_holds_the_modules_and_their_unchecked_bytecode(self) -> None:
        layer = ia.runtime_layer({"clipper_runtime/__init__.py": b"X = 1\n"})
        found = members(layer)
        assert "opt/clipper/runtime/clipper_runtime/__init__.py" in found
        pycs = [n for n in found if n.endswith(".pyc")]
        assert len(pycs) == 1 and "/__pycache__/__init__.cpython-" in pycs[0]
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            pyc = tar.extractfile(pycs[0]).read()  # type: ignore[union-attr]
        assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked


class TestConfigAndManifest:
    def layers(self) -> list[ia.Layer]:
        return ia.archive_layers(
            base=BASE,
            conda=None,
            site_packages=("env/site-packages.tar.gz", "sha256:" + "e" * 64),
            prepare=b"p",
            runtime=b"r",
        )

    def test_config_mirrors_the_dockerfile(self) -> None:
        config = json.loads(ia.image_config(self.layers(), CONTEXT, {"k": "v"}))
        body = config["config"]
        assert body["Cmd"] == ["/opt/venv/bin/python", "-m", "clipper_runtime"]
        assert body["User"] == "10001:10001"
        assert "PYTHONPATH=/opt/clipper/runtime" in body["Env"]
        assert "CLIPPER_MODEL_PATH=/model" in body["Env"]
        assert body["Env"][0].startswith("PATH=/opt/venv/bin:/usr/local/sbin")
        assert body["Labels"] == {"k": "v"}
        ids = config["rootfs"]["diff_ids"]
        assert ids[0] == BASE.diff_id and ids[2] == "sha256:" + "e" * 64
        assert ids[1] == "sha256:" + hashlib.sha256(b"p").hexdigest()
        assert len(config["history"]) == len(ids)

    def test_conda_goes_on_path_and_before_site_packages(self) -> None:
        layers = ia.archive_layers(
            base=BASE,
            conda=("conda/prefix.tar", "sha256:" + "c" * 64),
            site_packages=("env/site-packages.tar.gz", "sha256:" + "e" * 64),
            prepare=b"p",
            runtime=b"r",
        )
        assert [layer.path for layer in layers] == [
            None,
            ia.PREPARE_LAYER,
            "conda/prefix.tar",
            "env/site-packages.tar.gz",
            ia.RUNTIME_LAYER,
        ]
        config = json.loads(ia.image_config(layers, {**CONTEXT, "conda": True}, {}))
        assert config["config"]["Env"][0].startswith("PATH=/opt/venv/bin:/opt/conda/bin:")

    def test_manifest_names_the_base_layer_but_untagged(self) -> None:
        (entry,) = json.loads(ia.manifest(self.layers()))
        assert entry["Config"] == "image/config.json" and entry["RepoTags"] is None
        assert entry["Layers"][0] == ia.BASE_LAYER

    def test_the_config_carries_the_environment_hash_it_is_left_out_of(self) -> None:
        entries = [entry_from_bytes("Dockerfile", b"FROM x\n")]
        made = ia.bundle_entries(
            entries,
            base=BASE,
            context=CONTEXT,
            runtime_prefix="runtime/",
            site_packages=None,
            conda=None,
        )
        files = {e.path: e.sha256 for e in [*entries, *made]}
        config = json.loads(next(e.data for e in made if e.path == ia.CONFIG) or b"")
        label = config["config"]["Labels"]["org.clipper-deploy.environment"]
        assert label == environment_hash(files)
        assert ia.image_id(next(e.data for e in made if e.path == ia.CONFIG) or b"") == (
            "sha256:" + files[ia.CONFIG]
        )


class TestLayerTar:
    def test_paths_are_the_images_and_the_diff_id_is_the_uncompressed_hash(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "tree" / "pkg").mkdir(parents=True)
        (tmp_path / "tree" / "pkg" / "m.py").write_text("x = 1\n")
        dest = tmp_path / "layer.tar.gz"
        diff_id = write_layer_tar(tmp_path / "tree", dest, prefix="/opt/venv/lib", compresslevel=1)
        raw = gzip.decompress(dest.read_bytes())
        assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
        names = list(members(raw))
        assert names == [
            "opt",
            "opt/venv",
            "opt/venv/lib",
            "opt/venv/lib/pkg",
            "opt/venv/lib/pkg/m.py",
        ]
        again = tmp_path / "again.tar.gz"
        write_layer_tar(tmp_path / "tree", again, prefix="/opt/venv/lib", compresslevel=1)
        assert again.read_bytes() == dest.read_bytes()


class TestBaseLayer:
    def test_debian_python_version(self) -> None:
        status = (
            "Package: python3.11\nVersion: 3.11.2-6\n\n"
            "Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n"
        )
        assert debian_python_version(status, "3.11") == "3.11.2"
        assert debian_python_version("", "3.11") == "3.11"

    def test_read_once_then_from_the_side_file(self, tmp_path: Path) -> None:
        tarball = tmp_path / "base.tar"
        with tarfile.open(tarball, "w") as tar:
            for name, data in (
                ("./etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
                ("./etc/group", b"root:x:0:\n"),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        layer = read_base_layer(tarball, "3.11")
        assert layer.diff_id == "sha256:" + hashlib.sha256(tarball.read_bytes()).hexdigest()
        assert layer.passwd == "root:x:0:0::/:/bin/sh\n" and layer.group == "root:x:0:\n"
        assert side_file(tarball).exists()
        kept = json.loads(side_file(tarball).read_text())
        kept["layer"]["passwd"] = "from the side file"
        side_file(tarball).write_text(json.dumps(kept))
        assert read_base_layer(tarball, "3.11").passwd == "from the side file"

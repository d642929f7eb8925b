"""The Dockerfile: layer order, model-independent heavy layers, user overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper_deploy.packaging.build import dockerfile_context
from clipper_deploy.packaging.conda_resolve import CondaLayer
from clipper_deploy.packaging.errors import TemplateError
from clipper_deploy.packaging.target import Target
from clipper_deploy.packaging.templates import DOCKERFILE, render

MODEL = {"name": "example-model", "version": "1", "input_type": "doubles"}


def dockerfile(model=MODEL, conda=False, base="clipper-deploy/base:py3.11-bookworm", **kw) -> str:
    layer = CondaLayer(Path("x.tar"), "00", "/opt/conda/lib/python3.11/site-packages")
    context = dockerfile_context(
        base_image=base, target=Target(), model=model, conda_layer=layer if conda else None
    )
    return render(DOCKERFILE, context, **kw)


class TestLayout:
    def test_layers_are_base_venv_conda_site_packages_runtime(self) -> None:
        text = dockerfile(conda=True)
        order = [
            "FROM clipper-deploy/base:py3.11-bookworm\n",
            "python3 -m venv --without-pip /opt/venv",
            "mkdir -p /model",
            "ADD conda/prefix.tar /\n",
            "ADD env/site-packages.tar.gz /\n",
            'CMD ["/opt/venv/bin/python", "-m", "clipper_runtime"]',
            "COPY runtime/ /opt/clipper/runtime/",
        ]
        positions = [text.index(step) for step in order]
        assert positions == sorted(positions)
        assert text.rstrip().endswith("ENV PYTHONPATH=/opt/clipper/runtime")

    def test_the_function_and_its_state_are_not_built_in(self) -> None:
        text = dockerfile()
        assert "func.pkl" not in text and "model.json" not in text
        assert "COPY . " not in text and "ADD . " not in text

    def test_runtime_contract(self) -> None:
        text = dockerfile()
        assert "ENV PYTHONPATH=/opt/clipper/runtime" in text
        assert "USER 10001:10001" in text
        assert "clipper:x:10001:10001" in text
        assert "CLIPPER_MODEL_NAME" not in text  # set by docker run, per version
        assert "CLIPPER_MODEL_PATH=/model" in text

    def test_nothing_is_installed_on_the_host(self) -> None:
        text = dockerfile(conda=True)
        assert "pip" not in text.replace("--without-pip", "")
        assert text.count("RUN ") == 1  # one step, the same for every model on the base
        assert text.count("FROM ") == 1

    def test_without_conda_there_is_no_conda_layer(self) -> None:
        assert "conda" not in dockerfile(conda=False).replace("clipper-deploy", "")

    def test_nothing_depends_on_the_model(self) -> None:
        one = dockerfile()
        two = dockerfile(model={"name": "other", "version": "9", "input_type": "ints"})
        assert one == two

    def test_a_slim_python_base_works_the_same(self) -> None:
        text = dockerfile(base="python:3.11-slim")
        assert text.count("FROM python:3.11-slim") == 1
        assert "python3 -m venv --without-pip" in text
        assert "/usr/local/bin" in text


class TestOverrides:
    def test_a_user_template_overrides_one_block(self, tmp_path: Path) -> None:
        (tmp_path / DOCKERFILE).write_text(
            '{% extends "base/Dockerfile.j2" %}\n'
            "{% block extra_setup %}RUN echo extra-setup{% endblock %}\n"
        )
        text = dockerfile(template_dir=tmp_path)
        assert "RUN echo extra-setup" in text
        assert text.index("RUN echo extra-setup") < text.index("COPY runtime/")
        assert "COPY runtime/ /opt/clipper/runtime/" in text

    def test_super_keeps_the_default(self, tmp_path: Path) -> None:
        (tmp_path / DOCKERFILE).write_text(
            '{% extends "base/Dockerfile.j2" %}\n'
            "{% block command %}ENV EXTRA=1\n{{ super() }}{% endblock %}\n"
        )
        text = dockerfile(template_dir=tmp_path)
        assert text.index("ENV EXTRA=1") < text.index('CMD ["/opt/venv/bin/python"')

    def test_a_broken_template_is_a_clear_error(self, tmp_path: Path) -> None:
        (tmp_path / DOCKERFILE).write_text("{% block x %}")
        with pytest.raises(TemplateError, match=r"Could not render Dockerfile\.j2"):
            dockerfile(template_dir=tmp_path)

    def test_a_missing_template_directory_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(TemplateError, match="does not exist"):
            dockerfile(template_dir=tmp_path / "nope")

"""Render the bundle's Dockerfile and environment files from Jinja2 templates.

The built-in templates are package data, ``clipper_deploy/templates/bundle/``, found with
:mod:`importlib.resources` (a source checkout and an installed wheel behave alike). A user's
template directory comes first: a file there with the same name replaces the built-in one, and can
extend it as ``base/<name>`` to override only some blocks (BentoML's way)::

    {% extends "base/Dockerfile.j2" %}
    {% block extra_setup %}RUN echo "extra setup"{% endblock %}
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from clipper_deploy.packaging.errors import TemplateError

DOCKERFILE = "Dockerfile.j2"
REQUIREMENTS = "requirements.txt.j2"
ENVIRONMENT = "environment.yml.j2"
CONDA_EXPLICIT = "conda-explicit.txt.j2"


def builtin_template_dir() -> Path:
    """The installed package's ``templates/bundle`` (``$CLIPPER_DEPLOY_TEMPLATES`` replaces it)."""
    override = os.environ.get("CLIPPER_DEPLOY_TEMPLATES")
    if override:
        return Path(override)
    return Path(str(importlib.resources.files("clipper_deploy") / "templates" / "bundle"))


def template_environment(template_dir: str | os.PathLike[str] | None = None) -> jinja2.Environment:
    """A Jinja2 environment: the user's directory first, then the built-ins (also as ``base/``)."""
    builtin = builtin_template_dir()
    if not (builtin / DOCKERFILE).exists():
        raise TemplateError(
            f"The built-in bundle templates are missing from {builtin}. The installation is "
            "incomplete: reinstall it (`pip install --force-reinstall clipper-deploy`), or set "
            "CLIPPER_DEPLOY_TEMPLATES to a directory holding them."
        )
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        user = Path(template_dir)
        if not user.is_dir():
            raise TemplateError(
                f"Template directory {user} does not exist. Pass an existing directory holding "
                f"your overrides (e.g. {DOCKERFILE}), or leave template_dir unset."
            )
        loaders.append(jinja2.FileSystemLoader(str(user)))
    base = jinja2.FileSystemLoader(str(builtin))
    loaders += [jinja2.PrefixLoader({"base": base}), base]
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(
    name: str, context: Mapping[str, Any], template_dir: str | os.PathLike[str] | None = None
) -> str:
    """Render template ``name`` with ``context``; errors become :class:`TemplateError`."""
    env = template_environment(template_dir)
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        where = f" in {template_dir}" if template_dir is not None else ""
        raise TemplateError(
            f"Could not render {name}{where}: {type(exc).__name__}: {exc}. Check the template's "
            "syntax and that it only uses the documented variables."
        ) from exc
    return _squeeze_blank_lines(text)


def _squeeze_blank_lines(text: str) -> str:
    lines: list[str] = []
    for line in text.splitlines():
        if not line.strip() and (not lines or not lines[-1].strip()):
            continue
        lines.append(line.rstrip())
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines) + "\n"

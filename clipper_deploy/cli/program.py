"""The ``clipper-deploy`` command: every task, with clipper-deploy's own configuration.

``clipper-deploy --list`` lists the tasks; ``clipper-deploy deploy --playbook P`` runs one, as
``invoke`` does in the repository (same namespace, :mod:`clipper_deploy.cli.namespace`). The
configuration files are ``clipper-deploy.yaml`` (system, user, working directory) and the
environment variables ``CLIPPER_DEPLOY_*`` (:mod:`clipper_deploy.cli.settings`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from invoke import Config, Program
from invoke.util import debug

import clipper_deploy
from clipper_deploy.cli.namespace import ns


class ClipperDeployConfig(Config):
    """Invoke's configuration under clipper-deploy's names: ``clipper-deploy.yaml`` files and
    ``CLIPPER_DEPLOY_*`` variables. The project file is looked up in the working directory (the
    command has no ``tasks.py`` to sit next to)."""

    prefix = "clipper_deploy"
    file_prefix = "clipper-deploy"
    env_prefix = "CLIPPER_DEPLOY"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("project_location", os.getcwd())
        super().__init__(*args, **kwargs)
        if not kwargs.get("lazy", False):
            debug("clipper-deploy: loading ./clipper-deploy.* from %s", os.getcwd())
            self.load_project()


program = Program(
    name="clipper-deploy",
    binary="clipper-deploy",
    version=clipper_deploy.__version__,
    namespace=ns,
    config_class=ClipperDeployConfig,
)
"""The program behind the console script."""


def help_first(argv: list[str]) -> list[str]:
    """``clipper-deploy TASK --help`` as ``clipper-deploy --help TASK``: Invoke would otherwise
    take ``--help`` as the value of the task's first positional argument and run the task."""
    if len(argv) >= 3 and argv[2] in ("-h", "--help") and not argv[1].startswith("-"):
        return [argv[0], argv[2], argv[1], *argv[3:]]
    return argv


def main() -> None:
    """Entry point of the ``clipper-deploy`` console script."""
    program.run(help_first(sys.argv))

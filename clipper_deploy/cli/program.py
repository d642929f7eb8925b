"""The ``clipper-deploy`` command: every task, with clipper-deploy's own configuration.

``clipper-deploy --list`` lists the tasks; ``clipper-deploy deploy --playbook P`` runs one, as
``invoke`` does in the repository (same namespace, :mod:`clipper_deploy.cli.namespace`). The
configuration files are ``clipper-deploy.yaml`` (system, user, working directory) and the
environment variables ``CLIPPER_DEPLOY_*`` (:mod:`clipper_deploy.cli.settings`).
"""

from __future__ import annotations

import os
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


def main() -> None:
    """Entry point of the ``clipper-deploy`` console script."""
    program.run()

"""``invoke`` in the repository: a thin alias of the ``clipper-deploy`` command.

Both serve the same tasks (:mod:`clipper_deploy.cli.namespace`); ``invoke --list`` lists them.
"""

from clipper_deploy.cli.namespace import ns

__all__ = ["ns"]

"""Every task of clipper-deploy in one Invoke namespace.

The ``clipper-deploy`` command (:mod:`clipper_deploy.cli.program`) and the repository's
``tasks.py`` (for ``invoke``) both serve this namespace, so both list the same tasks.
"""

from __future__ import annotations

from invoke import Collection

from clipper_deploy.cli import (
    deploy_tasks,
    fleet_tasks,
    frontend_tasks,
    image_tasks,
    main_tasks,
    testbed_tasks,
)
from clipper_deploy.cli.settings import CLI_DEFAULTS

ns = Collection()
ns.add_collection(Collection.from_module(testbed_tasks, name="testbed"))
ns.add_collection(Collection.from_module(frontend_tasks, name="frontend"))
ns.add_collection(fleet_tasks.lock)
for _task in (
    image_tasks.base_image,
    main_tasks.demo,
    main_tasks.test,
    deploy_tasks.deploy,
    deploy_tasks.status,
    deploy_tasks.logs,
    deploy_tasks.stop,
    deploy_tasks.predict,
    fleet_tasks.rollout,
    fleet_tasks.rollback,
    fleet_tasks.redeploy,
    fleet_tasks.audit,
):
    ns.add_task(_task)
ns.configure(CLI_DEFAULTS)

"""clipper-deploy's Invoke tasks: run `invoke --list` to see them all.

The tasks are thin wrappers: each collection lives in ``clipper_deploy/cli/`` and calls the
library, so everything here is also usable from Python.
"""

from invoke import Collection

from clipper_deploy.cli import (
    deploy_tasks,
    fleet_tasks,
    frontend_tasks,
    image_tasks,
    main_tasks,
    testbed_tasks,
)

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

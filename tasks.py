"""clipper-deploy's Invoke tasks: run `invoke --list` to see them all.

The tasks are thin wrappers: each collection lives in ``clipper_deploy/cli/`` and calls the
library, so everything here is also usable from Python.
"""

from invoke import Collection

from clipper_deploy.cli import frontend_tasks, image_tasks, main_tasks, testbed_tasks

ns = Collection()
ns.add_collection(Collection.from_module(testbed_tasks, name="testbed"))
ns.add_collection(Collection.from_module(frontend_tasks, name="frontend"))
ns.add_task(image_tasks.base_image)
ns.add_task(main_tasks.test)

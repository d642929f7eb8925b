"""Plans: pure functions from (request, facts) to an ordered :class:`~..steps.Plan`. No I/O.

* :mod:`.deploy` - register, ship the base image, upload, build, start, wait, switch, then
  retire and prune (:func:`plan_deploy`);
* :mod:`.rollout` - the same host steps in ``serial`` batches (:func:`plan_rollout`);
* :mod:`.rollback` - start a retained version again, switch, retire (:func:`plan_rollback`);
* :mod:`.stop` - remove a model's containers (:func:`plan_stop`);
* :mod:`.retention` - which versions to retire and prune (:func:`plan_retire`,
  :func:`plan_prune`).

Their tests are data: ``tests/unit/plans/*.yml`` (facts + request -> expected steps).
"""

from clipper_deploy.orchestration.plans.deploy import (
    ContainerOptions,
    DeployRequest,
    plan_deploy,
)
from clipper_deploy.orchestration.plans.retention import plan_prune, plan_retire, version_key
from clipper_deploy.orchestration.plans.rollback import plan_rollback
from clipper_deploy.orchestration.plans.rollout import RolloutSteps, plan_rollout
from clipper_deploy.orchestration.plans.stop import plan_stop

__all__ = [
    "ContainerOptions",
    "DeployRequest",
    "RolloutSteps",
    "plan_deploy",
    "plan_prune",
    "plan_retire",
    "plan_rollback",
    "plan_rollout",
    "plan_stop",
    "version_key",
]

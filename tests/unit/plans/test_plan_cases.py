"""Plans as data: every ``*.yml`` here is one case (facts + request -> expected steps).

A case names the ``plan`` (deploy, rollout, rollback, stop), the request, the facts of the
frontend and of each host in a shorthand, and what the plan must be: ``expect`` (each step as
``host: kind subject``, in order), and where it applies ``batches``, ``unreadable``,
``notes``, ``commands`` (a step's line -> a part of its shell command) or ``error`` (a part of
the refusal's message). Adding a case means adding a file.

Shorthand of the facts::

    frontend:
      models: [{version: "1", current: true, bundle: b1}]   # of the request's model
      replicas: [h1/cd-m-1-0]                              # connected replicas
    hosts:
      h1:
        base: true                   # the base image is there
        bundle: false                # the requested bundle is assembled there
        image: b1                    # environment label of the requested version's image
        env_image: sha256:e1         # an image of the requested environment (a tag will do)
        containers: [cd-m-1-0 running b1]   # name, state, bundle (version from the name)
        gone: [b1]                   # bundles of those containers no longer on the host
        error: "unreachable"         # the host could not be read
        blobs: [L1]                  # of the request's large blobs, those the host holds

The request's ``blobs`` maps large blobs to their sizes (default none: the bundle is small),
``relay_width`` is how many hosts one holder passes a layer to (default the tool's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.orchestration.errors import DeployError
from clipper_deploy.orchestration.facts import Facts, FrontendFacts, HostFacts
from clipper_deploy.orchestration.plan import PlanError
from clipper_deploy.orchestration.plans import (
    ContainerOptions,
    DeployRequest,
    plan_deploy,
    plan_rollback,
    plan_rollout,
    plan_stop,
)
from clipper_deploy.settings import RELAY_WIDTH

CASES = sorted(Path(__file__).parent.glob("*.yml"))


def version_of(model: str, container: str) -> str:
    """``cd-<model>-<version>-<n>`` -> ``<version>``."""
    return container.removeprefix(f"cd-{model}-").rsplit("-", 1)[0]


def host_facts(name: str, model: str, raw: dict[str, Any]) -> HostFacts:
    containers = []
    for text in raw.get("containers", []):
        cname, state, bundle = text.split()
        containers.append(
            dc.ContainerInfo(
                id=cname,
                name=cname,
                state=state,
                status=state,
                model=model,
                version=version_of(model, cname),
                bundle=bundle,
                replica=dc.replica_id(name, cname),
            )
        )
    return HostFacts(
        name,
        containers=tuple(containers),
        image_environment=raw.get("image", ""),
        environment_image=raw.get("env_image", ""),
        base_image_present=raw.get("base", True),
        bundle_present=raw.get("bundle", False),
        blobs=frozenset(raw.get("blobs", [])),
        error=raw.get("error"),
        bundles=frozenset(c.bundle for c in containers) - set(raw.get("gone", [])),
    )


def frontend_facts(model: str, raw: dict[str, Any]) -> FrontendFacts:
    models = [
        {
            "model_name": model,
            "model_version": str(m["version"]),
            "is_current_version": bool(m.get("current")),
            "model_data_path": m.get("bundle", ""),
        }
        for m in raw.get("models", [])
    ]
    replicas = []
    for r in raw.get("replicas", []):
        replica, _, state = r.partition(" ")
        container = replica.split("/", 1)[1]
        replicas.append(
            {
                "replica_id": replica,
                "model_name": model,
                "model_version": version_of(model, container),
                "state": state or "idle",
            }
        )
    return FrontendFacts(tuple(models), tuple(replicas))


def request_of(raw: dict[str, Any]) -> DeployRequest:
    return DeployRequest(
        model=raw["model"],
        version=str(raw["version"]),
        bundle=raw["bundle"],
        environment=raw.get("environment", raw["bundle"]),
        hosts=tuple(raw["hosts"]),
        replicas=raw.get("replicas", 1),
        frontend="10.0.0.1:7000",
        options=ContainerOptions(),
        base_image="clipper-deploy/base:test",
        base_shipped=raw.get("base_shipped", True),
        retain=raw.get("retain", 3),
        blobs=raw.get("blobs", {}),
        relay_width=raw.get("relay_width", RELAY_WIDTH),
    )


def plan_case(case: dict[str, Any]) -> tuple[Any, list[list[str]] | None]:
    """The case's plan, and its batches for rollouts."""
    kind = case["plan"]
    model = case["request"]["model"] if "request" in case else case["model"]
    facts = Facts(
        {n: host_facts(n, model, raw or {}) for n, raw in (case.get("hosts") or {}).items()},
        frontend_facts(model, case.get("frontend") or {}),
    )
    if kind == "deploy":
        return plan_deploy(request_of(case["request"]), facts), None
    if kind == "rollout":
        steps = plan_rollout(
            request_of(case["request"]), facts, case.get("serial"), case.get("max_fail_percentage")
        )
        return steps.plan, [list(b) for b in steps.batches.batches]
    hosts = case.get("targets") or list(facts.hosts)
    if kind == "rollback":
        to = case.get("to")
        return plan_rollback(model, None if to is None else str(to), hosts, facts), None
    if kind == "stop":
        versions = case.get("versions")
        return plan_stop(
            model, [str(v) for v in versions] if versions else None, hosts, facts
        ), None
    raise AssertionError(f"unknown plan {kind!r}")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_case(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    if "error" in case:
        with pytest.raises((DeployError, PlanError)) as raised:
            plan_case(case)
        assert case["error"] in str(raised.value)
        return
    plan, batches = plan_case(case)
    assert plan.lines == case["expect"]
    if "batches" in case:
        assert batches == case["batches"]
    assert dict(plan.unreadable) == case.get("unreadable", {})
    for note in case.get("notes", []):
        assert note in plan.notes
    commands = {s.line: s.command for s in plan.steps}
    for line, part in (case.get("commands") or {}).items():
        assert part in commands[line], (line, commands[line])
    if not case["expect"]:
        assert plan.describe().endswith("nothing to change")

"""A function whose closure holds numpy state, deployed for real on the suite bed (h3).

The state goes to the host once per version, as the bundle's ``model/func.pkl``, and is
mounted read-only into the version's containers: the image holds only the environment, so
every version of the function shares all of its layers (the tampered-pickle check is in
``test_deploy_happy_path``). Rollback starts a retained version
that still has its files; pruning and stopping remove them. The tests run in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from deploy_helpers import HostView, forget

from clipper_deploy import Clipper
from clipper_deploy.orchestration.errors import DeployError

MODEL, APP, HOST = "state-model", "state", "h3"
SIZE = 2_500_000  # float64 values: 20 MB of state


def stateful(seed: int) -> Callable[[Any], list[float]]:
    """A closure over 20 MB of state; it answers the state's first value (per version)."""
    state = np.random.default_rng(seed).standard_normal(SIZE)

    def predict(inputs):
        return [float(state[0]) + 0.0 * float(x[0]) for x in inputs]

    return predict


def deploy(clipper: Clipper, version: int, seed: int, retain: int = 3) -> bool:
    return clipper.deploy_predict_function(
        MODEL,
        version,
        stateful(seed),
        [APP],
        "doubles",
        hosts=HOST,
        mode="auto",
        sample_input=[[1.0]],
        retain=retain,
    )


def expected(seed: int) -> float:
    return float(np.random.default_rng(seed).standard_normal(SIZE)[0])


def answer(clipper: Clipper) -> float:
    reply = clipper.predict(APP, [1.0])
    assert reply["default"] is False, reply
    return float(
        json.loads(reply["output"]) if isinstance(reply["output"], str) else reply["output"]
    )


def inspect(view: HostView, what: str) -> dict[str, Any]:
    (info,) = json.loads(view.docker("inspect", what))
    return info


def bundle_of(view: HostView, version: str) -> str:
    (container,) = [c for c in view.containers(MODEL) if c.version == version]
    return container.bundle


@pytest.fixture(scope="module")
def two_versions(clipper: Clipper) -> Iterator[None]:
    """Versions 1 and 2 (different state) deployed on h3; removed at the end."""
    clipper.register_application(APP, "doubles", "-1.0", 5_000_000)
    assert deploy(clipper, 1, seed=1)
    clipper.link_model_to_app(APP, MODEL)
    assert deploy(clipper, 2, seed=2)
    yield
    forget(clipper, MODEL, APP)


class TestStateIsMountedNotBuiltIn:
    def test_each_version_answers_from_its_own_state(
        self, two_versions: None, clipper: Clipper
    ) -> None:
        assert answer(clipper) == pytest.approx(expected(2))

    def test_the_replica_mounts_its_bundles_model_files_read_only(
        self, two_versions: None, views: dict[str, HostView]
    ) -> None:
        view = views[HOST]
        info = inspect(view, f"cd-{MODEL}-2-0")
        (mount,) = [m for m in info["Mounts"] if m["Destination"] == "/model"]
        bundle = bundle_of(view, "2")
        assert mount["Type"] == "bind" and mount["RW"] is False
        assert mount["Source"] == f"/var/lib/clipper-deploy/bundles/{bundle}/model"
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        on_host = view.upload_dir / "bundles" / bundle / "model" / "func.pkl"
        assert on_host.stat().st_size > SIZE * 8

    def test_the_new_version_is_the_same_image_tagged_no_build(
        self, two_versions: None, views: dict[str, HostView]
    ) -> None:
        view = views[HOST]
        one = inspect(view, f"clipper-deploy/{MODEL}:1")
        two = inspect(view, f"clipper-deploy/{MODEL}:2")
        assert one["Id"] == two["Id"]  # not even a metadata layer of its own
        assert one["Config"]["Labels"]["org.clipper-deploy.environment"]
        listed = view.docker(
            *("run", "--rm", "--network", "none", "--entrypoint", "/bin/ls"),
            *(f"clipper-deploy/{MODEL}:2", "-A", "/model"),
        )
        assert listed.strip() == ""  # the image's /model is an empty mount point


class TestRollbackAndRetention:
    def test_rollback_starts_the_retained_version_with_its_state(
        self, two_versions: None, clipper: Clipper
    ) -> None:
        assert clipper.rollback(MODEL) == "1"
        assert answer(clipper) == pytest.approx(expected(1))
        assert clipper.rollback(MODEL, to=2) == "2"
        assert answer(clipper) == pytest.approx(expected(2))

    def test_a_retained_version_without_its_files_is_refused_by_name(
        self, two_versions: None, clipper: Clipper, views: dict[str, HostView]
    ) -> None:
        view = views[HOST]
        bundle = view.upload_dir / "bundles" / bundle_of(view, "1")
        moved = bundle.with_name(bundle.name + ".aside")
        bundle.rename(moved)
        try:
            with pytest.raises(DeployError, match=f"model files are gone .*{HOST}: bundle"):
                clipper.rollback(MODEL)
            assert answer(clipper) == pytest.approx(expected(2))
        finally:
            moved.rename(bundle)

    def test_pruning_removes_the_old_versions_state(
        self, two_versions: None, clipper: Clipper, views: dict[str, HostView]
    ) -> None:
        view = views[HOST]
        old = {bundle_of(view, v) for v in ("1", "2")}
        pickles = {
            (view.upload_dir / "bundles" / b / "model" / "func.pkl").stat().st_ino for b in old
        }
        assert deploy(clipper, 3, seed=3, retain=1)
        assert answer(clipper) == pytest.approx(expected(3))
        assert {c.version for c in view.containers(MODEL)} == {"3"}
        bundles = {p.name for p in (view.upload_dir / "bundles").iterdir()}
        assert not old & bundles
        blobs = {p.stat().st_ino for p in (view.upload_dir / "blobs").iterdir()}
        assert not pickles & blobs  # the old versions' pickles are gone, not just unlinked
        assert bundle_of(view, "3") in bundles

    def test_stop_removes_the_state_too(
        self, two_versions: None, clipper: Clipper, views: dict[str, HostView]
    ) -> None:
        view = views[HOST]
        bundle = bundle_of(view, "3")
        clipper.stop_models(MODEL)
        assert not (view.upload_dir / "bundles" / bundle).exists()
        assert view.containers(MODEL) == []

"""A function that hangs on one input value, on the real bed, under a steady load of good inputs.

Two replicas (h1, h2) serve ``hang-model``; one query with the poisoned value makes the replica
that gets it hang inside the user's function. The frontend takes that replica out of rotation
at the batch deadline, the runtime's watchdog ends the stuck process after
``CLIPPER_PREDICT_TIMEOUT_S``, Docker's restart policy brings the container back, and it serves
again: good inputs keep being answered throughout, and the frontend's memory stays flat.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipper_deploy import Clipper
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testing.load import SteadyLoad

MODEL, APP = "hang-model", "hang"
POISON = 13.0
GOOD = [1.0, 2.0]
WATCHDOG_S = 3
BACK_WITHIN_S = 30.0


def hangs_on_poison(inputs):
    """Answers ``ok`` for every input, and never returns for a batch holding ``POISON``."""
    import time as clock

    if any(float(x[0]) == 13.0 for x in inputs):
        clock.sleep(3600)
    return ["ok" for _ in inputs]


@pytest.fixture(scope="module")
def clipper(suite_bed: Testbed) -> Iterator[Clipper]:
    clipper = Clipper(suite_bed.layout.inventory, connect_timeout=5, ready_timeout=90)
    clipper.start()
    clipper.register_application(APP, "doubles", default_output="default", slo_micros=200_000)
    clipper.deploy_predict_function(
        MODEL,
        1,
        hangs_on_poison,
        [APP],
        "doubles",
        num_containers=2,
        mode="auto",
        env={"CLIPPER_PREDICT_TIMEOUT_S": str(WATCHDOG_S)},
    )
    clipper.link_model_to_app(APP, MODEL)
    yield clipper
    clipper.stop_models(MODEL)
    clipper.admin.delete_app(APP)


def serving(clipper: Clipper) -> set[str]:
    return {
        c["replica_id"]
        for c in clipper.admin.get_all_containers()
        if c["model_name"] == MODEL and c["state"] != "disconnected"
    }


def restarts(clipper: Clipper) -> dict[str, int]:
    """``{container: Docker's restart count}`` of the model's containers on h1 and h2."""
    found = {}
    with clipper.fleet(clipper.inventory.hosts("model_hosts")) as fleet:
        for host in fleet.group.hosts:
            for c in fleet.containers(host, MODEL):
                argv = ["docker", "inspect", "--format", "{{.RestartCount}}", c.name]
                out = fleet.run(host, argv)
                found[c.name] = int(out.stdout.strip())
    return found


def frontend_rss_kib(state_dir: Path) -> int:
    pid = int((state_dir / "frontend.pid").read_text())
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_good_inputs_keep_answers_and_the_hung_replica_comes_back(clipper: Clipper) -> None:
    url = f"{clipper.query.base_url}/{APP}/predict"
    state_dir = clipper.frontend_config.state_dir
    assert len(serving(clipper)) == 2
    before_restarts = restarts(clipper)
    rss_before = frontend_rss_kib(state_dir)
    poisoned: list[dict] = []

    def poison() -> None:
        poisoned.append(clipper.predict(APP, [POISON, 0.0]))

    with SteadyLoad(url, {"input": GOOD}, rate=20, max_seconds=75) as load:
        time.sleep(2)
        sent = time.monotonic()
        hung = threading.Thread(target=poison)
        hung.start()
        hung.join(timeout=10)
        assert not hung.is_alive(), "the poisoned query itself hung"
        back_after = None
        while time.monotonic() - sent < BACK_WITHIN_S + 15:
            again = restarts(clipper)
            if sum(again.values()) > sum(before_restarts.values()) and len(serving(clipper)) == 2:
                back_after = time.monotonic() - sent
                break
            time.sleep(0.5)
        time.sleep(3)  # good queries after the replica is back
    rss_after = frontend_rss_kib(state_dir)

    assert poisoned and poisoned[0]["default"] is True
    assert back_after is not None and back_after <= BACK_WITHIN_S, back_after
    answered = [a for a in load.answers if a.status == 200]
    assert len(answered) == len(load.answers), [a.error for a in load.answers if a.error][:5]
    good = [a for a in answered if not a.default]
    assert len(good) >= 0.9 * len(answered), (len(good), len(answered))
    tail = [a for a in answered if a.sent > sent + back_after]
    assert tail and all(not a.default for a in tail)
    assert rss_after - rss_before < 20 * 1024, (rss_before, rss_after)
    print(
        json.dumps(
            {
                "back_serving_s": round(back_after, 2),
                "queries": len(load.answers),
                "defaults": len(answered) - len(good),
                "frontend_rss_kib": [rss_before, rss_after],
            }
        )
    )

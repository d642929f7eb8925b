"""A prediction function that hangs on one input value, under steady load on two replicas.

Real processes: a frontend (batch deadline 1 s) and two runtime processes whose watchdog ends
them after 3 s stuck. The test itself plays Docker's restart policy: when a runtime exits, it
starts it again with the same replica id, as ``--restart unless-stopped`` would. It checks that
good inputs keep being answered while one replica hangs, that the hung replica is out of
rotation within the batch deadline, that it is back serving well within 30 s, and that the
frontend's memory stays flat over several rounds.
"""

from __future__ import annotations

import threading
import time

from serving_helpers import LoadLoop, post, rss_bytes, wait_for

POISON = 13.0
GOOD = [0.5, -1.0, 0.25, 2.0]
ROUNDS = 3


def _hangs_on_poison(inputs):
    import time

    if any(float(x[0]) == 13.0 for x in inputs):
        time.sleep(3600)
    return [float(x[0]) for x in inputs]


def _states(fe):
    return {c["replica_id"]: c for c in fe.admin().get_all_containers()}


def test_good_inputs_keep_being_answered_while_a_replica_hangs(
    frontend_factory, runtime_factory, model_dir
):
    fe = frontend_factory("--batch-timeout", "1")
    fe.setup_app(slo_micros=500_000)
    func_dir = model_dir(_hangs_on_poison)
    env = {"CLIPPER_PREDICT_TIMEOUT_S": "3"}
    replicas = {
        rid: runtime_factory(fe, model_dir=func_dir, replica_id=rid, extra_env=env)
        for rid in ("a", "b")
    }
    url = f"{fe.query_url}/example/predict"
    figures = []
    with LoadLoop(url, {"input": GOOD}, threads=3, max_seconds=90) as load:
        wait_for(lambda: load.snapshot()[0] >= 200, 15, "warm-up load")
        rss_before = rss_bytes(fe.proc.pid)
        for _ in range(ROUNDS):
            ok_before = load.snapshot()[0]
            poison_answer: dict = {}
            started = time.monotonic()
            sender = threading.Thread(
                target=lambda answer=poison_answer: answer.update(
                    post(url, {"input": [POISON, 0.0, 0.0, 0.0]})[1]
                )
            )
            sender.start()
            hung = wait_for(
                lambda: next(
                    (
                        rid
                        for rid, c in _states(fe).items()
                        if c["state"] == "disconnected" and c["drop_reason"]
                    ),
                    None,
                ),
                5,
                "the hung replica to be taken out of rotation",
            )
            out_after = time.monotonic() - started
            sender.join(5)
            assert poison_answer["default"] is True
            # good inputs go on being answered by the other replica meanwhile
            ok_at_eviction = load.snapshot()[0]
            assert replicas[hung].wait_exit(timeout=10) == 3  # the watchdog ended it
            assert any(line.startswith("Prediction stuck") for line in replicas[hung].lines)
            ok_while_down = load.snapshot()[0] - ok_at_eviction
            # the test plays the restart policy: start it again with the same id
            replicas[hung] = runtime_factory(fe, model_dir=func_dir, replica_id=hung, extra_env=env)
            wait_for(
                lambda hung=hung: _states(fe)[hung]["state"] != "disconnected",
                10,
                "re-registered",
            )
            back_after = time.monotonic() - started
            ok_now = load.snapshot()[0]
            wait_for(
                lambda hung=hung: _states(fe)[hung]["queries_served"] > 0,
                10,
                "the restarted replica serves",
            )
            figures.append((hung, out_after, back_after, ok_while_down, ok_now - ok_before))
            assert ok_while_down > 20
            assert back_after < 30
        rss_after = rss_bytes(fe.proc.pid)
        ok, defaults, failures = load.snapshot()
    print(
        "\nhung-replica rounds (replica, out of rotation after s, back serving after s, "
        "good answers while it was down, good answers in the round):"
    )
    for row in figures:
        print(f"  {row[0]}: {row[1]:.2f} s, {row[2]:.2f} s, {row[3]}, {row[4]}")
    print(
        f"load: {ok} answered, {defaults} defaults, {failures} failures; frontend RSS "
        f"{rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
    )
    assert failures == 0, load.failure_reasons[:5]
    assert defaults < 0.05 * ok, load.failure_reasons[:10]
    assert rss_after - rss_before < 16 * 2**20


def _slow_on_poison(inputs):
    import time

    if any(float(x[0]) == 13.0 for x in inputs):
        time.sleep(2.5)
    return [float(x[0]) for x in inputs]


def test_a_slow_replica_is_dropped_then_comes_back_by_itself(
    frontend_factory, runtime_factory, model_dir
):
    fe = frontend_factory("--batch-timeout", "1")
    fe.setup_app(slo_micros=500_000)
    rt = runtime_factory(
        fe,
        model_dir=model_dir(_slow_on_poison),
        replica_id="slow",
        extra_env={"CLIPPER_PREDICT_TIMEOUT_S": "0"},  # no watchdog: only the frontend acts
    )
    url = f"{fe.query_url}/example/predict"
    started = time.monotonic()
    _, doc = post(url, {"input": [POISON, 0.0, 0.0, 0.0]})
    assert doc["default"] is True
    wait_for(lambda: _states(fe)["slow"]["state"] == "disconnected", 3, "the slow one dropped")
    assert "no answer to a batch of 1" in _states(fe)["slow"]["drop_reason"]
    assert post(url, {"input": GOOD})[1]["default"] is True  # nobody serves meanwhile
    wait_for(lambda: _states(fe)["slow"]["state"] != "disconnected", 10, "it to reconnect")
    assert time.monotonic() - started < 6
    assert post(url, {"input": GOOD})[1] == {"query_id": 2, "output": 0.5, "default": False}
    assert rt.proc.poll() is None

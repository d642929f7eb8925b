"""The replica port's handshake against a real frontend process: who is refused, what
``/metrics`` and ``frontend.log`` say, and that a refused peer costs nothing.

Peers here are hand-made sockets speaking the protocol (``hand_hello``) and real runtime
processes; the bed tests (``tests/deploy/test_deploy_replica_auth.py``) do the same with
containers on the hosts.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time

from serving_helpers import hand_hello, post, read_frame, wait_for

SEED_INPUT = [0.5, -1.0, 0.25, 2.0]
REJECT, WELCOME, CHALLENGE = 3, 2, 7


def refusals(fe, reason: str) -> float:
    found = re.search(
        rf'^clipper_replica_refusals_total{{reason="{reason}"}} (\S+)$',
        fe.query(fe.token).metrics(),
        re.M,
    )
    return float(found.group(1)) if found else 0.0


def dial(fe) -> socket.socket:
    return socket.create_connection(("127.0.0.1", fe.replica_port), timeout=10)


def refused_lines(fe) -> list[str]:
    return [line for line in fe.log_path.read_text().splitlines() if "refused replica" in line]


def test_a_replica_proving_its_key_is_welcomed(frontend):
    frontend.setup_app()
    key = frontend.admin().replica_keys("example_model", "1", ["by-hand"])["by-hand"]
    with dial(frontend) as s:
        kind, payload = hand_hello(s, "example_model", "1", "by-hand", key)
        assert kind == WELCOME, payload
        assert json.loads(payload) == {"heartbeat_interval_s": 1.0}


def test_refusals_are_counted_each_time_and_logged_once_per_peer(frontend):
    frontend.setup_app()
    for _ in range(5):
        with dial(frontend) as s:
            kind, payload = hand_hello(s, "example_model", "1", 'r\u00e9"x', None)
            assert kind == REJECT
            assert "proved no key" in json.loads(payload)["cause"]
    assert refusals(frontend, "no_proof") == 5
    lines = refused_lines(frontend)
    assert len(lines) == 1, lines
    assert "replica 'r\\xe9\"x' of 'example_model':'1' from 127.0.0.1:" in lines[0]
    assert "(no_proof)" in lines[0] and "logged at most every 60 s" in lines[0]


def test_unregistered_versions_wrong_keys_and_other_ids_keys_are_refused(frontend):
    frontend.setup_app()
    admin = frontend.admin()
    keys = admin.replica_keys("example_model", "1", ["a", "b"])
    cases = [
        ("2", "a", keys["a"], "unknown_model", "is not registered"),
        ("1", "a", "0" * 64, "bad_proof", "does not match the key of replica a"),
        ("1", "a", keys["b"], "bad_proof", "does not match the key of replica a"),
    ]
    for version, rid, key, reason, cause in cases:
        with dial(frontend) as s:
            kind, payload = hand_hello(s, "example_model", version, rid, key)
            assert kind == REJECT and cause in json.loads(payload)["cause"], payload
        assert refusals(frontend, reason) >= 1
    assert admin.get_all_containers() == []


def test_a_connected_id_is_not_displaced(frontend, runtime_factory):
    frontend.setup_app()
    rt = runtime_factory(frontend, replica_id="the-one")
    (before,) = frontend.admin().get_all_containers()
    key = frontend.admin().replica_keys("example_model", "1", ["the-one"])["the-one"]
    with dial(frontend) as s:
        kind, payload = hand_hello(s, "example_model", "1", "the-one", key)
        assert kind == REJECT and "already connected" in json.loads(payload)["cause"]
    (after,) = frontend.admin().get_all_containers()
    assert after["connected_since"] == before["connected_since"]
    assert after["state"] != "disconnected"
    assert refusals(frontend, "duplicate_id") == 1
    assert (
        post(f"{frontend.query_url}/example/predict", {"input": SEED_INPUT})[1]["default"] is False
    )
    assert rt.proc.poll() is None


def test_a_silent_peer_is_dropped_after_the_auth_deadline(frontend):
    with dial(frontend) as s:
        started = time.monotonic()
        kind, _ = read_frame(s)
        assert kind == CHALLENGE
        kind, payload = read_frame(s)  # sends nothing: refused at the deadline
        waited = time.monotonic() - started
        assert kind == REJECT and "no HELLO within 5 s" in json.loads(payload)["cause"]
        assert s.recv(1) == b""
    assert 4.5 < waited < 8
    assert refusals(frontend, "timeout") == 1


def test_a_large_first_frame_is_refused_before_it_is_read(frontend):
    with dial(frontend) as s:
        assert read_frame(s)[0] == CHALLENGE
        s.sendall(struct.pack(">IB", 4097, 1))
        kind, payload = read_frame(s)
        assert kind == REJECT and "at most 4096" in json.loads(payload)["cause"]
    assert refusals(frontend, "oversized") == 1


def test_a_replica_without_a_key_file_says_so_and_is_refused(frontend, runtime_factory):
    frontend.setup_app()
    rt = runtime_factory(
        frontend, wait=False, extra_env={"CLIPPER_REPLICA_KEY_FILE": "/nonexistent/replica.key"}
    )
    wait_for(lambda: any("refused this replica" in x for x in rt.lines), 10, "a refusal")
    assert "No replica key in /nonexistent/replica.key" in rt.output
    assert "proved no key" in rt.output
    assert frontend.admin().get_all_containers() == []


def _slow(inputs):
    import time as t

    t.sleep(1.0)
    return [f"slow-{len(x)}" for x in inputs]


def test_a_stopping_frontend_answers_the_queries_in_progress(
    frontend_factory, runtime_factory, model_dir
):
    """SIGTERM closes the HTTP listeners first and lets the queries in progress get their
    answers; only then are the replicas dropped (dropped first, the query below got the
    default output: "No connected replica")."""
    fe = frontend_factory()
    fe.setup_app(slo_micros=10_000_000)
    runtime_factory(fe, model_dir=model_dir(_slow, "slow"))
    result: dict[str, object] = {}

    def ask() -> None:
        result["reply"] = post(f"{fe.query_url}/example/predict", {"input": SEED_INPUT})

    worker = threading.Thread(target=ask)
    worker.start()
    time.sleep(0.4)  # the query is at the replica, which takes 1 s
    fe.proc.terminate()
    worker.join(15)
    status, doc = result["reply"]
    assert status == 200 and doc["default"] is False and doc["output"] == "slow-4", doc
    assert fe.proc.wait(10) == 0

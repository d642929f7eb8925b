"""Hostile requests as data: one YAML file per case in ``hostile/``, run by one test.

A case file holds the request (``port``: query or admin; ``method``, ``path``, ``headers``,
``auth``: none, admin or wrong; ``body`` text or ``body_parts``: ``[[text, times], ...]``; or
``raw``: the bytes to send as they are) and what must come back (``expect``: ``status``, and
fragments of ``error`` and ``cause``). Any string of ``path``/``headers`` may be given as
``[[text, times], ...]`` too. Adding a case means adding a file.

Against one real frontend with a real replica, while a light legitimate load runs beside:
every case gets its status with Clipper's ``{"error", "cause"}`` JSON (never a 5xx, never
plain text) within 100 ms (median of its tries: the cases run in passes for as long as the
load alone ran), the replica's connection is never touched,
the log has one line per refusal and no traceback, no legitimate query fails or gets a
default, and the load's p99 latency is reported next to the same load alone (not asserted:
no bound is robust on two shared cores).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from serving_helpers import (
    FrontendProcess,
    PacedLoad,
    http_request,
    raw_exchange,
    seed_replica,
)

CASES_DIR = Path(__file__).resolve().parent / "hostile"
GOOD = {"input": [0.5, -1.0, 0.25, 2.0]}
TRIES = 3
LIMIT_S = 0.1
#: How long each of the two load phases runs (alone, then beside the cases).
PHASE_S = 6.0


def load_cases() -> list[tuple[str, dict[str, Any]]]:
    """Every case file, sorted by name."""
    return [(p.stem, yaml.safe_load(p.read_text())) for p in sorted(CASES_DIR.glob("*.yaml"))]


def expand(value: Any) -> str:
    """A string, or ``[[text, times], ...]`` joined."""
    if isinstance(value, list):
        return "".join(str(text) * int(times) for text, times in value)
    return str(value)


def request_bytes(case: dict[str, Any], token: str) -> bytes:
    """The bytes a case sends."""
    if "raw" in case:
        return case["raw"].encode(case.get("raw_encoding", "utf-8"))
    encoding = case.get("body_encoding", "utf-8")
    if "body_parts" in case:
        body = expand(case["body_parts"]).encode(encoding)
    else:
        body = str(case.get("body", "")).encode(encoding)
    headers = {k: expand(v) for k, v in (case.get("headers") or {}).items()}
    if body and "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    auth = case.get("auth", "none")
    if auth == "admin":
        headers["Authorization"] = f"Bearer {token}"
    elif auth == "wrong":
        headers["Authorization"] = "Bearer not-the-token"
    return http_request(
        case["method"],
        expand(case["path"]),
        body,
        headers,
        content_length=case.get("content_length", True),
    )


def check(case: dict[str, Any], resp: Any) -> str | None:
    """What is wrong with ``resp`` for ``case``, or ``None``."""
    want = case["expect"]
    if resp.status != want["status"]:
        return f"status {resp.status}, wanted {want['status']}: {resp.body[:300]!r}"
    if "application/json" not in resp.headers.get("content-type", ""):
        return f"content type {resp.headers.get('content-type')!r}: {resp.body[:200]!r}"
    try:
        doc = resp.json()
    except ValueError:
        return f"body is not JSON: {resp.body[:200]!r}"
    if want["status"] == 200:
        return None if "query_id" in doc else f"no prediction in {doc}"
    if set(doc) != {"error", "cause"}:
        return f"error body has keys {sorted(doc)}"
    if "error" in want and want["error"] not in doc["error"]:
        return f"error {doc['error']!r} lacks {want['error']!r}"
    if "cause" in want and want["cause"] not in doc["cause"]:
        return f"cause {doc['cause']!r} lacks {want['cause']!r}"
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory, seed_model_dir):
    """A frontend with an app per input type and one doubles replica."""
    fe = FrontendProcess(tmp_path_factory.mktemp("hostile") / "fe").start_fresh()
    fe.setup_app()
    for input_type in ("floats", "ints", "strings", "bytes"):
        fe.setup_app(app=f"{input_type}-app", model=f"{input_type}-model", input_type=input_type)
    rt = seed_replica(fe, seed_model_dir, "the-replica")
    try:
        rt.wait_serving()
        yield fe
    finally:
        rt.stop()
        fe.stop()


def test_hostile_cases(served):
    cases = load_cases()
    assert len(cases) >= 60
    token = served.token
    ports = {"query": served.query_port, "admin": served.admin_port}
    (replica_before,) = served.admin().get_all_containers()
    url = f"{served.query_url}/example/predict"
    prepared = [(name, case, request_bytes(case, token)) for name, case in cases]

    with PacedLoad(url, GOOD, interval=0.01, max_seconds=PHASE_S) as alone:
        alone.thread.join(PHASE_S + 5)
    problems: list[str] = []
    timings: dict[str, list[float]] = {}
    passes = 0
    with PacedLoad(url, GOOD, interval=0.01, max_seconds=60) as beside:
        started = time.monotonic()
        while passes < TRIES or time.monotonic() - started < PHASE_S:
            passes += 1
            for name, case, data in prepared:
                try:
                    resp = raw_exchange(ports[case["port"]], data)
                except (AssertionError, OSError) as exc:
                    problems.append(f"{name}: {exc}")
                    continue
                problem = check(case, resp)
                if problem:
                    problems.append(f"{name}: {problem}")
                timings.setdefault(name, []).append(resp.seconds)
    medians = {name: statistics.median(t) for name, t in timings.items()}
    slow = {n: m for n, m in medians.items() if m > LIMIT_S}
    worst = sorted(medians.items(), key=lambda kv: -kv[1])[:5]
    print(
        f"\n{len(cases)} hostile cases x {passes} passes: median per case "
        f"{statistics.median(medians.values()) * 1000:.1f} ms, slowest "
        + ", ".join(f"{n} {m * 1000:.1f} ms" for n, m in worst)
    )
    print(
        f"legitimate load (100 req/s): alone p50 {alone.percentile(50) * 1000:.1f} ms "
        f"p99 {alone.percentile(99) * 1000:.1f} ms ({len(alone.latencies)} queries); beside "
        f"the hostile cases p50 {beside.percentile(50) * 1000:.1f} ms "
        f"p99 {beside.percentile(99) * 1000:.1f} ms ({len(beside.latencies)} queries)"
    )
    assert not problems, "\n".join(sorted(set(problems)))
    assert not slow, f"cases slower than {LIMIT_S * 1000:.0f} ms: {slow}"
    assert beside.failures == [] and beside.defaults == 0
    # The load's p99 beside the cases is reported, not asserted: its client shares this process
    # (and its GIL) with the hostile sender, and on the 2 shared cores it measured 7 -> 10 ms and
    # 16 -> 36 ms on quiet runs but 40 -> 456 ms with other test beds running, so no bound is
    # robust here. What is asserted: no legitimate query failed or got a default (SLO 1 s).
    (replica_after,) = served.admin().get_all_containers()
    assert replica_after["state"] != "disconnected"
    assert replica_after["connected_since"] == replica_before["connected_since"]
    assert replica_after["failed_queries"] == 0
    log = served.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    refusals = sum(1 for _, c in cases if c["expect"]["status"] >= 400) * passes
    assert sum(1 for line in log.splitlines() if " refused " in line) >= refusals
    assert all(len(line) < 1000 for line in log.splitlines())
    json.dumps(medians)  # the figures are plain data

"""Overload: offer about twice what the frontend and its replicas can answer, for 60 s.

Starts a frontend and ``--replicas`` replicas (loopback only) serving a function of known cost
(``bench/serving/slow_model.py``: ``--batch-ms`` plus ``--per-input-ms`` per input, sleeping), with
an app whose SLO is ``--slo-ms``. It first measures the capacity (closed loop, ``--concurrency``
clients for ``--probe-s`` seconds: model answers per second), then sends an open-loop load at
``--factor`` times that rate for ``--duration`` seconds (requests fired on schedule, whatever
the answers; at most ``rate x duration`` requests, at most ``--max-in-flight`` at once). It
prints:

- the offered and answered rates, and how the queries ended: the model's output (admitted and
  answered), or the default output by reason (``overloaded`` / ``queue_full``: shed at once;
  ``slo``: admitted but not answered within the SLO);
- latency percentiles of the model's answers against the SLO, and of the shed answers;
- the same as the frontend measured it (its own latency histogram, so the client's own delays
  on a busy machine are left out);
- the frontend's resident memory, sampled every second (first, max, last);
- whether the frontend is still alive and answers ``/admin/ping``.

Every process it starts, it stops. Not a test: run it by hand, ``python bench/bench_overload.py``
(``--duration 10`` for a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import cloudpickle
import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "serving"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import slow_model  # noqa: E402

from clipper_deploy.frontend.client import AdminClient  # noqa: E402

INPUT = [0.1, -0.2, 0.3, 0.4]
BODY = json.dumps({"input": INPUT}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def serving(
    work: Path, args: argparse.Namespace
) -> Iterator[tuple[str, subprocess.Popen[bytes], tuple[str, str]]]:
    """Frontend + replicas; yields the predict URL, the frontend process, and the metrics URL
    with the admin token."""
    model_dir = work / "model"
    model_dir.mkdir()
    cloudpickle.register_pickle_by_value(slow_model)
    with open(model_dir / "func.pkl", "wb") as f:
        cloudpickle.dump(slow_model.build(args.batch_ms, args.per_input_ms), f)
    qport, aport, rport = free_port(), free_port(), free_port()
    state = work / "state"
    procs: list[subprocess.Popen[bytes]] = []
    fe = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clipper_deploy.frontend",
            "--state-dir",
            str(state),
            "--query-port",
            str(qport),
            "--admin-port",
            str(aport),
            "--replica-port",
            str(rport),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "frontend.out", "wb"),  # noqa: SIM115
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 20
        while not (state / "admin.token").exists():
            if time.monotonic() > deadline or fe.poll() is not None:
                raise RuntimeError(f"the frontend did not start; see {state / 'frontend.log'}")
            time.sleep(0.1)
        admin = AdminClient(
            f"http://127.0.0.1:{aport}", (state / "admin.token").read_text().strip()
        )
        while True:
            try:
                admin.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        admin.add_app("bench", "doubles", -1, int(args.slo_ms * 1000))
        admin.add_model("slow", "1", "doubles")
        admin.add_model_links("bench", ["slow"])
        ids = [f"slow-{i}" for i in range(args.replicas)]
        keys = admin.replica_keys("slow", "1", ids)  # each replica's key, as a deploy writes it
        for i in range(args.replicas):
            key_file = work / f"slow-{i}.key"
            key_file.write_text(keys[f"slow-{i}"] + "\n")
            key_file.chmod(0o600)
            env = dict(
                os.environ,
                PYTHONPATH=str(REPO / "container"),
                CLIPPER_IP="127.0.0.1",
                CLIPPER_PORT=str(rport),
                CLIPPER_MODEL_NAME="slow",
                CLIPPER_MODEL_VERSION="1",
                CLIPPER_INPUT_TYPE="doubles",
                CLIPPER_MODEL_PATH=str(model_dir),
                CLIPPER_REPLICA_ID=f"slow-{i}",
                CLIPPER_REPLICA_KEY_FILE=str(key_file),
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "clipper_runtime"],
                    env=env,
                    stdout=open(work / f"replica-{i}.log", "wb"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        while len(admin.get_all_containers(verbose=False)) < args.replicas:
            if time.monotonic() > deadline + 20:
                raise RuntimeError(f"replicas did not register; see {work}")
            time.sleep(0.1)
        token = (state / "admin.token").read_text().strip()
        yield (
            f"http://127.0.0.1:{qport}/bench/predict",
            fe,
            (f"http://127.0.0.1:{qport}/metrics", token),
        )
        ping = urllib.request.urlopen(f"http://127.0.0.1:{aport}/admin/ping", timeout=5)
        print(f"frontend alive after the run: pid {fe.pid}, ping {ping.status}")
    finally:
        for p in procs:
            stop(p)
        stop(fe)


def latency_buckets(metrics: tuple[str, str]) -> dict[float, float]:
    """The frontend's own latency histogram of the app: cumulative count per bucket bound."""
    url, token = metrics
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith('clipper_request_latency_seconds_bucket{app="bench"'):
            le = line.split('le="')[1].split('"')[0]
            out[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def server_side(before: dict[float, float], after: dict[float, float], slo_s: float) -> str:
    """What the frontend measured itself: share within the SLO and the p99's bucket."""
    delta = {le: after.get(le, 0) - before.get(le, 0) for le in after}
    total = delta.get(float("inf"), 0)
    if not total:
        return "no answers measured"
    within = max((n for le, n in delta.items() if le <= slo_s), default=0)
    p99 = min(le for le, n in delta.items() if n >= 0.99 * total)
    return (
        f"{100 * within / total:.1f}% of {total:.0f} answers within {slo_s * 1000:g} ms, "
        f"p99 <= {p99 * 1000:g} ms (histogram bucket)"
    )


def reason_of(doc: dict[str, Any]) -> str:
    """How a query ended: ``model`` or the default's reason."""
    if not doc.get("default"):
        return "model"
    text = doc.get("default_explanation") or ""
    if "is overloaded" in text:
        return "overloaded"
    if "queue of model" in text:
        return "queue_full"
    if "latency SLO" in text:
        return "slo"
    return "other"


async def one(session: aiohttp.ClientSession, url: str, out: list[tuple[str, float]]) -> None:
    started = time.monotonic()
    try:
        async with session.post(url, data=BODY, headers={"Content-Type": "application/json"}) as r:
            doc = await r.json(content_type=None)
            kind = reason_of(doc) if r.status == 200 else f"http_{r.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        kind = f"error_{type(exc).__name__}"
    out.append((kind, time.monotonic() - started))


async def closed_loop(url: str, concurrency: int, seconds: float) -> float:
    """Model answers per second with ``concurrency`` clients each sending back to back (a
    client whose query was shed waits 20 ms, so that shed answers do not flood the machine)."""
    out: list[tuple[str, float]] = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.monotonic() < deadline:
                await one(session, url, out)
                if out[-1][0] != "model":
                    await asyncio.sleep(0.02)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return sum(1 for kind, _ in out if kind == "model") / seconds


async def open_loop(
    url: str, rate: float, seconds: float, max_in_flight: int, pid: int
) -> tuple[list[tuple[str, float]], list[float], float, int]:
    """Fire ``rate`` requests per second for ``seconds``; returns outcomes, RSS samples (MiB),
    the elapsed time and how many sends were skipped because ``max_in_flight`` were open."""
    out: list[tuple[str, float]] = []
    rss: list[float] = []
    skipped = 0
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    timeout = aiohttp.ClientTimeout(total=10)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        next_rss = started
        for i in range(total):
            at = started + i / rate
            now = time.monotonic()
            if at > now:
                await asyncio.sleep(at - now)
            if now >= next_rss:
                rss.append(rss_mib(pid))
                next_rss += 1.0
            if len(tasks) >= max_in_flight:
                skipped += 1
                continue
            task = asyncio.create_task(one(session, url, out))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        elapsed = time.monotonic() - started
    rss.append(rss_mib(pid))
    return out, rss, elapsed, skipped


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--factor", type=float, default=2.0)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--slo-ms", type=float, default=100.0)
    p.add_argument("--batch-ms", type=float, default=2.0)
    p.add_argument("--per-input-ms", type=float, default=2.0)
    p.add_argument("--probe-s", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-in-flight", type=int, default=1024)
    args = p.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp,
        serving(Path(tmp), args) as (url, fe, metrics),
    ):
        asyncio.run(closed_loop(url, 16, 2.0))  # warm-up
        capacity = asyncio.run(closed_loop(url, args.concurrency, args.probe_s))
        rate = capacity * args.factor
        print(
            f"capacity: {capacity:.0f} model answers/s (closed loop, {args.concurrency} clients, "
            f"{args.replicas} replica(s), {args.batch_ms:g} ms + {args.per_input_ms:g} ms/input, "
            f"SLO {args.slo_ms:g} ms)"
        )
        print(f"offering {rate:.0f} req/s ({args.factor:g}x) for {args.duration:g} s ...")
        load_before = os.getloadavg()[0]
        buckets_before = latency_buckets(metrics)
        out, rss, elapsed, skipped = asyncio.run(
            open_loop(url, rate, args.duration, args.max_in_flight, fe.pid)
        )
        measured = server_side(buckets_before, latency_buckets(metrics), args.slo_ms / 1000)
        kinds = Counter(kind for kind, _ in out)
        model = [s for kind, s in out if kind == "model"]
        shed = [s for kind, s in out if kind in ("overloaded", "queue_full")]
        print(
            f"sent {len(out)} in {elapsed:.1f} s ({len(out) / elapsed:.0f} req/s; {skipped} not "
            f"sent: {args.max_in_flight} in flight)"
        )
        print(
            "outcomes: "
            + ", ".join(f"{k} {v} ({100 * v / len(out):.1f}%)" for k, v in kinds.most_common())
        )
        answered = len(model) / elapsed
        print(f"model answers: {answered:.0f}/s ({answered / capacity:.2f}x capacity)")
        print(
            f"latency of model answers: p50 {pct(model, 50):.1f} ms, p99 {pct(model, 99):.1f} ms, "
            f"max {max(model) * 1000 if model else float('nan'):.1f} ms (SLO {args.slo_ms:g} ms)"
        )
        print(f"latency as the frontend measured it (all answers): {measured}")
        print(f"latency of shed answers: p50 {pct(shed, 50):.1f} ms, p99 {pct(shed, 99):.1f} ms")
        print(
            f"machine load average (1 min): {load_before:.1f} before, {os.getloadavg()[0]:.1f} "
            f"after, on {os.cpu_count()} cores (other work on the machine skews the figures)"
        )
        print(
            f"frontend RSS: first {rss[0]:.1f} MiB, max {max(rss):.1f} MiB, last {rss[-1]:.1f} MiB "
            f"({len(rss)} samples)"
        )


if __name__ == "__main__":
    main()

"""Benchmark the serving path: frontend + one replica vs in-process aiohttp vs BentoML.

Serves the seed example (LogisticRegression on 4 doubles behind ``centered_predict``) three ways
at once on this machine, and loads them in turn with wrk (one thread; one worker per server) at
concurrency 1, 16 and 64, the three systems of one level back to back:

- **clipper-deploy**: ``python -m clipper_deploy.frontend`` + one ``clipper_runtime`` replica;
  ``POST /bench/predict`` with ``{"input": [4 doubles]}``;
- **in-process**: the same function behind a minimal aiohttp server, one call per request
  (``bench/serving/baseline_server.py``);
- **BentoML 1.4**: ``batchable=True``, one worker, in its own virtualenv
  (``~/.cache/clipper-deploy/bench/venv-bentoml``, created on first use: it says so).

It prints req/s, p50 and p99 per system and concurrency, the ratios, and the targets (c=64:
>= 1.0x in-process and >= 5x BentoML; c=1: p50 <= in-process p50 + 0.5 ms), and writes the
numbers to ``bench/results/serving.json``. Every server it starts, it stops; every wrk run is
bounded by ``--duration``. Not a test: run it by hand, ``python bench/bench_serving.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "serving"
LUA = HERE / "post.lua"
BENTO_VENV = Path.home() / ".cache" / "clipper-deploy" / "bench" / "venv-bentoml"
BENTO_REQUIREMENT = "bentoml>=1.4,<1.5"
INPUT = [0.1, -0.2, 0.3, 0.4]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, body: bytes, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Poll ``url`` with a real query until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before answering")
        req = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes], group: bool = False) -> None:
    """Stop a server this script started (its own process group when ``group``)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
        proc.wait(5)


def spawn(
    args: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    group: bool = False,
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=group,
        )


@contextlib.contextmanager
def ours(work: Path) -> Iterator[tuple[str, bytes, str]]:
    """Frontend + one replica; yields (url, body, metrics url)."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    import cloudpickle
    import seed_model

    from clipper_deploy.frontend.client import AdminClient

    model_dir = work / "model"
    model_dir.mkdir()
    cloudpickle.register_pickle_by_value(seed_model)
    with open(model_dir / "func.pkl", "wb") as f:
        cloudpickle.dump(seed_model.build_centered_predict(), f)
    qport, aport, rport = free_port(), free_port(), free_port()
    fe = spawn(
        [
            sys.executable,
            "-m",
            "clipper_deploy.frontend",
            "--state-dir",
            str(work / "state"),
            "--query-port",
            str(qport),
            "--admin-port",
            str(aport),
            "--replica-port",
            str(rport),
            "--metrics-open",  # scraped by this script, on loopback only
        ],
        work / "frontend.log",
        cwd=REPO,
    )
    rt = None
    try:
        deadline = time.monotonic() + 20
        while not (work / "state" / "admin.token").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        token = (work / "state" / "admin.token").read_text().strip()
        admin = AdminClient(f"http://127.0.0.1:{aport}", token)
        while True:
            try:
                admin.ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        admin.add_app("bench", "doubles", -1, 1_000_000)
        admin.add_model("seed", "1", "doubles")
        admin.add_model_links("bench", ["seed"])
        key_file = work / "bench-1.key"  # the replica's key, as a deploy writes it on a host
        key_file.write_text(admin.replica_keys("seed", "1", ["bench-1"])["bench-1"] + "\n")
        key_file.chmod(0o600)
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO / "container"),
            CLIPPER_IP="127.0.0.1",
            CLIPPER_PORT=str(rport),
            CLIPPER_MODEL_NAME="seed",
            CLIPPER_MODEL_VERSION="1",
            CLIPPER_INPUT_TYPE="doubles",
            CLIPPER_MODEL_PATH=str(model_dir),
            CLIPPER_REPLICA_ID="bench-1",
            CLIPPER_REPLICA_KEY_FILE=str(key_file),
        )
        rt = spawn([sys.executable, "-m", "clipper_runtime"], work / "runtime.log", env=env)
        deadline = time.monotonic() + 20
        while not admin.get_all_containers(verbose=False):
            if time.monotonic() > deadline or rt.poll() is not None:
                raise RuntimeError(f"replica did not register; see {work / 'runtime.log'}")
            time.sleep(0.1)
        url = f"http://127.0.0.1:{qport}/bench/predict"
        body = json.dumps({"input": INPUT}).encode()
        wait_ready(url, body, 10, fe)
        yield url, body, f"http://127.0.0.1:{qport}/metrics"
    finally:
        if rt is not None:
            stop(rt)
        stop(fe)


@contextlib.contextmanager
def baseline(work: Path) -> Iterator[tuple[str, bytes, None]]:
    port = free_port()
    proc = spawn(
        [sys.executable, str(HERE / "baseline_server.py"), str(port)], work / "baseline.log"
    )
    try:
        url = f"http://127.0.0.1:{port}/predict"
        body = json.dumps({"input": INPUT}).encode()
        wait_ready(url, body, 30, proc)
        yield url, body, None
    finally:
        stop(proc)


def ensure_bento_venv() -> Path:
    python = BENTO_VENV / "bin" / "python"
    probe = [str(python), "-c", "import bentoml, sklearn"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(
        f"Creating the BentoML virtualenv {BENTO_VENV} (once; takes a few minutes)...", flush=True
    )
    subprocess.run([sys.executable, "-m", "venv", str(BENTO_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", BENTO_REQUIREMENT, "scikit-learn", "numpy"],
        check=True,
    )
    return python


@contextlib.contextmanager
def bentoml_server(work: Path) -> Iterator[tuple[str, bytes, None]]:
    python = ensure_bento_venv()
    port = free_port()
    env = dict(os.environ, BENTOML_HOME=str(work / "bentoml-home"), BENTOML_DO_NOT_TRACK="True")
    proc = spawn(
        [
            str(python),
            "-m",
            "bentoml",
            "serve",
            "bento_service:SeedService",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        work / "bentoml.log",
        env=env,
        cwd=HERE,
        group=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/predict"
        body = json.dumps({"input": [INPUT]}).encode()
        wait_ready(url, body, 120, proc)
        yield url, body, None
    finally:
        stop(proc, group=True)


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, body: bytes, concurrency: int, seconds: int) -> dict[str, float]:
    """One bounded wrk run; returns req/s, p50 and p99 (ms) and error counts."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(LUA), url],
        env=dict(os.environ, BENCH_BODY=body.decode()),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * UNITS[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(map(int, sock.groups())) if sock else 0,
    }


def scrape(metrics_url: str | None) -> dict[str, float]:
    """Batch-size sum/count and default-output count from our /metrics."""
    if metrics_url is None:
        return {}
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()

    def total(name: str) -> float:
        return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M))

    return {
        "batch_sum": total("clipper_batch_size_sum"),
        "batch_count": total("clipper_batch_size_count"),
        "defaults": total("clipper_default_outputs_total"),
    }


def measure(
    name: str, target: tuple[str, bytes, str | None], c: int, seconds: int, warmup: int
) -> dict[str, float]:
    """Warm up, then one measured wrk run of ``name`` at concurrency ``c``."""
    url, body, metrics_url = target
    if warmup:
        wrk(url, body, c, warmup)
    before = scrape(metrics_url)
    r = wrk(url, body, c, seconds)
    after = scrape(metrics_url)
    if before:
        batches = after["batch_count"] - before["batch_count"]
        r["mean_batch"] = (after["batch_sum"] - before["batch_sum"]) / max(batches, 1)
        r["defaults"] = after["defaults"] - before["defaults"]
    extra = (
        f"  mean batch {r['mean_batch']:.1f}, defaults {r['defaults']:.0f}"
        if "mean_batch" in r
        else ""
    )
    print(
        f"   {name:<15} c={c:<3} {r['rps']:>9.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
        f"p99 {r['p99_ms']:.2f} ms  errors {r['non_2xx'] + r['socket_errors']}{extra}",
        flush=True,
    )
    return r


def report(results: dict[str, dict[int, dict[str, float]]], levels: list[int]) -> list[str]:
    """Print the table and the targets; return the targets missed."""
    names = list(results)
    print()
    print(f"{'system':<16}" + "".join(f"{'c=' + str(c):>30}" for c in levels))
    print(f"{'':<16}" + "".join(f"{'req/s   p50 ms   p99 ms':>30}" for _ in levels))
    for n in names:
        row = "".join(
            f"{results[n][c]['rps']:>12.0f} {results[n][c]['p50_ms']:>8.2f} "
            f"{results[n][c]['p99_ms']:>8.2f}"
            for c in levels
        )
        print(f"{n:<16}{row}")
    for n in names:
        errors = {c: int(results[n][c]["non_2xx"] + results[n][c]["socket_errors"]) for c in levels}
        if any(errors.values()):
            print(
                f"  {n}: non-2xx or socket errors "
                + ", ".join(f"c={c}: {e}" for c, e in errors.items())
            )
    ours = results["clipper-deploy"]
    print()
    for other in names[1:]:
        ratios = "  ".join(
            f"c={c}: {ours[c]['rps'] / results[other][c]['rps']:.2f}x" for c in levels
        )
        print(f"throughput ratio clipper-deploy / {other}: {ratios}")
    print()
    missed = []
    checks: list[tuple[str, bool]] = []
    if "in-process" in results and 64 in levels:
        ratio = ours[64]["rps"] / results["in-process"][64]["rps"]
        checks.append((f"c=64 throughput >= 1.0x in-process ({ratio:.2f}x)", ratio >= 1.0))
    if "bentoml" in results and 64 in levels:
        ratio = ours[64]["rps"] / results["bentoml"][64]["rps"]
        checks.append((f"c=64 throughput >= 5x BentoML ({ratio:.2f}x)", ratio >= 5.0))
    if "in-process" in results and 1 in levels:
        delta = ours[1]["p50_ms"] - results["in-process"][1]["p50_ms"]
        checks.append((f"c=1 p50 <= in-process + 0.5 ms (+{delta:.2f} ms)", delta <= 0.5))
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'MISS'}] {text}")
        if not ok:
            missed.append(text)
    return missed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per level")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--skip-bentoml", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.json")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, dict[int, dict[str, float]]] = {}
    systems: list[tuple[str, Any]] = [("clipper-deploy", ours), ("in-process", baseline)]
    if not args.skip_bentoml:
        systems.append(("bentoml", bentoml_server))
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, ExitStack() as stack:
        targets: dict[str, tuple[str, bytes, str | None]] = {}
        for name, server in systems:
            sub = Path(tmp) / name
            sub.mkdir()
            print(f"starting {name}", flush=True)
            try:
                targets[name] = stack.enter_context(server(sub))
            except Exception as exc:
                logs = "\n".join(f"--- {f}\n{f.read_text()[-2000:]}" for f in sub.glob("*.log"))
                print(f"{name} failed to start: {exc}\n{logs}", file=sys.stderr)
                return 1
        # Levels outermost, systems inner: the three systems of one level are measured within
        # a minute of each other, so background load on the shared machine hits them alike.
        for c in levels:
            for name, target in targets.items():
                results.setdefault(name, {})[c] = measure(
                    name, target, c, args.duration, args.warmup
                )
    missed = report(results, levels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "missed": missed}, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

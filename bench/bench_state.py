"""Benchmark: deploying a function whose closure holds big numpy state (issue 13).

For each state size (default 10 MB, 100 MB and 1 GB of float64), on one bed host:

1. cold: a fresh host (no base image, no uploads, no images) until the version is current;
2. new version, changed state (same environment, new numbers) until it is current;
3. the deploying process's peak RSS (``VmHWM``) against the state's size: every deploy runs
   in its own Python process, which builds the state, deploys, and reports;
4. the upload rate of the new version's bundle (the pickle is almost all of it), against a
   floor measured in the same run: the same bytes ``cat`` into a file on that host over one
   SSH channel (up to 256 MiB of them, median of 3, right after the deploy);
5. the host's disk used per retained version (the clipper-deploy directory plus the engine's
   data root, measured with ``du`` after each deploy), and what pruning a version frees.

    .venv/bin/python bench/bench_state.py [--sizes 10,100,1000] [--old /path/to/old/tree]

``--old`` runs the same deploys again with another clipper-deploy tree first on the path (a
temporary worktree of an older commit), for before/after figures from one run. Output is
printed and saved as ``bench/results/state.json``. Needs about 6x the biggest state free on
the file system holding the bed and the client cache; checked before anything starts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bedbench import RESULTS, bench_bed, wipe_host

from clipper_deploy import Clipper
from clipper_deploy.hosts.connection import connection_for
from clipper_deploy.hosts.transfer import stream_into
from clipper_deploy.settings import default_cache_dir

MB = 10**6
COPIED = re.compile(
    r"Copied model data to host \S+ \((\d+) new file\(s\), ([\d.]+) MiB sent, ([\d.]+) s\)"
)
BUILT = re.compile(r"\] built \S+ in ([\d.]+) s")
TAGGED = re.compile(r"\] tagged \S+ from the environment's image \(no build\) in ([\d.]+) s")
CHILD_TIMEOUT = 900
FLOOR_RUNS = 3
FLOOR_BYTES = 256 * 2**20
"""The floor sends at most this much of the pickle (a rate needs no more), three times."""


# --------------------------------------------------------------------------- the deploying process


def child(spec: dict[str, Any]) -> None:
    """One deploy in this process: build ``size_mb`` of state, deploy a closure over it,
    print one JSON line with the timings and this process's memory."""
    import numpy as np

    baseline = _status_kib("VmRSS")
    n = spec["size_mb"] * MB // 8
    state = np.random.default_rng(spec["seed"]).standard_normal(n)
    with_state = _status_kib("VmRSS")

    def predict(xs):
        return [float(state[int(abs(x)) % n]) for x in xs]

    lines: list[tuple[float, str]] = []
    clipper = Clipper(
        spec["inventory"],
        say=lambda line: lines.append((time.perf_counter(), line)),
        ready_timeout=300,
    )
    started = time.perf_counter()
    clipper.deploy_predict_function(
        spec["model"],
        spec["version"],
        predict,
        ["state"],
        "doubles",
        hosts="h1",
        mode="auto",
        sample_input=[1.0, 2.0],
        retain=spec["retain"],
    )
    ended = time.perf_counter()
    current = next((t for t, line in lines if " is current: " in line), ended)
    packaged = next((t for t, line in lines if line.startswith("Serialized and supplied")), started)
    text = [line for _, line in lines]
    copied = next((COPIED.search(line) for line in text if COPIED.search(line)), None)
    built = next((BUILT.search(line) for line in text if BUILT.search(line)), None)
    tagged = next((TAGGED.search(line) for line in text if TAGGED.search(line)), None)
    print(
        json.dumps(
            {
                "state_bytes": int(state.nbytes),
                "until_current_s": current - started,
                "packaging_s": packaged - started,
                "upload_mib": float(copied.group(2)) if copied else 0.0,
                "upload_s": float(copied.group(3)) if copied else 0.0,
                "build_s": float(built.group(1)) if built else None,
                "tag_s": float(tagged.group(1)) if tagged else None,
                "rss_before_state_kib": baseline,
                "rss_with_state_kib": with_state,
                "peak_rss_kib": _status_kib("VmHWM"),
                "lines": text,
            }
        )
    )


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_child(spec: dict[str, Any], tree: str | None) -> dict[str, Any]:
    env = dict(os.environ, CLIPPER_DEPLOY_WARM_ROUNDTRIP="0")
    if tree is not None:  # another clipper-deploy first on the path (and its runtime)
        env["PYTHONPATH"] = os.pathsep.join([tree, os.path.join(tree, "container")])
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        return {"error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the host


def host_disk(bed: Any) -> dict[str, int]:
    """Bytes used on h1: its clipper-deploy directory and its engine's data root (one ``du``
    each, so hard links count once)."""
    host = next(h for h in bed.layout.all_hosts() if h.name == "h1")
    out: dict[str, int] = {}
    for key, path in (
        ("clipper_deploy", host.private_dirs["/var/lib/clipper-deploy"]),
        ("docker", host.docker_root),
    ):
        done = subprocess.run(
            ["du", "-s", "-x", "-B1", str(path)], capture_output=True, text=True, check=False
        )
        out[key] = int(done.stdout.split()[0]) if done.stdout else 0
    return out


class _Prefix:
    """The first ``size`` bytes of a binary file, as a readable stream."""

    def __init__(self, file: Any, size: int) -> None:
        self.file, self.left = file, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.file.read(n)
        self.left -= len(data)
        return data


def floor_upload(clipper: Clipper, source: Path, runs: int = FLOOR_RUNS) -> tuple[int, list[float]]:
    """Bytes, and seconds to ``cat`` them into a file on h1 over one SSH channel (then
    removed): the first :data:`FLOOR_BYTES` of ``source``, ``runs`` times on one connection
    (the machine is shared: the median is reported)."""
    target = "/var/lib/clipper-deploy/bench-floor.bin"
    size = min(source.stat().st_size, FLOOR_BYTES)
    seconds = []
    with connection_for(clipper.inventory.host("h1")) as conn:
        for _ in range(runs):
            started = time.perf_counter()
            with open(source, "rb") as f:
                result = stream_into(conn, ["sh", "-c", f"cat > {target}"], _Prefix(f, size))
            seconds.append(time.perf_counter() - started)
            conn.run(f"rm -f {target}", hide=True, in_stream=False)
            if not result.ok:
                raise RuntimeError(f"floor upload failed: {result.stderr}")
    return size, seconds


def model_bundles(model: str) -> list[Path]:
    """The client cache's bundles of ``model`` (the benchmark removes them at the end)."""
    found = []
    for path in (default_cache_dir() / "bundles").glob("*"):
        for meta in (path / "model" / "model.json", path / "model.json"):
            if meta.is_file() and json.loads(meta.read_text()).get("name") == model:
                found.append(path)
                break
    return found


def pickle_of(bundle: Path) -> Path:
    for rel in ("model/func.pkl", "func.pkl"):
        if (bundle / rel).is_file():
            return bundle / rel
    raise FileNotFoundError(f"no func.pkl in {bundle}")


# --------------------------------------------------------------------------- the benchmark


def bench_size(
    bed: Any, clipper: Clipper, inventory: str, code: str, tree: str | None, size: int
) -> dict[str, Any]:
    model = f"state-{code}-{size}mb"
    spec = {"inventory": inventory, "model": model, "size_mb": size, "retain": 3}
    wipe_host(clipper, "h1")
    empty = host_disk(bed)
    cold = run_child({**spec, "version": 1, "seed": 1}, tree)
    after_1 = host_disk(bed)
    new = run_child({**spec, "version": 2, "seed": 2}, tree)
    after_2 = host_disk(bed)
    result: dict[str, Any] = {"cold": cold, "new_version": new, "disk": [empty, after_1, after_2]}
    bundles = model_bundles(model)
    if "error" not in new and bundles:
        newest = max(bundles, key=lambda p: p.stat().st_mtime)
        source = pickle_of(newest)
        result["pickle_bytes"] = source.stat().st_size
        result["floor_bytes"], result["floor_runs_s"] = floor_upload(clipper, source)
        result["floor_s"] = statistics.median(result["floor_runs_s"])
    if "error" not in new:  # retain 1: version 3 prunes 1 and 2; what is left is one version
        pruned = run_child({**spec, "version": 3, "seed": 3, "retain": 1}, tree)
        result["retain_1"] = {k: v for k, v in pruned.items() if k != "lines"}
        result["disk"].append(host_disk(bed))
    for path in model_bundles(model):
        shutil.rmtree(path, ignore_errors=True)
    clipper.stop_models(model)
    return result


def check_room(sizes: list[int], with_old: bool) -> None:
    need = 6 * max(sizes) * MB * (2 if with_old else 1) + 2 * 10**9
    for where in (RESULTS, default_cache_dir()):
        where.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(where).free
        if free < need:
            raise SystemExit(
                f"not enough room: {free / 1e9:.1f} GB free at {where}, the benchmark needs "
                f"about {need / 1e9:.1f} GB; pass smaller --sizes"
            )


def describe(code: str, size: int, r: dict[str, Any]) -> list[str]:
    out = [f"{code}, {size} MB of state:"]
    for key in ("cold", "new_version"):
        d = r[key]
        if "error" in d:
            out.append(f"  {key:12s} FAILED: {d['error'].splitlines()[-1][:160]}")
            continue
        state = d["state_bytes"]
        peak = d["peak_rss_kib"] * 1024
        extra = (d["peak_rss_kib"] - d["rss_with_state_kib"]) * 1024
        rate = d["upload_mib"] / d["upload_s"] if d["upload_s"] else float("nan")
        if d["build_s"] is not None:
            build = f"build {d['build_s']:.1f} s"
        elif d.get("tag_s") is not None:
            build = f"no build: tag {d['tag_s']:.1f} s"
        else:
            build = "no build"
        out.append(
            f"  {key:12s} until current {d['until_current_s']:6.1f} s  (packaging "
            f"{d['packaging_s']:.1f} s, upload {d['upload_mib']:.0f} MiB in {d['upload_s']:.1f} s "
            f"= {rate:.0f} MiB/s, {build})"
        )
        out.append(
            f"  {'':12s} client peak RSS {peak / MB:6.0f} MB = {peak / state:.2f}x the state; "
            f"{extra / MB:.0f} MB above the process holding its state ({extra / state:.2f}x)"
        )
    if "floor_s" in r:
        mib = r["floor_bytes"] / 2**20
        floor_rate = mib / r["floor_s"]
        d = r["new_version"]
        rate = d["upload_mib"] / d["upload_s"] if d["upload_s"] else float("nan")
        out.append(
            f"  floor: cat of {mib:.0f} MiB of the pickle over one SSH channel "
            f"{r['floor_s']:.1f} s (median of {len(r['floor_runs_s'])}) "
            f"= {floor_rate:.0f} MiB/s; the deploy's upload went at {rate / floor_rate:.2f}x that"
        )
    disk = [sum(d.values()) for d in r["disk"]]
    out.append(
        f"  host disk: version 1 +{(disk[1] - disk[0]) / MB:.0f} MB (with the environment), "
        f"version 2 +{(disk[2] - disk[1]) / MB:.0f} MB = "
        f"{(disk[2] - disk[1]) / max(r['new_version'].get('state_bytes', 1), 1):.2f}x the state"
    )
    if len(disk) > 3:
        out.append(
            f"  version 3 with retain 1 (1 and 2 pruned): {(disk[3] - disk[2]) / MB:+.0f} MB"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000", help="state sizes in MB")
    parser.add_argument("--old", default=None, help="another clipper-deploy tree to compare")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(json.loads(args.child))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    check_room(sizes, args.old is not None)
    codes = [("new", None)] + ([("old", args.old)] if args.old else [])
    results: dict[str, Any] = {}
    report: list[str] = []
    with bench_bed(1) as (bed, clipper):
        inventory = str(bed.layout.inventory)
        for size in sizes:
            for code, tree in codes:
                r = bench_size(bed, clipper, inventory, code, tree, size)
                results[f"{code}-{size}"] = r
                block = describe(code, size, r)
                report += block
                print("\n".join(block), flush=True)
    print()
    print(f"Big model state on the test bed, load average {os.getloadavg()[0]:.1f}")
    print("\n".join(report))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "state.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

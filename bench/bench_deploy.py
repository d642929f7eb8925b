"""Benchmark: deploy the seed example on the test bed (issue 5's three figures).

1. Cold: a fresh host (no base image, no uploads, no image layers) until the replica serves.
2. Warm: same environment, function changed (refitted), new version, until it serves.
3. ``num_containers=4`` over 4 hosts vs 1 replica on 1 host (warm: new version each run).

Every figure is the median of ``--runs`` runs, timed from the call of
``deploy_predict_function`` until the new version is current (it answers queries). That
includes packaging (the client's caches are warm after the first run, as for a user), not the
retiring of the old version's replicas that follows.

    .venv/bin/python bench/bench_deploy.py [--runs 3]

Targets (issue 5): cold <= 30 s, warm <= 2 s, 4 hosts <= 1.3x one host.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import centered_predict as example
from bedbench import RESULTS, bench_bed, median, show, wipe_host

from clipper_deploy import Clipper

SERVING_AT: list[float] = []


def note_serving(line: str) -> None:
    """Progress lines: remember when the new version became current (it answers queries)."""
    if " is current: " in line:
        SERVING_AT.append(time.perf_counter())


def deploy(clipper: Clipper, version: int, seed: int, hosts: str, replicas: int) -> float:
    """Seconds from the call until the new version answers queries (is current); the call
    itself goes on a little longer (retiring the old version's replicas)."""
    func = example.make(seed)
    clipper.say = note_serving
    started = time.perf_counter()
    clipper.deploy_predict_function(
        "example-model",
        version,
        func,
        ["example"],
        "doubles",
        num_containers=replicas,
        hosts=hosts,
        mode="auto",
        sample_input=example.sample_inputs(2),
    )
    return SERVING_AT[-1] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"cold": [], "warm": [], "one_host": [], "four_hosts": []}
    with bench_bed(4) as (_bed, clipper):
        clipper.register_application("example", "doubles", "-1.0", 100_000)
        version = 0
        # Prime the client's caches (wheels, bundle): the benchmark is about the hosts.
        for run in range(args.runs):
            wipe_host(clipper, "h1")
            version += 1
            results["cold"].append(deploy(clipper, version, run, "h1", 1))
            print(f"cold run {run + 1}: {results['cold'][-1]:.2f} s", flush=True)
        for run in range(args.runs + 2):
            version += 1
            results["warm"].append(deploy(clipper, version, 100 + run, "h1", 1))
            print(f"warm run {run + 1}: {results['warm'][-1]:.2f} s", flush=True)
        deploy(clipper, version + 1, 1, "model_hosts", 4)  # every host holds the environment
        version += 1
        for run in range(args.runs):
            version += 1
            results["one_host"].append(deploy(clipper, version, 200 + run, "h1", 1))
            version += 1
            results["four_hosts"].append(deploy(clipper, version, 300 + run, "model_hosts", 4))
            print(
                f"1 host {results['one_host'][-1]:.2f} s, "
                f"4 hosts {results['four_hosts'][-1]:.2f} s",
                flush=True,
            )
    cold, warm = median(results["cold"]), median(results["warm"])
    ratio = median(results["four_hosts"]) / median(results["one_host"])
    print()
    print("Deploy of the seed example on the test bed (medians)")
    print(f"  cold, fresh host, until serving     {show(results['cold'])}")
    print(f"  warm, new version, until serving    {show(results['warm'])}")
    print(f"  1 replica on 1 host (warm)          {show(results['one_host'])}")
    print(f"  4 replicas on 4 hosts (warm)        {show(results['four_hosts'])}")
    print(f"  4 hosts / 1 host                    {ratio:6.2f}x")
    print()
    for label, ok in (
        (f"cold <= 30 s: {cold:.1f} s", cold <= 30),
        (f"warm <= 2 s: {warm:.2f} s", warm <= 2),
        (f"4 hosts <= 1.3x one host: {ratio:.2f}x", ratio <= 1.3),
    ):
        print(f"  [{'met' if ok else 'MISSED'}] {label}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deploy.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

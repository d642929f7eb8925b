"""Benchmark: roll a new version of the seed example over 4 hosts (serial 1) under load.

A bounded load generator sends queries at a steady rate (``--rate``, default 50/s) the whole
time. Reports the rollout's duration, failed and default answers (must be 0), and the p99
latency during the rollout against the p99 of the same load just before it.

    .venv/bin/python bench/bench_rollout.py [--rate 50] [--before 15] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml
from bedbench import RESULTS, bench_bed, median

from clipper_deploy.orchestration.playbook import load_playbook
from clipper_deploy.testing.load import SteadyLoad, percentile

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "centered_predict.py"
QUERY = [2.5, 1.0, 3.2, 2.2]


def playbook(directory: Path, seed: int):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"rollout-{seed}.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "model": "example-model",
                "function": f"{EXAMPLE}:make()",
                "input_type": "doubles",
                "mode": "auto",
                "app": {"name": "example", "default_output": "-1.0", "slo_micros": 100_000},
                "replicas": 4,
                "serial": 1,
                "max_fail_percentage": 0,
                "smoke": [{"input": QUERY}],
            }
        )
    )
    return load_playbook(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--before", type=float, default=15, help="seconds of load before")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with bench_bed(4) as (_bed, clipper):
        book = playbook(RESULTS / "playbooks", 0)
        clipper.deploy_playbook(book, 1)
        url = f"{clipper.query.base_url}/example/predict"
        for run in range(args.runs):
            version = run + 2
            with SteadyLoad(url, {"input": QUERY}, rate=args.rate, max_seconds=600) as load:
                time.sleep(args.before)
                started = time.monotonic()
                clipper.rollout_playbook(book, version)
                ended = time.monotonic()
                time.sleep(1)
            before = [a.latency for a in load.between(started - args.before + 1, started)]
            during = [a.latency for a in load.between(started, ended)]
            rows.append(
                {
                    "duration_s": ended - started,
                    "queries": len(load.snapshot()),
                    "failed": len(load.failed),
                    "defaults": len(load.defaults),
                    "p99_before_ms": percentile(before, 99) * 1000,
                    "p99_during_ms": percentile(during, 99) * 1000,
                    "p50_before_ms": percentile(before, 50) * 1000,
                    "p50_during_ms": percentile(during, 50) * 1000,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"Rollout of the seed example over 4 hosts, serial 1, {args.rate:.0f} queries/s")
    print(f"  runs                      {len(rows)}")
    print(f"  duration (median)         {median([r['duration_s'] for r in rows]):.1f} s")
    print(f"  queries during all runs   {sum(r['queries'] for r in rows)}")
    print(f"  failed answers            {sum(r['failed'] for r in rows)}  (must be 0)")
    print(f"  default answers           {sum(r['defaults'] for r in rows)}  (must be 0)")
    before = median([r["p99_before_ms"] for r in rows])
    during = median([r["p99_during_ms"] for r in rows])
    print(f"  p99 before (median)       {before:.2f} ms")
    print(f"  p99 during (median)       {during:.2f} ms  ({during / before:.2f}x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rollout.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

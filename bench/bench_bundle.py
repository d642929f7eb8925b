"""Benchmark: bundle the seed example cold, then again with the function changed.

Cold: an empty clipper-deploy cache and no warm round-trip worker (pip's own HTTP cache and any
configured local mirror are left as they are, so network speed is mostly out of the figure).
Warm: the same environment, a different function (another fit of the model), as a redeploy of
a new version from the same Python session would be. "Warm, new process": the same, but with no
warm round-trip worker, as the first redeploy from a new Python process would be (the clean
subprocess then has to import scikit-learn itself). Prints medians, and warm/cold.

    .venv/bin/python bench/bench_bundle.py [--runs 3] [--modes full,auto] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import centered_predict as example

from clipper_deploy.packaging import RecordingPrinter, build_bundle, shutdown_workers


def bundle_once(seed: int, version: int, mode: str, cache: Path, bundles: Path) -> float:
    """Seconds to bundle the example fitted with ``seed`` (the fit is not timed)."""
    func = example.make(seed)
    started = time.perf_counter()
    build_bundle(
        func,
        "example-model",
        version,
        "doubles",
        ["example"],
        mode=mode,  # type: ignore[arg-type]
        sample_input=example.sample_inputs(),
        cache_dir=cache,
        bundles_dir=bundles,
        printer=RecordingPrinter(),
    )
    return time.perf_counter() - started


def bench(mode: str, runs: int, workdir: Path) -> dict[str, float]:
    """Median cold and warm times for ``mode``."""
    cold: list[float] = []
    warm: list[float] = []
    warm_new_process: list[float] = []
    for run in range(runs):
        cache = workdir / f"{mode}-cache-{run}"
        bundles = workdir / f"{mode}-bundles-{run}"
        shutdown_workers()
        cold.append(bundle_once(0, 1, mode, cache, bundles))
        warm.append(bundle_once(100 + run, 2, mode, cache, bundles))
        shutdown_workers()
        warm_new_process.append(bundle_once(200 + run, 3, mode, cache, bundles))
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(bundles, ignore_errors=True)
    result = {
        "cold_s": statistics.median(cold),
        "warm_s": statistics.median(warm),
        "warm_new_process_s": statistics.median(warm_new_process),
    }
    result["ratio"] = result["warm_s"] / result["cold_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="full,auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="clipper-bench-") as tmp:
        for mode in args.modes.split(","):
            results[mode] = bench(mode, args.runs, Path(tmp))
            r = results[mode]
            print(
                f"{mode:>4}: cold {r['cold_s']:.2f} s, warm {r['warm_s']:.3f} s "
                f"(warm/cold {r['ratio']:.3f}), warm in a new process "
                f"{r['warm_new_process_s']:.2f} s; medians of {args.runs}",
                flush=True,
            )
    shutdown_workers()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

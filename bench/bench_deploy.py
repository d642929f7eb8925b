"""Benchmark: deploy the seed example on a fresh test bed (issue 13's table), per mode.

For each ``--modes`` (default ``auto,full``), on a fresh bed of 4 hosts:

1. cold: a fresh host, until the replica serves (the client's caches are warm);
2. warm: the same host, function changed (refitted), new version, until it serves;
3. the floor on that host: a new SSH connection + ``docker run`` of the built image + import
   of the function's libraries (numpy, scikit-learn, cloudpickle);
4. cold to 3 fresh hosts (h2-h4) vs cold to 1; warm on 4 hosts vs warm on 1;
5. per deploy, the bytes the client sent (the bed bridge's transmit counter: everything the
   control machine sent to the hosts, SSH and all) and the layer bytes by sender (the
   transfer meter), and the CPU seconds of all hosts together (each bed host's own cgroup:
   its sshd and sessions, dockerd, containerd, builds and containers), cold and warm, for 1,
   2 and 4 hosts;
6. the wall time of the README's ``clipper-deploy deploy --playbook playbooks/example.yml``
   warm (a new version of an unchanged function), as a user runs it.

Then the simulated 50-host plan (``bench/fleet_plan.py``). Figures are medians of ``--runs``
where there are several runs; the output is also written to ``bench/results/deploy.json``.

    .venv/bin/python bench/bench_deploy.py [--runs 2] [--modes auto,full]

Goals (issue 13): cold <= 15 s, warm <= floor + 1 s, 3 hosts cold <= 1.3x one host, 4 hosts
warm <= 1.3x one host, client bytes and all-host CPU <= 1.1x from 1 to 4 hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import centered_predict as example
from bedbench import RESULTS, bench_bed, median, wipe_host
from fleet_plan import cached_base_size, report

from clipper_deploy import Clipper
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts.connection import connection_for
from clipper_deploy.hosts.transfer import CLIENT, METER
from clipper_deploy.testbed.bed import Testbed

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("h1", "h2", "h3", "h4")
MIB = 2**20


@dataclass
class Cost:
    """What one deploy cost: seconds until serving, bytes the control machine sent to the
    bed (bridge counter), layer bytes by sender (meter), CPU seconds per host."""

    seconds: float
    client_bytes: int
    layer_bytes: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def host_cpu(self) -> float:
        return sum(self.cpu.values())


def counter(path: Path) -> int:
    return int(path.read_text())


class Bench:
    def __init__(self, bed: Testbed, clipper: Clipper) -> None:
        self.bed = bed
        self.clipper = clipper
        self.version = 0
        self.serving_at: list[float] = []
        clipper.say = self.note

    def note(self, line: str) -> None:
        """Progress lines: remember when the new version became current (answers queries)."""
        if " is current" in line:
            self.serving_at.append(time.perf_counter())
        if os.environ.get("BENCH_VERBOSE"):
            print(f"    . {line}", flush=True)

    def tx(self) -> int:
        return counter(Path(f"/sys/class/net/{self.bed.layout.bridge}/statistics/tx_bytes"))

    def cpu(self) -> dict[str, float]:
        return {h: self.bed.cpu_seconds(h) or 0.0 for h in HOSTS}

    def deploy(self, seed: int, hosts: list[str], mode: str) -> Cost:
        """Deploy a new version of the example (refitted with ``seed``), one replica per
        host; its cost until it serves."""
        self.version += 1
        func = example.make(seed)
        before_tx, before_cpu, before_meter = self.tx(), self.cpu(), METER.snapshot()
        started = time.perf_counter()
        self.clipper.deploy_predict_function(
            "example-model",
            self.version,
            func,
            ["example"],
            "doubles",
            num_containers=len(hosts),
            hosts=":".join(hosts),
            mode=mode,
            sample_input=example.sample_inputs(2),
        )
        seconds = self.serving_at[-1] - started
        after_cpu, after_meter = self.cpu(), METER.snapshot()
        layers: dict[str, int] = {}
        for (sender, _receiver), n in after_meter.items():
            layers[sender] = layers.get(sender, 0) + n - before_meter.get((sender, _receiver), 0)
        return Cost(
            seconds,
            self.tx() - before_tx,
            {s: n for s, n in layers.items() if n},
            {h: after_cpu[h] - before_cpu[h] for h in HOSTS if h in hosts},
        )

    def floor(self, host: str) -> float:
        """A new SSH connection, ``docker run`` of the current image, import of the
        function's libraries, exit."""
        image = dc.image_name("example-model", str(self.version))
        argv = [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python3",
            image,
            "-c",
            "import cloudpickle, numpy, sklearn.linear_model",
        ]
        started = time.perf_counter()
        with connection_for(self.clipper.inventory.host(host)) as conn:
            conn.run(dc.shell(argv), hide=True, in_stream=False)
        return time.perf_counter() - started

    def wipe(self, hosts: list[str]) -> None:
        for host in hosts:
            wipe_host(self.clipper, host)


def show(values: list[float]) -> str:
    return f"{median(values):7.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})"


def cli_warm(inventory: Path, version: int) -> float:
    """Wall time of the README's ``clipper-deploy deploy`` of the example's playbook."""
    cli = Path(sys.executable).parent / "clipper-deploy"
    argv = [str(cli), "deploy", "--playbook", str(REPO / "playbooks/example.yml")]
    argv += ["--inventory", str(inventory), "--version", str(version)]
    started = time.perf_counter()
    subprocess.run(argv, check=True, cwd=REPO, capture_output=True, timeout=600)
    return time.perf_counter() - started


def run_mode(mode: str, runs: int) -> dict:
    """Every figure of one mode, on a fresh bed."""
    out: dict = {"mode": mode}
    with bench_bed(len(HOSTS)) as (bed, clipper):
        clipper.register_application("example", "doubles", "-1.0", 100_000)
        clipper.base_image.shipping_file  # noqa: B018 -- client caches warm: the packed base too
        b = Bench(bed, clipper)
        seed = 0
        cold1 = [b.deploy(seed := seed + 1, ["h1"], mode)]
        print(f"  [{mode}] cold 1 host: {cold1[-1].seconds:.2f} s", flush=True)
        warm1 = []
        for _ in range(runs):
            warm1.append(b.deploy(seed := seed + 1, ["h1"], mode))
            print(f"  [{mode}] warm 1 host: {warm1[-1].seconds:.2f} s", flush=True)
        floor = [b.floor("h1") for _ in range(3)]
        cold3 = b.deploy(seed := seed + 1, ["h2", "h3", "h4"], mode)
        print(f"  [{mode}] cold 3 hosts: {cold3.seconds:.2f} s", flush=True)
        warm4 = []
        for _ in range(runs):
            warm4.append(b.deploy(seed := seed + 1, list(HOSTS), mode))
            print(f"  [{mode}] warm 4 hosts: {warm4[-1].seconds:.2f} s", flush=True)
        warm2 = b.deploy(seed := seed + 1, ["h1", "h2"], mode)
        b.wipe(["h1", "h2"])
        cold2 = b.deploy(seed := seed + 1, ["h1", "h2"], mode)
        print(f"  [{mode}] cold 2 hosts: {cold2.seconds:.2f} s", flush=True)
        b.wipe(list(HOSTS))
        cold4 = b.deploy(seed := seed + 1, list(HOSTS), mode)
        print(f"  [{mode}] cold 4 hosts: {cold4.seconds:.2f} s", flush=True)
        cli = []
        if mode == "auto":  # the playbook's own mode
            cli_warm(bed.layout.inventory, 900)  # the playbook's version, first on the hosts
            cli = [cli_warm(bed.layout.inventory, 901 + i) for i in range(runs)]
            print(f"  [{mode}] CLI deploy warm: {median(cli):.2f} s", flush=True)
        out.update(
            cold1=[asdict(c) for c in cold1],
            warm1=[asdict(c) for c in warm1],
            floor=floor,
            cold3=asdict(cold3),
            warm4=[asdict(c) for c in warm4],
            cold2=asdict(cold2),
            cold4=asdict(cold4),
            warm2=asdict(warm2),
            cli_warm=cli,
        )
        table(out, cold1, warm1, floor, cold3, warm4, cold2, cold4, warm2, cli)
    return out


def table(
    out: dict,
    cold1: list[Cost],
    warm1: list[Cost],
    floor: list[float],
    cold3: Cost,
    warm4: list[Cost],
    cold2: Cost,
    cold4: Cost,
    warm2: Cost,
    cli: list[float],
) -> None:
    mode = out["mode"]
    c1 = median([c.seconds for c in cold1])
    w1 = median([c.seconds for c in warm1])
    fl = median(floor)
    w4 = median([c.seconds for c in warm4])
    mid_warm1 = sorted(warm1, key=lambda c: c.seconds)[len(warm1) // 2]
    mid_warm4 = sorted(warm4, key=lambda c: c.seconds)[len(warm4) // 2]
    lines = [
        f"Deploy of the seed example, mode {mode} (load average "
        f"{os.getloadavg()[0]:.1f} at the end)",
        f"  cold, 1 fresh host                  {show([c.seconds for c in cold1])}",
        f"  warm, 1 host, new version           {show([c.seconds for c in warm1])}",
        f"  floor: ssh + docker run + imports   {show(floor)}",
        f"  cold, 3 fresh hosts                 {cold3.seconds:7.2f} s = {cold3.seconds / c1:.2f}x "
        "one host",
        f"  warm, 4 hosts                       {w4:7.2f} s = {w4 / w1:.2f}x one host",
        "  per deploy: client bytes (bridge) | layer bytes by sender | all-host CPU s (per host)",
    ]
    for label, cost in (
        ("cold 1", cold1[0]),
        ("cold 2", cold2),
        ("cold 4", cold4),
        ("warm 1", mid_warm1),
        ("warm 2", warm2),
        ("warm 4", mid_warm4),
    ):
        layers = ", ".join(f"{s} {n / MIB:.1f}" for s, n in sorted(cost.layer_bytes.items()))
        hosts = len(cost.cpu)
        lines.append(
            f"    {label} host(s): {cost.client_bytes / MIB:8.2f} MiB | {layers or '-'} MiB | "
            f"{cost.host_cpu:6.1f} s ({cost.host_cpu / hosts:.1f} per host)"
        )
    ratio = {
        "cold client bytes 4/1": cold4.client_bytes / cold1[0].client_bytes,
        "cold all-host CPU 4/1": cold4.host_cpu / max(cold1[0].host_cpu, 1e-9),
        "cold CPU per host 4/1": cold4.host_cpu / 4 / max(cold1[0].host_cpu, 1e-9),
        "warm client bytes 4/1": mid_warm4.client_bytes / mid_warm1.client_bytes,
        "warm all-host CPU 4/1": mid_warm4.host_cpu / max(mid_warm1.host_cpu, 1e-9),
        "warm CPU per host 4/1": mid_warm4.host_cpu / 4 / max(mid_warm1.host_cpu, 1e-9),
    }
    lines.append("    " + "; ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))
    if cli:
        lines.append(f"  CLI `clipper-deploy deploy` warm     {show(cli)}")
    lines.append("  goals:")
    for label, ok in (
        (f"cold <= 15 s: {c1:.1f} s", c1 <= 15),
        (f"warm <= floor + 1 s: {w1:.2f} <= {fl + 1:.2f} s", w1 <= fl + 1),
        (f"3 hosts cold <= 1.3x: {cold3.seconds / c1:.2f}x", cold3.seconds / c1 <= 1.3),
        (f"4 hosts warm <= 1.3x: {w4 / w1:.2f}x", w4 / w1 <= 1.3),
        (
            f"client bytes cold 4/1 <= 1.1x: {ratio['cold client bytes 4/1']:.2f}x",
            ratio["cold client bytes 4/1"] <= 1.1,
        ),
        (
            f"client bytes warm 4/1 <= 1.1x: {ratio['warm client bytes 4/1']:.2f}x",
            ratio["warm client bytes 4/1"] <= 1.1,
        ),
        (
            f"all-host CPU cold 4/1 <= 1.1x: {ratio['cold all-host CPU 4/1']:.2f}x",
            ratio["cold all-host CPU 4/1"] <= 1.1,
        ),
    ):
        lines.append(f"    [{'met' if ok else 'MISSED'}] {label}")
    out["table"] = lines
    out["ratios"] = ratio
    print("\n".join(lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modes", default="auto,full")
    args = parser.parse_args()
    results = []
    for mode in args.modes.split(","):
        results.append(run_mode(mode.strip(), args.runs))
    print()
    simulated = report(50, 2, cached_base_size(), 89 * MIB)
    print("\n".join(simulated))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deploy.json").write_text(
        json.dumps({"modes": results, "simulated": simulated, "client": CLIENT}, indent=2)
    )


if __name__ == "__main__":
    main()

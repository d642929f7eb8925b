"""A simulated fleet: the deploy plan for N fresh hosts, and the bytes each sender sends.

No hosts are needed: the pure plan (:func:`~clipper_deploy.orchestration.plans.plan_deploy`)
of fresh facts, and the sizes of the cached base image tarball and of the example's
site-packages layer (or the sizes given). Each ``ship-base`` or ``upload`` step is sent by the
client or, relayed, by the host the plan names.

    .venv/bin/python bench/fleet_plan.py [--hosts 50] [--width 2]

Beside it, a registry on the ``[clipper]`` host for comparison: the client pushes once, and
the registry host sends one copy to every host that pulls.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

from clipper_deploy.orchestration.facts import Facts, HostFacts
from clipper_deploy.orchestration.plans import DeployRequest, plan_deploy
from clipper_deploy.orchestration.plans.deploy import Transfer
from clipper_deploy.settings import RELAY_WIDTH

MIB = 2**20
BASE_BYTES = 168 * MIB
"""The base image tarball (bookworm minbase + python3), when no cached one is found."""
LAYER_BYTES = 89 * MIB
"""The example's bundle in auto mode (its site-packages layer and the runtime), measured."""
SMALL_BYTES = 40 << 10
"""What a new function version adds (func.pkl, model.json, the Dockerfile), about."""


def cached_base_size() -> int:
    """The size of the newest cached base image tarball, else :data:`BASE_BYTES`."""
    found = sorted(
        (Path.home() / ".cache/clipper-deploy/base-images").glob("*.tar"),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1].stat().st_size if found else BASE_BYTES


def simulate(hosts: int, width: int, base: int, layer: int) -> tuple[Counter[str], int]:
    """Bytes per sender (``client`` or a host name) for a cold deploy of one replica per host
    on ``hosts`` fresh hosts, and the number of relay rounds."""
    names = tuple(f"h{i}" for i in range(1, hosts + 1))
    request = DeployRequest(
        model="m",
        version="1",
        bundle="b" * 64,
        hosts=names,
        replicas=hosts,
        base_image="clipper-deploy/base:sim",
        blobs={"L" * 64: layer},
        base_size=base,
        relay_width=width,
    )
    facts = Facts({n: HostFacts(n) for n in names})
    plan = plan_deploy(request, facts)
    sent: Counter[str] = Counter()
    senders: dict[str, str] = {}
    for step in plan.of_kind("ship-base", "upload"):
        assert isinstance(step.payload, Transfer)
        sender = step.payload.source or "client"
        size = base if step.kind == "ship-base" else layer + SMALL_BYTES
        sent[sender] += size
        senders[step.host] = sender
    return sent, relay_depth(senders)


def relay_depth(senders: dict[str, str]) -> int:
    """Hops from the client to the farthest host."""

    def depth(host: str) -> int:
        sender = senders.get(host, "client")
        return 1 if sender == "client" else 1 + depth(sender)

    return max((depth(h) for h in senders), default=0)


def report(hosts: int, width: int, base: int, layer: int) -> list[str]:
    """The simulation's lines: client bytes, per-host bytes, and the registry comparison."""
    sent, depth = simulate(hosts, width, base, layer)
    direct, _ = simulate(hosts, 0, base, layer)
    per_host = sorted(((n, h) for h, n in sent.items() if h != "client"), reverse=True)
    copy = base + layer + SMALL_BYTES
    lines = [
        f"Simulated cold deploy to {hosts} fresh hosts (pure plan; base image "
        f"{base / MIB:.0f} MiB, bundle {layer / MIB:.0f} MiB)",
        f"  relays, width {width}: client sends {sent['client'] / MIB:8.0f} MiB "
        f"({sent['client'] / copy:.2f} copies), {depth} hop(s) to the farthest host",
        f"  without relays:       client sends {direct['client'] / MIB:8.0f} MiB "
        f"({direct['client'] / copy:.0f} copies)",
        f"  hosts that pass layers on: {len(per_host)} of {hosts}; most by one host "
        f"{per_host[0][0] / MIB if per_host else 0:.0f} MiB "
        f"({per_host[0][0] / copy if per_host else 0:.1f} copies); "
        f"hosts that send nothing: {hosts - len(per_host)}",
        "  bytes sent per host (MiB): "
        + ", ".join(f"{h}={n / MIB:.0f}" for n, h in sorted(per_host, key=lambda x: int(x[1][1:]))),
        f"  a registry on the [clipper] host instead: client {copy / MIB:.0f} MiB once, the "
        f"registry host sends {hosts * copy / MIB:.0f} MiB ({hosts} copies)",
    ]
    lines += registry_model(width)
    return lines


def registry_model(width: int) -> list[str]:
    """When a registry pays: time to reach N hosts in units of one copy over one host's link.

    Relays: the client's copy, then each round a holder sends ``width`` copies at once over
    its own link (``width`` units a round). A registry whose uplink is ``k`` host links sends
    N copies in N/k units (plus the push). Relays need hosts that reach each other.
    """
    lines = ["  time to reach N hosts, in copies over one host link (relay vs registry):"]
    for n in (2, 4, 8, 16, 50, 200):
        rounds = math.ceil(math.log(n, width + 1)) if n > 1 else 0
        relay_time = 1 + rounds * width
        registry = {k: 1 + n / k for k in (1, 10)}
        lines.append(
            f"    N={n:<4} relay {relay_time:5.1f}   registry (1x link) {registry[1]:6.1f}   "
            f"registry (10x link) {registry[10]:5.1f}"
        )
    lines.append(
        "    with links alike relays are faster from 5 hosts on and no machine sends more "
        "than a few copies; a registry pays where its uplink is several times a host's (at "
        "10x it is faster at every N here) or where hosts cannot reach each other over SSH"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--width", type=int, default=RELAY_WIDTH)
    parser.add_argument("--layer-mib", type=float, default=LAYER_BYTES / MIB)
    args = parser.parse_args()
    for line in report(args.hosts, args.width, cached_base_size(), int(args.layer_mib * MIB)):
        print(line)


if __name__ == "__main__":
    main()

"""Where replicas go: spread over the target hosts, round robin. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def place_replicas(hosts: Sequence[T], replicas: int) -> dict[T, list[int]]:
    """Assign replica indexes ``0..replicas-1`` to ``hosts`` in turn.

    ``place_replicas([h1, h2], 3) == {h1: [0, 2], h2: [1]}``; hosts without a replica are
    left out. At least one host and one replica are needed.
    """
    if replicas < 1:
        raise ValueError(f"num_containers must be at least 1, not {replicas}")
    if not hosts:
        raise ValueError("no target hosts: check the playbook's hosts pattern and the inventory")
    placement: dict[T, list[int]] = {}
    for index in range(replicas):
        placement.setdefault(hosts[index % len(hosts)], []).append(index)
    return placement

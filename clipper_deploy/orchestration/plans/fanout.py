"""Fan-out: which host passes a layer to which, so the client sends each layer once.

Pure. Hosts that hold a layer already (by their facts) are its first holders; with none, the
client sends it to the first receiver. Then, round by round, every holder passes it to at
most ``width`` receivers, and those become holders for the next round: with ``width`` 2 one
holder reaches 3 hosts after one round, 9 after two, 27 after three, so 50 fresh hosts are
served in four rounds after the client's one copy, and no host sends more than ``width``
copies a round (holders that sent least go first, so the copies spread). ``width`` 0 turns
relays off: the client sends to every receiver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """Where a receiver gets a layer: ``host`` (None: the client) in round ``round`` (0: the
    client's own copy, or a holder known from the facts before anything moved)."""

    host: str | None
    round: int


def fan_out(receivers: Sequence[str], holders: Sequence[str], width: int) -> dict[str, Source]:
    """Each receiver's source, in ``receivers`` order; see the module docstring."""
    if width < 1:
        return {r: Source(None, 0) for r in receivers}
    pending = [r for r in receivers if r not in holders]
    sources: dict[str, Source] = {}
    have = list(dict.fromkeys(holders))
    if not have and pending:
        first = pending.pop(0)
        sources[first] = Source(None, 0)
        have = [first]
    sent = dict.fromkeys(have, 0)
    round_ = 0
    while pending:
        round_ += 1
        fresh: list[str] = []
        for holder in sorted(have, key=lambda h: sent[h]):  # who sent least goes first
            for _ in range(width):
                if not pending:
                    break
                receiver = pending.pop(0)
                sources[receiver] = Source(holder, round_)
                sent[holder] += 1
                fresh.append(receiver)
        have += fresh
        sent.update(dict.fromkeys(fresh, 0))
    return {r: sources[r] for r in receivers if r in sources}

"""How many queries to send a replica at once: Clipper's AIMD controller.

Each replica has one :class:`AIMDController`. After every batch the frontend reports the batch's
size and round-trip latency: while latency stays under the target and the batch used the whole
budget, the budget grows by ``increase`` (additive increase); a batch over the target shrinks it
by ``decrease`` (multiplicative decrease). The target is a fraction of the app's latency SLO: a
query can wait for the batch in flight and then ride in the next, so one batch must take well
under half the SLO.

Why AIMD and not a cost model (BentoML's): the replica processes one batch at a time and the
frontend sends the next batch as soon as the previous returns, so batch size follows the arrival
rate by itself; the controller only has to cap it where latency would break the SLO, which AIMD
finds without profiling the function first. The benchmark (``bench/bench_serving.py``) reports
the batch sizes it settles on.
"""

from __future__ import annotations

DEFAULT_MAX_BATCH = 1024
SLO_FRACTION = 0.4


class AIMDController:
    """Additive-increase / multiplicative-decrease batch-size budget for one replica."""

    __slots__ = ("batch_size", "decrease", "increase", "max_batch", "target_s")

    def __init__(
        self,
        target_s: float,
        initial: int = 8,
        increase: int = 4,
        decrease: float = 0.8,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.target_s = target_s
        self.batch_size = max(1, min(initial, max_batch))
        self.increase = increase
        self.decrease = decrease
        self.max_batch = max_batch

    @classmethod
    def for_slo(cls, slo_s: float, **kwargs: int | float) -> AIMDController:
        """A controller whose latency target is :data:`SLO_FRACTION` of ``slo_s``."""
        return cls(target_s=slo_s * SLO_FRACTION, **kwargs)  # type: ignore[arg-type]

    def observe(self, size: int, latency_s: float) -> None:
        """Update the budget after a batch of ``size`` queries took ``latency_s``."""
        if latency_s > self.target_s:
            self.batch_size = max(1, min(size, int(self.batch_size * self.decrease)))
        elif size >= self.batch_size:
            self.batch_size = min(self.max_batch, self.batch_size + self.increase)

    def retarget(self, slo_s: float) -> None:
        """Follow a new SLO (the tightest of the apps that use this replica's model)."""
        self.target_s = slo_s * SLO_FRACTION

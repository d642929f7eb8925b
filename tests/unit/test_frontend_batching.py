"""The AIMD batch-size controller."""

from __future__ import annotations

from clipper_deploy.frontend.batching import SLO_FRACTION, AIMDController


class TestAIMD:
    def test_grows_additively_while_full_batches_stay_under_target(self):
        c = AIMDController(target_s=0.01, initial=8, increase=4)
        c.observe(8, 0.001)
        c.observe(12, 0.001)
        assert c.batch_size == 16

    def test_does_not_grow_on_partial_batches(self):
        c = AIMDController(target_s=0.01, initial=8)
        c.observe(3, 0.001)
        assert c.batch_size == 8

    def test_shrinks_multiplicatively_over_target(self):
        c = AIMDController(target_s=0.01, initial=100, decrease=0.8)
        c.observe(100, 0.02)
        assert c.batch_size == 80

    def test_shrinks_to_the_slow_batch_size_at_most(self):
        c = AIMDController(target_s=0.01, initial=100)
        c.observe(10, 0.05)
        assert c.batch_size == 10

    def test_never_below_one_nor_above_max(self):
        c = AIMDController(target_s=0.01, initial=1, max_batch=6, increase=4)
        c.observe(1, 1.0)
        assert c.batch_size == 1
        for size in (1, 5, 6, 6):
            c.observe(size, 0.0)
        assert c.batch_size == 6

    def test_target_follows_the_slo(self):
        c = AIMDController.for_slo(0.1)
        assert c.target_s == 0.1 * SLO_FRACTION
        c.retarget(0.02)
        assert c.target_s == 0.02 * SLO_FRACTION

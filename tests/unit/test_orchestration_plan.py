"""Rollout plans: Ansible's ``serial`` batches and ``max_fail_percentage``, as pure functions."""

from __future__ import annotations

import pytest

from clipper_deploy.hosts.inventory import Host
from clipper_deploy.orchestration.plan import (
    BatchSize,
    PlanError,
    RolloutPlan,
    batch_failed,
    parse_max_fail_percentage,
    parse_serial,
    serial_batches,
)

HOSTS = ["h1", "h2", "h3", "h4", "h5"]


def sizes(batches: list[list[str]]) -> list[int]:
    return [len(batch) for batch in batches]


class TestSerialBatches:
    def test_no_serial_puts_every_host_in_one_batch(self):
        assert serial_batches(HOSTS, None) == [HOSTS]

    def test_no_hosts_give_no_batches(self):
        assert serial_batches([], 2) == []
        assert serial_batches([], None) == []

    def test_a_number_makes_batches_of_that_size_and_a_smaller_last_one(self):
        assert serial_batches(HOSTS, 2) == [["h1", "h2"], ["h3", "h4"], ["h5"]]

    def test_a_number_may_be_written_as_a_string(self):
        assert serial_batches(HOSTS, "2") == serial_batches(HOSTS, 2)

    def test_hosts_keep_their_order(self):
        assert [h for batch in serial_batches(HOSTS, 3) for h in batch] == HOSTS

    def test_a_size_larger_than_the_hosts_takes_them_all(self):
        assert serial_batches(HOSTS, 50) == [HOSTS]

    def test_a_percentage_is_of_all_hosts_rounded_down(self):
        assert sizes(serial_batches(HOSTS, "40%")) == [2, 2, 1]

    def test_a_percentage_under_one_host_takes_one_host(self):
        assert sizes(serial_batches(HOSTS, "10%")) == [1, 1, 1, 1, 1]

    def test_a_percentage_is_exact_where_ansibles_float_loses_a_host(self):
        # Ansible: int(0.29 * 100) == 28.
        assert sizes(serial_batches(list(range(100)), "29%"))[0] == 29

    def test_a_decimal_percentage_is_accepted(self):
        assert sizes(serial_batches(list(range(8)), "12.5%")) == [1] * 8

    def test_100_percent_is_one_batch(self):
        assert serial_batches(HOSTS, "100%") == [HOSTS]

    def test_a_list_gives_the_first_batch_sizes_in_order(self):
        assert sizes(serial_batches(list(range(6)), [1, 2, 3])) == [1, 2, 3]

    def test_the_last_item_of_a_list_repeats_for_the_remaining_hosts(self):
        assert sizes(serial_batches(list(range(10)), [1, 2, 3])) == [1, 2, 3, 3, 1]

    def test_a_list_may_mix_numbers_and_percentages(self):
        # 50% of all 5 hosts is 2, repeated.
        assert sizes(serial_batches(HOSTS, [1, "50%"])) == [1, 2, 2]

    def test_a_list_longer_than_needed_stops_when_hosts_run_out(self):
        assert sizes(serial_batches(HOSTS, [3, 3, 3])) == [3, 2]

    def test_percentages_in_a_list_are_of_all_hosts_not_of_those_left(self):
        assert sizes(serial_batches(list(range(10)), [5, "20%"])) == [5, 2, 2, 1]

    def test_works_with_inventory_hosts(self):
        hosts = [Host(name=f"h{i}", address=f"10.0.0.{i}") for i in range(3)]
        assert serial_batches(hosts, 2) == [hosts[:2], hosts[2:]]


class TestParseSerial:
    def test_none_means_all_at_once(self):
        assert parse_serial(None) == ()

    def test_numbers_and_percentages(self):
        assert parse_serial([1, "3", "25%", " 50 % "]) == (
            BatchSize(1),
            BatchSize(3),
            BatchSize(25, percent=True),
            BatchSize(50, percent=True),
        )

    def test_sizes_print_as_written(self):
        assert [str(s) for s in parse_serial([2, "25%", "12.5%"])] == ["2", "25%", "12.5%"]

    @pytest.mark.parametrize(
        "bad",
        [
            0,
            -1,
            "0",
            "-1",
            "abc",
            "abc%",
            "%",
            "0%",
            "0.0%",
            "-5%",
            "101%",
            "1.5",
            "",
            1.5,
            2.0,
            True,
            [],
            [[1]],
            [1, 0],
            [1, None],
            {"serial": 1},
        ],
    )
    def test_values_that_are_no_batch_size_are_errors(self, bad):
        with pytest.raises(PlanError, match="serial"):
            parse_serial(bad)

    def test_the_error_names_the_value_and_what_is_accepted(self):
        with pytest.raises(PlanError) as caught:
            parse_serial("abc%")
        assert "'abc%'" in str(caught.value)
        assert '"25%"' in str(caught.value) and "whole number" in str(caught.value)

    def test_the_error_for_a_list_item_shows_the_list(self):
        with pytest.raises(PlanError, match=r"serial \[1, 0\]: item 0"):
            parse_serial([1, 0])


class TestBatchFailed:
    @pytest.mark.parametrize(
        ("failed", "size", "pct", "stops"),
        [
            (0, 4, None, False),
            (1, 4, None, True),
            (0, 4, 0, False),
            (1, 4, 0, True),
            (1, 4, 25, False),  # exactly 25% does not exceed 25%
            (2, 4, 25, True),
            (1, 10, 10, False),
            (2, 10, 10, True),
            (3, 10, 30, False),
            (1, 3, 33, True),  # 33.3% > 33%
            (1, 3, 34, False),
            (1, 1, 50, True),
            (3, 4, 100, False),
            (4, 4, 100, True),  # a batch where every host failed always stops
            (2, 2, 99, True),
            (1, 4, "25%", False),
            (2, 4, "25", True),
        ],
    )
    def test_stops_when_the_failed_share_of_the_batch_exceeds_the_maximum(
        self, failed, size, pct, stops
    ):
        assert batch_failed(failed, size, pct) is stops

    @pytest.mark.parametrize(("failed", "size", "pct"), [(29, 100, 29), (7, 10, 70), (1, 8, 12.5)])
    def test_the_boundary_is_exact(self, failed, size, pct):
        assert batch_failed(failed, size, pct) is False
        assert batch_failed(failed + 1, size, pct) is True

    @pytest.mark.parametrize(("failed", "size"), [(0, 0), (-1, 3), (4, 3)])
    def test_impossible_counts_are_errors(self, failed, size):
        with pytest.raises(ValueError):
            batch_failed(failed, size, 10)

    @pytest.mark.parametrize("bad", [-1, 100.5, "abc", "x%", True, [10]])
    def test_bad_percentages_are_errors(self, bad):
        with pytest.raises(PlanError, match="max_fail_percentage"):
            batch_failed(1, 4, bad)


class TestParseMaxFailPercentage:
    @pytest.mark.parametrize(
        ("value", "expected"), [(None, None), (20, 20.0), ("20", 20.0), ("12.5%", 12.5), (0, 0.0)]
    )
    def test_numbers_and_ansible_style_strings(self, value, expected):
        assert parse_max_fail_percentage(value) == expected


class TestRolloutPlan:
    def test_build_splits_hosts_and_keeps_the_settings(self):
        plan = RolloutPlan.build(HOSTS, serial=[1, "50%"], max_fail_percentage="20%")
        assert plan.batches == (("h1",), ("h2", "h3"), ("h4", "h5"))
        assert plan.serial == [1, "50%"]
        assert plan.max_fail_percentage == 20.0
        assert plan.hosts == tuple(HOSTS)

    def test_build_rejects_bad_settings(self):
        with pytest.raises(PlanError):
            RolloutPlan.build(HOSTS, serial="0%")
        with pytest.raises(PlanError):
            RolloutPlan.build(HOSTS, max_fail_percentage=150)

    def test_stops_after_uses_the_size_of_that_batch(self):
        plan = RolloutPlan.build(HOSTS, serial=[1, 4], max_fail_percentage=25)
        assert plan.stops_after(0, 1) is True  # 1 of 1: the whole batch
        assert plan.stops_after(1, 1) is False  # 1 of 4: 25%, not more
        assert plan.stops_after(1, 2) is True

    def test_describe_lists_each_batch_by_host_name(self):
        hosts = [Host(name=f"h{i}", address=f"10.0.0.{i}") for i in range(1, 6)]
        text = RolloutPlan.build(hosts, serial=[1, "50%"], max_fail_percentage=20).describe()
        assert text.splitlines() == [
            'Roll out to 5 hosts in 3 batches (serial [1, "50%"]).',
            "Stop after a batch where more than 20% of the hosts failed, or all of them "
            "(max_fail_percentage: 20).",
            "  batch 1/3: h1",
            "  batch 2/3: h2, h3",
            "  batch 3/3: h4, h5",
        ]

    def test_describe_without_serial_or_max_fail_percentage(self):
        text = RolloutPlan.build(["a", "b"]).describe()
        assert "in 1 batch (all at once)" in text
        assert "Stop at the first failed host (max_fail_percentage not set)." in text

    def test_describe_with_100_percent(self):
        text = RolloutPlan.build(["a"], max_fail_percentage=100).describe()
        assert "only after a batch where every host failed" in text

    def test_describe_with_no_hosts(self):
        assert RolloutPlan.build([], serial=2).describe() == "No hosts to roll out to."

"""The runtime's watchdog ends a process whose prediction is stuck (with a fake exit)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "container"))
import pytest
from clipper_runtime.config import ConfigError, RuntimeConfig
from clipper_runtime.watchdog import EXIT_STUCK, Watchdog

ENV = {"CLIPPER_MODEL_NAME": "m", "CLIPPER_MODEL_VERSION": "1"}


def test_a_stuck_batch_ends_the_process_with_a_log_line():
    lines: list[str] = []
    exited = threading.Event()
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    dog = Watchdog(0.2, lines.append, fake_exit).start()
    dog.begin(7)
    assert exited.wait(3)
    assert codes == [EXIT_STUCK]
    assert lines[0].startswith("Prediction stuck: a batch of 7 input(s) has run for")


def test_batches_that_finish_in_time_are_left_alone():
    codes: list[int] = []
    dog = Watchdog(0.3, lambda _: None, codes.append).start()
    for _ in range(5):
        dog.begin(1)
        time.sleep(0.1)
        dog.end()
    time.sleep(0.5)
    assert codes == []


def test_zero_turns_it_off():
    dog = Watchdog(0, lambda _: None).start()
    assert dog.thread is None


class TestConfig:
    def test_default_limit(self):
        assert RuntimeConfig.from_env(ENV).predict_timeout_s == 15.0

    def test_set_limit(self):
        env = {**ENV, "CLIPPER_PREDICT_TIMEOUT_S": "2.5"}
        assert RuntimeConfig.from_env(env).predict_timeout_s == 2.5

    @pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
    def test_bad_limit(self, value):
        with pytest.raises(ConfigError, match="CLIPPER_PREDICT_TIMEOUT_S"):
            RuntimeConfig.from_env({**ENV, "CLIPPER_PREDICT_TIMEOUT_S": value})

"""Baseline (b): the seed function served by BentoML 1.4 in its best configuration.

One worker, adaptive batching on (``batchable=True``); the batchable API takes batch-shaped input,
so a request is ``{"input": [[4 doubles]]}``. Run by ``bench_serving.py`` with
``bentoml serve bento_service:SeedService`` in the BentoML virtualenv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bentoml
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_model import build_centered_predict


@bentoml.service(workers=1, traffic={"timeout": 30})
class SeedService:
    def __init__(self) -> None:
        self.predict_fn = build_centered_predict()

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=128, max_latency_ms=1000)
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.predict_fn(input)

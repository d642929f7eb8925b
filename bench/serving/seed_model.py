"""The seed example, built the same way in every virtualenv the benchmark uses.

A LogisticRegression fitted on a synthetic data set of 4 doubles, wrapped in ``centered_predict``
(center the inputs, then predict), as in the seed. Depends on numpy and scikit-learn only, so the
BentoML virtualenv can import it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def build_centered_predict(seed: int = 0) -> Callable[[Any], Any]:
    """Fit the model and return the seed's ``centered_predict``."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(1000, 4))
    ys = (xs @ np.array([1.0, -2.0, 0.5, 0.0]) > 0).astype(int)

    def center(xs: Any) -> Any:
        means = np.mean(xs, axis=0)
        return xs - means

    model = LogisticRegression()
    model.fit(center(xs), ys)

    def centered_predict(inputs: Any) -> Any:
        return model.predict(center(inputs))

    return centered_predict

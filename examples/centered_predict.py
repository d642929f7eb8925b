"""The seed's example: ``centered_predict`` over a scikit-learn LogisticRegression.

``make()`` builds a small synthetic data set (200 rows of 4 doubles, fixed seed), fits the
model on centered data and returns the prediction function, exactly as the seed writes it::

    def center(xs):
        means = np.mean(xs, axis=0)
        return xs - means

    def centered_predict(inputs):
        centered_inputs = center(inputs)
        return model.predict(centered_inputs)

Run this file to bundle it: ``python examples/centered_predict.py [--mode auto]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import linear_model

ROWS = 200
FEATURES = 4
SEED = 0


def center(xs: Any) -> Any:
    """Subtract the column means of ``xs``."""
    means = np.mean(xs, axis=0)
    return xs - means


def make_data(seed: int = SEED, rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    """A linearly separable-ish binary problem: ``(xs, ys)``."""
    rng = np.random.default_rng(seed)
    xs = rng.normal(loc=2.0, scale=1.0, size=(rows, FEATURES))
    weights = np.array([1.5, -2.0, 0.5, 1.0])
    noise = rng.normal(scale=0.5, size=rows)
    ys = ((xs - xs.mean(axis=0)) @ weights + noise > 0).astype(int)
    return xs, ys


def make(seed: int = SEED) -> Callable[[Any], Any]:
    """Fit the model and return ``centered_predict`` (its closure holds the model)."""
    xs, ys = make_data(seed)
    centered_xs = center(xs)
    model = linear_model.LogisticRegression()
    model.fit(centered_xs, ys)

    def centered_predict(inputs: Any) -> Any:
        centered_inputs = center(inputs)
        return model.predict(centered_inputs)

    return centered_predict


train_and_build = make


def sample_inputs(count: int = 8, seed: int = SEED + 1) -> np.ndarray:
    """A batch of inputs shaped like the training data."""
    return make_data(seed, rows=count)[0]


def main() -> None:
    """Bundle the example and print where the bundle is."""
    from clipper_deploy.packaging import build_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("full", "auto"), default="full")
    parser.add_argument("--name", default="example-model")
    parser.add_argument("--version", default="1")
    args = parser.parse_args()
    bundle = build_bundle(
        make(),
        args.name,
        args.version,
        "doubles",
        ["example"],
        mode=args.mode,
        sample_input=sample_inputs(),
    )
    print(bundle.path)


if __name__ == "__main__":
    main()

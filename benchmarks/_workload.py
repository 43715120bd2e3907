"""The workloads that jaxal and DISTIL share, as NumPy arrays only.

Imported by both sides of the comparison: by ``compare_distil.py`` and ``efficiency.py``
(jaxal's virtual environment) and by ``_distil_worker.py`` and
``_distil_efficiency_worker.py`` (DISTIL's, with PyTorch). It needs NumPy alone, plus
scikit-learn for the digits; it never imports jax or torch. The two sides exchange these
arrays as ``.npz`` files.

The model both sides run: an MLP 64 -> 128 (ReLU) -> dropout -> 10. Weights are stored
as ``w1 [64, 128]``, ``b1 [128]``, ``w2 [128, 10]``, ``b2 [10]`` (inputs times weights, as
``x @ w1``; a torch ``Linear`` takes the transpose). The embedding of a point is the ReLU
layer before dropout, i.e. the input of the last layer (DISTIL's ``last=True`` output).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

FEATURES = 64
HIDDEN = 128
CLASSES = 10
DROPOUT = 0.5  # the comparison workload's dropout rate (on the 128 hidden units)
LABELED = 1000  # labeled points beside the pool in the comparison workload
QUERY = 100  # SMI / SCMI query set: labeled points of classes QUERY_CLASSES
PRIVATE = 100  # SCG / SCMI private set: labeled points of classes PRIVATE_CLASSES
QUERY_CLASSES = (0, 1)
PRIVATE_CLASSES = (9,)


# --- the comparison workload ------------------------------------------------------------


def blobs(rng: np.random.Generator, n: int, means: np.ndarray, classes=None):
    """n points of overlapping Gaussian blobs: x = means[y] + N(0, 2^2) per feature."""
    choices = np.arange(means.shape[0]) if classes is None else np.asarray(classes)
    y = rng.choice(choices, n).astype(np.int64)
    x = (means[y] + rng.normal(0.0, 2.0, (n, means.shape[1]))).astype(np.float32)
    return x, y


def compare_workload(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The seeded workload of ``compare_distil.py`` for a pool of ``n`` unlabeled points.

    A synthetic 10-class problem (Gaussian blobs in 64 dimensions, overlapping, as
    ``benchmarks/strategies.py``): ``x_pool [n, 64]`` (unlabeled; ``y_pool`` is kept only
    for reference), a labeled set ``x_labeled [1000, 64]``, ``y_labeled``, a labeled query
    set (classes 0 and 1) and private set (class 9) of 100 points each for SMI / SCG /
    SCMI, and the MLP's weights (:func:`seeded_weights`).
    """
    rng = np.random.default_rng([seed, n])
    means = rng.normal(0.0, 1.0, (CLASSES, FEATURES))
    x_pool, y_pool = blobs(rng, n, means)
    x_labeled, y_labeled = blobs(rng, LABELED, means)
    x_query, y_query = blobs(rng, QUERY, means, QUERY_CLASSES)
    x_private, y_private = blobs(rng, PRIVATE, means, PRIVATE_CLASSES)
    weights = seeded_weights(x_labeled, y_labeled, seed)
    return {
        "x_pool": x_pool,
        "y_pool": y_pool,
        "x_labeled": x_labeled,
        "y_labeled": y_labeled,
        "x_query": x_query,
        "y_query": y_query,
        "x_private": x_private,
        "y_private": y_private,
        **weights,
        "dropout": np.float32(DROPOUT),
    }


def seeded_weights(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """MLP weights with informative, varied, non-saturated predictions (as
    ``benchmarks/strategies.py``).

    The hidden layer is He-initialised at random; the head is ridge regression of the
    one-hot labels on the labeled points' hidden units (closed form), rescaled so the
    logits have a standard deviation of 3 on the labeled set: predictions range from
    confident to uncertain, so every score has something to rank, and no softmax entry
    underflows (DISTIL's entropy turns 0 log 0 into NaN).
    """
    rng = np.random.default_rng([seed, 1])
    w1 = rng.normal(0.0, np.sqrt(2.0 / FEATURES), (FEATURES, HIDDEN)).astype(np.float32)
    b1 = np.zeros(HIDDEN, np.float32)
    hidden = np.maximum(x @ w1 + b1, 0.0).astype(np.float64)
    design = np.concatenate([hidden, np.ones((hidden.shape[0], 1))], axis=1)
    targets = np.eye(CLASSES)[y] - 1.0 / CLASSES
    gram = design.T @ design + np.eye(design.shape[1])
    solution = np.linalg.solve(gram, design.T @ targets)
    solution *= 3.0 / max(float((design @ solution).std()), 1e-6)
    return {
        "w1": w1,
        "b1": b1,
        "w2": solution[:-1].astype(np.float32),
        "b2": solution[-1].astype(np.float32),
    }


# --- the labeling-efficiency workload -------------------------------------------------


def digits_split(test_fraction: float = 0.25, seed: int = 0) -> dict[str, np.ndarray]:
    """scikit-learn's 1,797 digits (8x8 = 64 features, 10 classes), one fixed split.

    A seeded stratified permutation puts ``test_fraction`` of each class in the test set;
    features are standardized with the training split's mean and standard deviation
    (constant pixels become 0).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float64)
    y = data.target.astype(np.int64)
    rng = np.random.default_rng([seed, 2])
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        test[members[: round(test_fraction * len(members))]] = True
    mean = x[~test].mean(0)
    std = x[~test].std(0)
    std = np.where(std > 0, std, 1.0)
    x = ((x - mean) / std).astype(np.float32)
    return {"x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test]}


def initial_labeled(n: int, count: int, seed: int) -> np.ndarray:
    """int64 [count]: the seed's initial labeled set, distinct indices into the train split."""
    return np.sort(np.random.default_rng([seed, 3]).choice(n, count, replace=False))


def init_weights(seed: int, round_: int, hidden: int = HIDDEN) -> dict[str, np.ndarray]:
    """Fresh MLP weights for (seed, round): torch's ``nn.Linear`` default distribution
    (uniform in +-1/sqrt(fan_in) for weights and biases), drawn by NumPy so that both
    libraries start every round from the same weights."""
    rng = np.random.default_rng([seed, 4, round_])

    def layer(fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
        b = rng.uniform(-bound, bound, fan_out).astype(np.float32)
        return w, b

    w1, b1 = layer(FEATURES, hidden)
    w2, b2 = layer(hidden, CLASSES)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


def training_schedule(
    labeled: np.ndarray, seed: int, round_: int, steps: int, batch_size: int, dropout: float
) -> dict[str, np.ndarray]:
    """The minibatches and dropout masks of one training run, drawn by NumPy.

    ``batches int64 [steps, batch_size]``: indices into ``labeled`` (sampled uniformly with
    replacement); ``keep bool [steps, batch_size, HIDDEN]``: the dropout keep mask of every
    step. Both libraries train on exactly these, so their models differ only by float
    rounding.
    """
    rng = np.random.default_rng([seed, 5, round_])
    batches = labeled[rng.integers(0, len(labeled), (steps, batch_size))]
    keep = rng.random((steps, batch_size, HIDDEN)) >= dropout
    return {"batches": batches.astype(np.int64), "keep": keep}


# --- files ------------------------------------------------------------------------------


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """Write ``arrays`` to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, loaded into memory."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}

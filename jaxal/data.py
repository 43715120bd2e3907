"""Datasets for experiments: scikit-learn's digits, TFDS datasets, NumPy ``.npz`` files.

Everything here is host-side NumPy, run once before an experiment. :func:`load` reads a
dataset by name, splits it (when it has no test split) and normalizes it, all
deterministically from ``seed``:

* ``"digits"``: scikit-learn's 8x8 digits (1,797 vectors [64], 10 classes; ships with
  scikit-learn, no download), split 75/25 by ``seed``.
* ``"tfds:NAME"``: a TensorFlow Datasets dataset that is already prepared in ``data_dir``
  (jaxal never downloads). array_record datasets are read with ``tfds.data_source`` (no
  TensorFlow needed); tfrecord datasets with ``tfds.load`` + ``tfds.as_numpy`` (needs
  TensorFlow). NAME may carry a config and version, as in ``"tfds:mnist:3.0.1"``.
* a path to an ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``.

Letters: N training (pool) points, M test points.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, NamedTuple

import numpy as np

DATASET_HELP = (
    "'digits', 'tfds:NAME' (a TFDS dataset prepared in --data-dir) or a path to an .npz "
    "file with x_train, y_train, x_test, y_test"
)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


class Dataset(NamedTuple):
    """A classification dataset, ready for training.

    Attributes:
        x_train: float32 [N, ...], normalized with the training split's statistics.
        y_train: int32 [N], labels in [0, num_classes).
        x_test: float32 [M, ...], normalized like ``x_train``.
        y_test: int32 [M].
        num_classes: C, one more than the largest label.
        name: the name it was loaded by.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str


class Raw(NamedTuple):
    """Arrays as a source gives them; ``x_test``/``y_test`` are None without a test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None


def load(
    name: str,
    *,
    seed: int = 0,
    data_dir: str | None = None,
    test_fraction: float = 0.25,
    max_train: int | None = None,
    max_test: int | None = None,
    normalization: str = "pixels",
) -> Dataset:
    """Load, split and normalize a dataset, deterministically from ``seed``.

    Args:
        name: ``"digits"``, ``"tfds:NAME"`` or a path to an ``.npz`` file (see the module
            docstring).
        seed: chooses the train/test split (for datasets without a test split) and the
            subsets kept by ``max_train`` / ``max_test``.
        data_dir: the TFDS data directory (default: TFDS's own default).
        test_fraction: the share held out as the test split when the source has none.
        max_train: keep at most this many training points (a random subset by ``seed``).
        max_test: keep at most this many test points (a random subset by ``seed``).
        normalization: ``"pixels"``, ``"features"`` or ``"none"`` (see :func:`normalize`).

    Returns:
        A :class:`Dataset`.

    Raises:
        ValueError: unknown dataset name, unreadable or malformed data, bad arguments.
    """
    raw = load_raw(name, data_dir=data_dir)
    return from_raw(
        raw,
        name,
        seed=seed,
        test_fraction=test_fraction,
        max_train=max_train,
        max_test=max_test,
        normalization=normalization,
    )


def from_raw(
    raw: Raw,
    name: str,
    *,
    seed: int = 0,
    test_fraction: float = 0.25,
    max_train: int | None = None,
    max_test: int | None = None,
    normalization: str = "pixels",
) -> Dataset:
    """Split (if ``raw`` has no test split), subsample and normalize checked arrays.

    The second half of :func:`load`, for loading once and preparing for several seeds.
    Arguments as in :func:`load`; ``raw`` comes from :func:`load_raw`.
    """
    rng = np.random.default_rng(seed)
    if raw.x_test is None or raw.y_test is None:
        x_train, y_train, x_test, y_test = split(raw.x_train, raw.y_train, test_fraction, rng)
    else:
        x_train, y_train, x_test, y_test = raw.x_train, raw.y_train, raw.x_test, raw.y_test
    x_train, y_train = subsample(x_train, y_train, max_train, rng, "max_train")
    x_test, y_test = subsample(x_test, y_test, max_test, rng, "max_test")
    x_train, x_test = normalize(x_train, x_test, normalization)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(x_train, y_train, x_test, y_test, num_classes, name)


def load_raw(name: str, *, data_dir: str | None = None) -> Raw:
    """The arrays of dataset ``name``, checked but not split or normalized.

    Raises:
        ValueError: unknown name, or data that cannot be read or has the wrong shape.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset must be {DATASET_HELP}; got {name!r}")
    if name == "digits":
        raw = load_digits()
    elif name.startswith("tfds:"):
        raw = load_tfds(name.removeprefix("tfds:"), data_dir=data_dir)
    elif name.endswith(".npz") or os.path.exists(name):
        raw = load_npz(name)
    else:
        raise ValueError(f"unknown dataset {name!r}: use {DATASET_HELP}")
    return check_raw(raw, name)


def load_digits() -> Raw:
    """scikit-learn's digits: x float32 [1797, 64] in [0, 16], y [1797]; no test split."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    return Raw(digits.data.astype(np.float32), digits.target, None, None)


def load_npz(path: str) -> Raw:
    """An ``.npz`` file holding ``x_train``, ``y_train``, ``x_test``, ``y_test``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {k: archive[k] for k in NPZ_KEYS if k in archive.files}
    except FileNotFoundError:
        raise ValueError(f"dataset file {path} does not exist") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"dataset file {path} is not a readable .npz file ({error})") from None
    missing = [k for k in NPZ_KEYS if k not in contents]
    if missing:
        raise ValueError(
            f"dataset file {path} lacks {', '.join(missing)}: an .npz dataset holds "
            f"{', '.join(NPZ_KEYS)}"
        )
    return Raw(*(contents[k] for k in NPZ_KEYS))


def load_tfds(name: str, *, data_dir: str | None = None) -> Raw:
    """A TFDS dataset that is already prepared in ``data_dir``; never downloads.

    Reads the ``train`` split and, if there is one, the ``test`` split, with the
    dataset's supervised keys (default ``image`` and ``label``). array_record datasets go
    through ``tfds.data_source`` (random access, no TensorFlow); if that fails (a tfrecord
    dataset), ``tfds.load(..., batch_size=-1)`` + ``tfds.as_numpy`` (needs TensorFlow).

    Raises:
        ValueError: tensorflow-datasets missing, dataset unknown or not prepared, or
            neither reader works (the message says why each failed).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ValueError(
            "dataset 'tfds:...' needs tensorflow-datasets: pip install 'jaxal[tfds]'"
        ) from None
    where = data_dir or "TFDS's default data directory"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises several types; its message lists every dataset
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"TFDS dataset {name!r} not found in {where} ({first_line})") from None
    if not builder.is_prepared():
        raise ValueError(
            f"TFDS dataset {name!r} is not prepared in {where}; jaxal never downloads: "
            f"prepare it first (e.g. `tfds build {name} --data_dir DIR`) and pass --data-dir"
        )
    splits = [s for s in ("train", "test") if s in builder.info.splits]
    if "train" not in splits:
        raise ValueError(
            f"TFDS dataset {name!r} has no 'train' split (it has {list(builder.info.splits)})"
        )
    x_key, y_key = builder.info.supervised_keys or ("image", "label")
    try:
        arrays = _tfds_by_data_source(tfds, name, data_dir, splits, x_key, y_key)
    except Exception as source_error:
        try:
            arrays = _tfds_by_load(tfds, name, data_dir, splits, x_key, y_key)
        except ImportError:
            raise ValueError(
                f"cannot read TFDS dataset {name!r} ({builder.info.file_format}): "
                f"tfds.data_source failed ({_first_line(source_error)}) and tfds.load needs "
                "TensorFlow, which is not installed: pip install 'jaxal[tfrecord]' or "
                "prepare the dataset with file_format='array_record'"
            ) from None
        except Exception as load_error:
            raise ValueError(
                f"cannot read TFDS dataset {name!r}: tfds.data_source failed "
                f"({_first_line(source_error)}); tfds.load failed ({_first_line(load_error)})"
            ) from None
    train = arrays["train"]
    test = arrays.get("test", (None, None))
    return Raw(train[0], train[1], test[0], test[1])


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _tfds_by_data_source(tfds, name, data_dir, splits, x_key, y_key):
    """array_record: random access through ``tfds.data_source``, 1,024 records at a time."""
    arrays = {}
    for split_name in splits:
        source = tfds.data_source(name, split=split_name, data_dir=data_dir, download=False)
        xs, ys = [], []
        for start in range(0, len(source), 1024):
            records = source.__getitems__(list(range(start, min(start + 1024, len(source)))))
            xs.extend(np.asarray(r[x_key]) for r in records)
            ys.extend(r[y_key] for r in records)
        arrays[split_name] = (np.stack(xs), np.asarray(ys))
    return arrays


def _tfds_by_load(tfds, name, data_dir, splits, x_key, y_key):
    """tfrecord: the whole split as one batch through ``tfds.load`` (needs TensorFlow)."""
    arrays = {}
    for split_name in splits:
        batch = tfds.as_numpy(
            tfds.load(name, split=split_name, data_dir=data_dir, download=False, batch_size=-1)
        )
        arrays[split_name] = (np.asarray(batch[x_key]), np.asarray(batch[y_key]))
    return arrays


def check_raw(raw: Raw, name: str) -> Raw:
    """Check shapes, label types and values; return labels as int32.

    Raises:
        ValueError: a split that is empty, of mismatched lengths, non-numeric or
            non-finite inputs, non-integer or negative labels, or train and test inputs of
            different shapes.
    """
    parts: list[Any] = []
    for split_name, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if x is None or y is None:
            parts.extend([None, None])
            continue
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(
                f"dataset {name!r}: x_{split_name} must have shape [N, ...] with N >= 1, "
                f"got {x.shape}"
            )
        if y.shape != (len(x),):
            raise ValueError(
                f"dataset {name!r}: y_{split_name} must have shape ({len(x)},) like "
                f"x_{split_name}, got {y.shape}"
            )
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise ValueError(f"dataset {name!r}: x_{split_name} must be numeric, got {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"dataset {name!r}: x_{split_name} holds NaN or infinity")
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise ValueError(
                f"dataset {name!r}: y_{split_name} must hold integer class labels >= 0"
            )
        parts.extend([x, y.astype(np.int32)])
    if parts[2] is not None and parts[0].shape[1:] != parts[2].shape[1:]:
        raise ValueError(
            f"dataset {name!r}: train inputs {parts[0].shape[1:]} and test inputs "
            f"{parts[2].shape[1:]} differ in shape"
        )
    return Raw(*parts)


def split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random train/test split: (x_train [N], y_train, x_test [M], y_test).

    M = round(test_fraction * (N + M)), at least 1 and at most N + M - 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if len(x) < 2:
        raise ValueError(f"a dataset without a test split needs >= 2 points, got {len(x)}")
    n_test = min(max(round(test_fraction * len(x)), 1), len(x) - 1)
    order = rng.permutation(len(x))
    train, test = order[n_test:], order[:n_test]
    return x[train], y[train], x[test], y[test]


def subsample(
    x: np.ndarray, y: np.ndarray, limit: int | None, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` points, a random subset in original order (all when None)."""
    if limit is None or limit >= len(x):
        return x, y
    if limit < 1:
        raise ValueError(f"{what} must be >= 1, got {limit}")
    keep = np.sort(rng.choice(len(x), limit, replace=False))
    return x[keep], y[keep]


NORMALIZATIONS = ("pixels", "features", "none")


def normalize(
    x_train: np.ndarray, x_test: np.ndarray, how: str = "pixels"
) -> tuple[np.ndarray, np.ndarray]:
    """Standardize with the training split's mean and standard deviation, as float32.

    ``how``:

    * ``"pixels"`` (default): images [N, H, W, C] get one mean and std per channel (the
      last axis), vectors [N, D] and [N, H, W] one over all their entries (as pixels).
    * ``"features"``: one mean and std per input position (tabular data); a constant
      feature keeps std 1.
    * ``"none"``: only the cast to float32.

    The test split uses the training statistics.

    Returns:
        (x_train, x_test), float32, of the input shapes.
    """
    if how not in NORMALIZATIONS:
        raise ValueError(
            f"normalize must be one of {', '.join(map(repr, NORMALIZATIONS))}; got {how!r}"
        )
    x_train = np.asarray(x_train)
    if how == "none":
        return x_train.astype(np.float32), np.asarray(x_test, np.float32)
    if how == "features":
        axes: tuple[int, ...] = (0,)
    elif x_train.ndim >= 4:
        axes = tuple(range(x_train.ndim - 1))
    else:
        axes = tuple(range(x_train.ndim))
    mean = x_train.mean(axis=axes, dtype=np.float64)
    std = np.sqrt(np.mean(np.square(x_train - mean), axis=axes, dtype=np.float64))
    std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)

    def apply(x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) - mean32) / std32

    return apply(x_train), apply(x_test)


def initial_indices(n: int, count: int, seed: int) -> np.ndarray:
    """The initial labeled set: ``count`` distinct indices in [0, n), int32, by ``seed``.

    Raises:
        ValueError: ``count`` outside [0, n].
    """
    if not 0 <= count <= n:
        raise ValueError(f"initial={count} must lie in [0, {n}] (the pool has {n} points)")
    picked = np.random.default_rng([seed, 1]).choice(n, count, replace=False)
    return np.sort(picked).astype(np.int32)

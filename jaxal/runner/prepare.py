"""The data of a run: the source read once (``--dataset``), the normalization chosen from it
when ``--normalization auto``, and each seed's split, subset and normalized arrays together
with the row of the source that every pool and test point came from.

The arrays equal :func:`jaxal.data.from_raw`'s for the same arguments: the same seeded
generator draws the same split and subsets, here applied to row numbers first.

Besides what :func:`jaxal.data.load_raw` reads, an ``.npz`` may hold only ``x_train`` and
``y_train``, or ``x`` and ``y``: then ``--test-fraction`` of it is held out as the test split,
by seed, as for digits.
"""

from __future__ import annotations

import os
import zipfile
from typing import NamedTuple

import numpy as np

from jaxal.data import (
    NORMALIZATIONS,
    Dataset,
    Raw,
    check_raw,
    load_raw,
    normalize,
    split,
    subsample,
)

AUTO = "auto"
NPZ_LAYOUTS = (
    ("x_train", "y_train", "x_test", "y_test"),
    ("x_train", "y_train"),
    ("x", "y"),
)


class Source(NamedTuple):
    """A dataset as read, checked but not split.

    Attributes:
        raw: the arrays (``x_test``/``y_test`` None without a test split).
        rows_of: what a pool point's row number indexes, for ``results.json``: ``"x_train"``
            or ``"x"`` of an ``.npz``, ``"sklearn.datasets.load_digits().data"``, ...
    """

    raw: Raw
    rows_of: str


class Prepared(NamedTuple):
    """One seed's dataset and where its points came from.

    Attributes:
        dataset: as :func:`jaxal.data.from_raw` builds it; N pool points, M test points.
        train_rows: int64 [N], the source row of each pool point (a row of the source's
            train inputs, before any split or subset).
        test_rows: int64 [M], the source row of each test point: a row of the test inputs
            when the source has a test split, else a row of the train inputs.
    """

    dataset: Dataset
    train_rows: np.ndarray
    test_rows: np.ndarray


def read_source(name: str, data_dir: str | None = None) -> Source:
    """Read dataset ``name`` (as :func:`jaxal.data.load_raw`, plus ``.npz`` files without a
    test split).

    Raises:
        ValueError: unknown name, unreadable file, a layout that is none of
            :data:`NPZ_LAYOUTS`, or arrays of the wrong shape or type.
    """
    if name.endswith(".npz") or (
        name != "digits" and not name.startswith("tfds:") and os.path.exists(name)
    ):
        raw, rows_of = read_npz(name)
        return Source(check_raw(raw, name), f"{rows_of} of {name}")
    if name == "digits":
        rows_of = "sklearn.datasets.load_digits().data"
    else:
        rows_of = f"the train split of {name}"
    return Source(load_raw(name, data_dir=data_dir), rows_of)


def read_npz(path: str) -> tuple[Raw, str]:
    """The arrays of an ``.npz`` with one of :data:`NPZ_LAYOUTS` and the name of its train
    inputs (``"x_train"`` or ``"x"``).

    Raises:
        ValueError: missing or unreadable file, half a test split (``x_test`` without
            ``y_test`` or the reverse), or none of the layouts (the message names the keys
            found and the layouts accepted).
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            wanted = {key for layout in NPZ_LAYOUTS for key in layout} & keys
            contents = {key: archive[key] for key in wanted}
    except FileNotFoundError:
        raise ValueError(f"--dataset {path}: the file does not exist") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"--dataset {path}: not a readable .npz file ({error})") from None
    half = [key for key in ("x_test", "y_test") if key in keys]
    if len(half) == 1:
        other = "y_test" if half[0] == "x_test" else "x_test"
        raise ValueError(
            f"--dataset {path} holds {half[0]} without {other}: add {other}, or drop "
            f"{half[0]} to hold out --test-fraction of x_train instead"
        )
    for layout in NPZ_LAYOUTS:
        if set(layout) <= keys:
            arrays = [contents[key] for key in layout] + [None] * (4 - len(layout))
            return Raw(*arrays), layout[0]
    accepted = "; ".join(" + ".join(layout) for layout in NPZ_LAYOUTS)
    raise ValueError(
        f"--dataset {path} holds {', '.join(sorted(keys)) or 'no arrays'}; an .npz dataset "
        f"holds {accepted} (without a test split, --test-fraction of it is held out)"
    )


def choose_normalization(raw: Raw) -> tuple[str, str]:
    """The normalization ``--normalization auto`` picks for ``raw``, and why.

    * ``"pixels"`` (one mean and std over all entries, or per channel) for image-like
      inputs: rank >= 2 per example (x [N, H, W] or [N, H, W, C], the inputs ``--model
      auto`` gives a CNN), or whole numbers in [0, 255] (pixel intensities, such as uint8
      images or digits' 0..16).
    * ``"features"`` (one mean and std per input position) for other feature vectors
      [N, D]: tabular data whose columns have their own units and ranges.

    Returns:
        (normalization, reason): the reason is a short phrase for the user.
    """
    x = np.asarray(raw.x_train)
    if x.ndim >= 3:
        return "pixels", f"image-like inputs of shape {tuple(x.shape[1:])}"
    low, high = x.min(), x.max()
    whole = np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_ or np.all(x == np.round(x))
    if whole and low >= 0 and high <= 255:
        return "pixels", f"whole numbers in [{low:g}, {high:g}], as pixel intensities"
    return "features", f"feature vectors of {x.shape[1]} values"


def resolve_normalization(requested: str, raw: Raw) -> tuple[str, str]:
    """``requested`` when it is one of :data:`jaxal.data.NORMALIZATIONS` (given by the
    user), else (``"auto"``) :func:`choose_normalization`'s pick: (normalization, reason)."""
    if requested in NORMALIZATIONS:
        return requested, "as given"
    normalization, reason = choose_normalization(raw)
    return normalization, f"chosen from the data: {reason}"


def prepare(
    raw: Raw,
    name: str,
    *,
    seed: int,
    test_fraction: float,
    max_train: int | None,
    max_test: int | None,
    normalization: str,
) -> Prepared:
    """Split (if ``raw`` has no test split), subsample and normalize, as
    :func:`jaxal.data.from_raw`, keeping each point's source row.

    Arguments as in :func:`jaxal.data.from_raw`; ``normalization`` is one of
    :data:`jaxal.data.NORMALIZATIONS`.
    """
    rng = np.random.default_rng(seed)
    n = len(raw.x_train)
    if raw.x_test is None or raw.y_test is None:
        rows = np.arange(n)
        train_rows, y_train, test_rows, y_test = split(rows, raw.y_train, test_fraction, rng)
        x_test_source = raw.x_train
    else:
        train_rows, y_train = np.arange(n), raw.y_train
        test_rows, y_test = np.arange(len(raw.x_test)), raw.y_test
        x_test_source = raw.x_test
    train_rows, y_train = subsample(train_rows, y_train, max_train, rng, "max_train")
    test_rows, y_test = subsample(test_rows, y_test, max_test, rng, "max_test")
    x_train, x_test = normalize(raw.x_train[train_rows], x_test_source[test_rows], normalization)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    dataset = Dataset(x_train, y_train, x_test, y_test, num_classes, name)
    return Prepared(dataset, train_rows.astype(np.int64), test_rows.astype(np.int64))


def set_names(inputs: tuple[str, ...]) -> list[str]:
    """The sets a strategy's keyword inputs make up: ``("query_x", "query_y")`` ->
    ``["query"]`` (each set an ``x`` and a ``y`` array), in order."""
    names: list[str] = []
    for name in inputs:
        base = name.rsplit("_", 1)[0]
        if base not in names:
            names.append(base)
    return names


def read_set(path: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The inputs and labels of an ``.npz`` holding ``x`` and ``y`` (or ``x_train`` and
    ``y_train``): x [K, ...], y int32 [K]. ``what`` names it in messages
    (``"--inputs smi.query"``).

    Raises:
        ValueError: unreadable file, another layout, or bad arrays.
    """
    try:
        raw, _ = read_npz(path)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
    if raw.x_test is not None:
        raise ValueError(f"{what}: {path} must hold one set, x and y (it has a test split)")
    checked = check_raw(raw, path)
    return checked.x_train, checked.y_train


def normalize_like(train_x: np.ndarray, x: np.ndarray, normalization: str) -> np.ndarray:
    """``x`` normalized with the statistics of ``train_x`` (a seed's pool inputs before
    normalization), as that seed's test split is."""
    return normalize(train_x, x, normalization)[1]

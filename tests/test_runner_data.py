"""The data of ``jaxal run``: ``.npz`` files with or without a test split, the normalization
chosen from the data (``--normalization auto``), and the source rows of every point."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_wine

from jaxal import cli, data
from jaxal.runner import prepare

TINY = ["--seeds", "1", "--rounds", "2", "--budget", "10", "--initial", "20", "--steps", "100"]


def run(capsys, *args):
    """``jaxal`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read(directory, name="results.json"):
    with open(os.path.join(directory, name)) as file:
        return json.load(file)


@pytest.fixture
def wine(tmp_path):
    """scikit-learn's wine (178 x 13 features in very different units), as x_train and
    y_train only: no test split."""
    x, y = load_wine(return_X_y=True)
    path = tmp_path / "wine.npz"
    np.savez(path, x_train=x, y_train=y)
    return str(path), x, y


def test_normalization_is_chosen_from_the_data():
    wine_x, _ = load_wine(return_X_y=True)
    digits = load_digits()
    rng = np.random.default_rng(0)
    cases = {
        "wine": (wine_x, "features"),
        "digits as float32 0..16": (digits.data.astype(np.float32), "pixels"),
        "uint8 vectors": (rng.integers(0, 256, (10, 64)).astype(np.uint8), "pixels"),
        "float images [N, H, W]": (rng.normal(size=(10, 8, 8)), "pixels"),
        "float images [N, H, W, C]": (rng.normal(size=(10, 8, 8, 3)), "pixels"),
        "whole numbers above 255": (rng.integers(0, 2000, (10, 5)), "features"),
        "negative whole numbers": (rng.integers(-3, 3, (10, 5)), "features"),
        "float vectors": (rng.normal(size=(10, 5)), "features"),
    }
    for name, (x, expected) in cases.items():
        raw = data.Raw(x, np.zeros(len(x), np.int32), None, None)
        assert prepare.choose_normalization(raw)[0] == expected, name
        assert prepare.resolve_normalization("auto", raw)[0] == expected, name
        assert prepare.resolve_normalization("none", raw) == ("none", "as given")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"test_fraction": 0.25, "max_train": None, "max_test": None},
        {"test_fraction": 0.4, "max_train": 300, "max_test": 50},
    ],
)
@pytest.mark.parametrize("with_test_split", [False, True])
def test_prepare_gives_from_raws_arrays_and_the_source_rows(kwargs, with_test_split):
    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target.astype(np.int32)
    raw = data.Raw(x, y, None, None)
    if with_test_split:
        raw = data.Raw(x[:1200], y[:1200], x[1200:], y[1200:])
    for seed in (0, 3):
        prepared = prepare.prepare(raw, "d", seed=seed, normalization="none", **kwargs)
        expected = data.from_raw(raw, "d", seed=seed, normalization="none", **kwargs)
        for got, want in zip(prepared.dataset, expected, strict=True):
            np.testing.assert_array_equal(got, want)
        # Every point is the source row it names.
        np.testing.assert_array_equal(prepared.dataset.x_train, raw.x_train[prepared.train_rows])
        np.testing.assert_array_equal(prepared.dataset.y_train, raw.y_train[prepared.train_rows])
        test_source = raw.x_test if with_test_split else raw.x_train
        np.testing.assert_array_equal(prepared.dataset.x_test, test_source[prepared.test_rows])
        if not with_test_split:  # a split: no row in both
            assert not set(prepared.train_rows) & set(prepared.test_rows)


@pytest.mark.parametrize(
    ("arrays", "rows_of"),
    [
        ({"x_train": "x", "y_train": "y"}, "x_train"),
        ({"x": "x", "y": "y"}, "x"),
    ],
)
def test_an_npz_without_test_split_is_split_by_test_fraction(tmp_path, arrays, rows_of):
    x, y = load_wine(return_X_y=True)
    path = tmp_path / "data.npz"
    np.savez(path, **{key: {"x": x, "y": y}[value] for key, value in arrays.items()})
    source = prepare.read_source(str(path))
    assert source.raw.x_test is None and source.rows_of == f"{rows_of} of {path}"
    for fraction, test_points in ((0.25, 44), (0.5, 89)):
        dataset = prepare.prepare(
            source.raw,
            str(path),
            seed=0,
            test_fraction=fraction,
            max_train=None,
            max_test=None,
            normalization="none",
        ).dataset
        assert len(dataset.x_test) == test_points and len(dataset.x_train) == 178 - test_points


def test_an_npz_of_another_layout_is_a_clear_error(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, inputs=np.zeros((4, 2)), y=np.zeros(4, int))
    with pytest.raises(ValueError) as error:
        prepare.read_source(str(path))
    message = str(error.value)
    assert f"--dataset {path} holds inputs, y" in message
    assert "x_train + y_train + x_test + y_test; x_train + y_train; x + y" in message
    # Half a test split is refused, not dropped.
    np.savez(path, x_train=np.zeros((4, 2)), y_train=np.zeros(4, int), x_test=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="holds x_test without y_test: add y_test, or drop"):
        prepare.read_source(str(path))


@pytest.mark.slow
def test_wine_without_a_test_split_gets_features(capsys, tmp_path, wine):
    path, x, _ = wine
    out = tmp_path / "out"
    status, _, err = run(
        capsys, "run", "--dataset", path, "--strategy", "random", *TINY, "--out", out
    )
    assert status == 0, err
    assert "jaxal: normalization features (chosen from the data: feature vectors" in err
    results = read(out)
    assert results["dataset"]["normalization"] == "features"
    assert results["config"]["normalization"] == "features"
    assert read(out, "config.json")["normalization"] == "features"
    assert results["dataset"]["train_points"] == 134 and results["dataset"]["test_points"] == 44
    accuracy = [row["test_accuracy"] for row in results["experiments"][0]["rounds"]]
    assert accuracy[-1] >= 0.9, accuracy
    # An explicit --normalization wins.
    out = tmp_path / "pixels"
    status, _, err = run(
        capsys,
        "run",
        "--dataset",
        path,
        "--strategy",
        "random",
        *TINY,
        "--out",
        out,
        "--normalization",
        "pixels",
    )
    assert status == 0, err
    assert "jaxal: normalization pixels (as given" in err
    assert read(out)["dataset"]["normalization"] == "pixels"
    assert read(out)["dataset"]["normalization_reason"] == "as given"
    pixels = read(out)["experiments"][0]["rounds"][-1]["test_accuracy"]
    assert pixels < accuracy[-1] - 0.1, (pixels, accuracy)


def check_rows(results, pool_x, source_x, seed):
    """Every experiment of ``seed`` in ``results``: the initial and selected pool indices
    and their ``*_rows`` name the same examples (``pool_x[i] == source_x[row]``)."""
    experiments = [e for e in results["experiments"] if e["seed"] == seed]
    assert experiments
    initial = data.initial_indices(len(pool_x), results["config"]["initial"], seed)
    for experiment in experiments:
        assert experiment["initial"] == initial.tolist()
        pairs = list(zip(experiment["initial"], experiment["initial_rows"], strict=True))
        for row in experiment["rounds"]:
            assert len(row["selected_rows"]) == len(row["selected"])
            pairs += list(zip(row["selected"], row["selected_rows"], strict=True))
        assert len(pairs) == results["config"]["initial"] + 2 * results["config"]["budget"]
        indices, rows = (np.array(p) for p in zip(*pairs, strict=True))
        assert not np.array_equal(indices, rows)  # a split or subset moved the points
        np.testing.assert_array_equal(pool_x[indices], source_x[rows])


@pytest.mark.slow
def test_results_map_selected_points_to_rows_of_the_users_data(capsys, tmp_path):
    # digits: split 75/25 by seed; rows of sklearn's array.
    out = tmp_path / "digits"
    args = ["--strategy", "entropy,random", "--seeds", "2", "--rounds", "2", "--budget", "5"]
    args += ["--initial", "10", "--steps", "10"]
    status, _, err = run(capsys, "run", *args, "--out", out)
    assert status == 0, err
    results = read(out)
    assert results["dataset"]["rows_of"] == "sklearn.datasets.load_digits().data"
    for seed in (0, 1):
        pool_x = data.load("digits", seed=seed, normalization="none").x_train
        check_rows(results, pool_x, load_digits().data, seed)
    # An .npz with a test split and --max-train: rows of its x_train before the subset.
    rng = np.random.default_rng(1)
    x_train = rng.normal(size=(300, 6)).astype(np.float32)
    y_train = (x_train[:, 0] > 0).astype(np.int32)
    path = tmp_path / "blobs.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_train[:40], y_test=y_train[:40])
    out = tmp_path / "npz"
    status, _, err = run(capsys, "run", *args, "--dataset", path, "--max-train", 200, "--out", out)
    assert status == 0, err
    results = read(out)
    assert results["dataset"]["rows_of"] == f"x_train of {path}"
    for seed in (0, 1):
        pool_x = data.load(str(path), seed=seed, max_train=200, normalization="none").x_train
        check_rows(results, pool_x, x_train, seed)

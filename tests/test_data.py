"""jaxal.data: digits, .npz files, TFDS datasets built and stored by TFDS in the test,
deterministic splits and normalization."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxal import data


def test_digits_split_and_normalization_are_deterministic_by_seed():
    first, again, other = (data.load("digits", seed=s) for s in (0, 0, 1))
    assert first.x_train.shape == (1348, 64) and first.x_test.shape == (449, 64)
    assert first.x_train.dtype == np.float32 and first.y_train.dtype == np.int32
    assert first.num_classes == 10
    for a, b in zip(first[:4], again[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.y_test, other.y_test)
    # Standardized with the training split's statistics (one mean and std for pixels).
    np.testing.assert_allclose(first.x_train.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(first.x_train.std(), 1.0, atol=1e-5)


def test_max_train_and_max_test_keep_a_seeded_subset():
    small = data.load("digits", seed=3, max_train=100, max_test=30)
    assert small.x_train.shape == (100, 64) and small.x_test.shape == (30, 64)
    np.testing.assert_array_equal(
        small.y_train, data.load("digits", seed=3, max_train=100, max_test=30).y_train
    )


def test_normalize_modes():
    rng = np.random.default_rng(0)
    images = rng.normal(5.0, [1.0, 2.0, 4.0], size=(50, 4, 4, 3))
    train, test = data.normalize(images[:40], images[40:])
    np.testing.assert_allclose(train.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 1, 2)), 1.0, atol=1e-5)
    assert test.shape == (10, 4, 4, 3) and test.dtype == np.float32
    table = np.column_stack([rng.normal(0, 100, 30), rng.normal(3, 0.01, 30), np.full(30, 7.0)])
    train, _ = data.normalize(table, table, "features")
    np.testing.assert_allclose(train[:, :2].std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(train[:, 2], 0.0)  # a constant feature keeps std 1
    train, _ = data.normalize(table, table, "none")
    np.testing.assert_array_equal(train, table.astype(np.float32))
    with pytest.raises(ValueError, match="normalize must be one of"):
        data.normalize(table, table, "minmax")


def test_initial_indices():
    picked = data.initial_indices(100, 10, seed=4)
    assert picked.dtype == np.int32 and len(set(picked.tolist())) == 10
    assert picked.min() >= 0 and picked.max() < 100
    np.testing.assert_array_equal(picked, data.initial_indices(100, 10, seed=4))
    with pytest.raises(ValueError, match="initial=101"):
        data.initial_indices(100, 101, seed=0)


def write_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(20, 3)),
        "y_train": rng.integers(0, 4, 20),
        "x_test": rng.normal(size=(6, 3)),
        "y_test": rng.integers(0, 4, 6),
    }
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def test_npz_that_is_not_an_archive(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        data.load(str(path))


def test_npz_round_trip(tmp_path):
    path = str(tmp_path / "tiny.npz")
    arrays = write_npz(path)
    ds = data.load(path, normalization="none")
    np.testing.assert_allclose(ds.x_train, arrays["x_train"].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert ds.num_classes == int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"y_test": None}, "lacks y_test"),
        ({"y_train": np.zeros(19, int)}, "y_train must have shape"),
        ({"y_train": np.full(20, 0.5)}, "integer class labels"),
        ({"x_test": np.ones((6, 4))}, "differ in shape"),
        ({"x_train": np.full((20, 3), np.nan)}, "NaN"),
    ],
)
def test_npz_errors(tmp_path, overrides, message):
    path = str(tmp_path / "bad.npz")
    write_npz(path, **overrides)
    with pytest.raises(ValueError, match=message):
        data.load(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mnist", "unknown dataset 'mnist'"),
        ("missing/file.npz", "does not exist"),
        ("", "dataset must be"),
    ],
)
def test_unknown_datasets(name, message):
    with pytest.raises(ValueError, match=message):
        data.load(name)


# ---------------------------------------------------------------------------- TFDS

TFDS_NAME = "jaxal_tiny_images"
TRAIN, TEST = 24, 9


def tiny_examples(seed: int, count: int):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 6, 6, 1), dtype=np.uint8)
    labels = rng.integers(0, 3, count)
    return images, labels


@pytest.fixture(scope="module")
def tfds():
    pytest.importorskip("importlib_resources")
    return pytest.importorskip("tensorflow_datasets")


@pytest.fixture(scope="module")
def builder_class(tfds):
    """A tiny image dataset, defined (and so registered) the way TFDS users write one."""

    class JaxalTinyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        # A Tensor feature: encoding an Image feature needs TensorFlow.
                        "image": tfds.features.Tensor(shape=(6, 6, 1), dtype=np.uint8),
                        "label": tfds.features.ClassLabel(num_classes=3),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            del dl_manager
            return {
                "train": self._generate_examples(0, TRAIN),
                "test": self._generate_examples(1, TEST),
            }

        def _generate_examples(self, seed, count):
            images, labels = tiny_examples(seed, count)
            for i in range(count):
                yield i, {"image": images[i], "label": int(labels[i])}

    assert JaxalTinyImages.name == TFDS_NAME
    return JaxalTinyImages


def prepare(builder_class, data_dir, file_format):
    builder_class(data_dir=str(data_dir), file_format=file_format).download_and_prepare()
    return str(data_dir)


@pytest.fixture(scope="module")
def array_record_dir(builder_class, tmp_path_factory):
    return prepare(builder_class, tmp_path_factory.mktemp("tfds_array_record"), "array_record")


def sorted_by_image(x, y):
    """TFDS shuffles records when it stores them: compare as sets of (image, label)."""
    order = np.lexsort(np.asarray(x).reshape(len(x), -1).T)
    return np.asarray(x)[order], np.asarray(y)[order]


def assert_same_examples(raw):
    for (x, y), seed, count in (
        ((raw.x_train, raw.y_train), 0, TRAIN),
        ((raw.x_test, raw.y_test), 1, TEST),
    ):
        images, labels = tiny_examples(seed, count)
        got_x, got_y = sorted_by_image(x, y)
        want_x, want_y = sorted_by_image(images, labels)
        np.testing.assert_array_equal(got_x, want_x)
        np.testing.assert_array_equal(got_y, want_y)


def test_tfds_array_record_reads_without_tfds_load(tfds, array_record_dir, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("array_record must be read through tfds.data_source")

    monkeypatch.setattr(tfds, "load", no_load)
    raw = data.load_raw(f"tfds:{TFDS_NAME}", data_dir=array_record_dir)
    assert_same_examples(raw)
    ds = data.load(f"tfds:{TFDS_NAME}", data_dir=array_record_dir, seed=0)
    assert ds.x_train.shape == (TRAIN, 6, 6, 1) and ds.x_train.dtype == np.float32
    assert ds.num_classes == 3


def test_jaxal_run_on_a_tfds_dataset(tfds, array_record_dir, tmp_path, capsys):
    from jaxal import cli

    out = tmp_path / "out"
    args = ["run", "--dataset", f"tfds:{TFDS_NAME}", "--data-dir", array_record_dir]
    args += ["--strategy", "entropy", "--seeds", "1", "--rounds", "1", "--budget", "3"]
    args += ["--initial", "6", "--steps", "5", "--out", str(out)]
    assert cli.main(args) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "cnn"  # images -> the built-in CNN
    assert results["dataset"]["input_shape"] == [6, 6, 1]
    assert [row["labeled"] for row in results["experiments"][0]["rounds"]] == [6, 9]


def test_tfds_tfrecord_without_tensorflow_is_a_clear_error(tfds, array_record_dir, monkeypatch):
    def failing_source(*args, **kwargs):
        raise NotImplementedError("Random access data source for file format TFRECORD")

    def no_tensorflow(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'tensorflow'")

    monkeypatch.setattr(tfds, "data_source", failing_source)
    monkeypatch.setattr(tfds, "load", no_tensorflow)
    with pytest.raises(ValueError, match="needs TensorFlow"):
        data.load_raw(f"tfds:{TFDS_NAME}", data_dir=array_record_dir)


def test_tfds_tfrecord_through_tfds_load(tfds, builder_class, tmp_path):
    pytest.importorskip("tensorflow")
    data_dir = prepare(builder_class, tmp_path, "tfrecord")
    assert_same_examples(data.load_raw(f"tfds:{TFDS_NAME}", data_dir=data_dir))


def test_tfds_unknown_or_unprepared(tfds, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        data.load("tfds:no_such_dataset_here", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="not prepared"):
        data.load("tfds:mnist", data_dir=str(tmp_path))

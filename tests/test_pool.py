"""The Pool pytree: creation, validation and the pure label / mark operations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal


def test_create_defaults_and_index_labeled():
    pool = jaxal.Pool.create(np.zeros((5, 2), np.float32), labeled=np.array([1, 3]))
    assert pool.size == 5 and pool.y.dtype == jnp.int32
    np.testing.assert_array_equal(pool.y, -np.ones(5))
    np.testing.assert_array_equal(pool.labeled, [False, True, False, True, False])
    np.testing.assert_array_equal(pool.unlabeled, [True, False, True, False, True])


def test_label_is_pure_and_ignores_minus_one():
    pool = jaxal.Pool.create(np.zeros((5, 2), np.float32))
    new = pool.label(jnp.array([4, -1, 0]), jnp.array([7, 9, 2]))
    np.testing.assert_array_equal(new.y, [2, -1, -1, -1, 7])
    np.testing.assert_array_equal(new.labeled, [True, False, False, False, True])
    assert not bool(pool.labeled.any()), "label must not modify the original pool"
    jitted = jax.jit(lambda p, i, y: p.label(i, y))(
        pool, jnp.array([4, -1, 0]), jnp.array([7, 9, 2])
    )
    np.testing.assert_array_equal(jitted.y, new.y)


def test_mark_labeled_keeps_y():
    pool = jaxal.Pool.create(np.zeros((4, 1), np.float32), y=np.array([3, 1, 2, 0]))
    marked = pool.mark_labeled(jnp.array([2, -1]))
    np.testing.assert_array_equal(marked.labeled, [False, False, True, False])
    np.testing.assert_array_equal(marked.y, [3, 1, 2, 0])


def test_pool_is_a_pytree():
    pool = jaxal.Pool.create(np.ones((3, 2), np.float32), labeled=np.array([0]))
    leaves = jax.tree.leaves(pool)
    assert len(leaves) == 4  # x, y, labeled, offset
    doubled = jax.tree.map(lambda a: a, pool)
    assert isinstance(doubled, jaxal.Pool)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": np.zeros((0, 2))}, ValueError, "empty"),
        ({"x": np.float32(1.0)}, ValueError, "x"),
        ({"x": np.array([[1.0, np.nan]])}, ValueError, "finite"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4, int)}, ValueError, "y"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(3)}, TypeError, "integer"),
        ({"x": np.zeros((3, 2)), "labeled": np.zeros(4, bool)}, ValueError, "labeled"),
        ({"x": np.zeros((3, 2)), "labeled": np.array([0, 3])}, ValueError, "labeled"),
        ({"x": np.zeros((3, 2)), "labeled": np.zeros(3)}, TypeError, "labeled"),
    ],
)
def test_create_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxal.Pool.create(**kwargs)


def test_label_rejects_mismatched_shapes():
    pool = jaxal.Pool.create(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="labels"):
        pool.label(jnp.array([0, 1]), jnp.array([1]))


def _empty_pool(n=100):
    return jaxal.Pool.create(np.zeros((n, 2), np.float32))


@pytest.mark.parametrize(
    ("indices", "labels", "kwargs", "error", "match"),
    [
        ([0, 1], [3.7, 2.2], {}, TypeError, "labels must hold integers"),
        ([0, 1], [3.0, 2.0], {}, TypeError, "labels must hold integers"),
        ([0, 1], ["cat", "dog"], {}, TypeError, "labels must hold integers"),
        ([0, 1], [True, False], {}, TypeError, "labels must hold integers"),
        ([0, 1], [1, -5], {}, ValueError, "labels must be class indices >= 0"),
        ([0, 1], [1, -1], {}, ValueError, "labels must be class indices >= 0"),
        ([0, 1], [15, 2], {"num_classes": 10}, ValueError, r"labels must lie in \[0, num_cl"),
        ([0, 1], [2**40, 2], {}, ValueError, "labels must fit in int32"),
        ([0, 5000], [1, 2], {}, ValueError, r"indices must lie in \[0, 100\).*5000"),
        ([-3, 4], [1, 2], {}, ValueError, r"indices must lie in \[0, 100\).*-3"),
        ([0.0, 1.0], [1, 2], {}, TypeError, "indices must hold integers"),
        ([4, 7, 4], [1, 2, 3], {}, ValueError, "indices holds 4 more than once"),
        ([0, 1], [1, 2], {"num_classes": 0}, ValueError, "num_classes"),
    ],
)
def test_label_rejects_mistakes(indices, labels, kwargs, error, match):
    pool = _empty_pool()
    with pytest.raises(error, match=match):
        pool.label(np.asarray(indices), np.asarray(labels), **kwargs)
    with pytest.raises(error, match=match):  # plain lists alike
        pool.label(list(indices), list(labels), **kwargs)


def test_label_accepts_valid_edge_cases():
    pool = _empty_pool(10)
    # The label of a skipped (-1) slot is never read, whatever it holds.
    new = pool.label([3, -1, 3, 9], [2, -7, 2, 0], num_classes=3)
    expected = np.full(10, -1)
    expected[[3, 9]] = [2, 0]
    np.testing.assert_array_equal(new.y, expected)
    np.testing.assert_array_equal(new.labeled, expected >= 0)
    assert pool.label([], []).y.tolist() == [-1] * 10
    np.testing.assert_array_equal(pool.label(np.uint8([1]), np.int64([9])).y[1], 9)


def test_label_dtype_is_checked_under_jit():
    pool = _empty_pool(10)
    with pytest.raises(TypeError, match="labels"):
        jax.jit(lambda p, y: p.label(jnp.array([1]), y))(pool, jnp.array([2.0]))


def test_label_under_jit_skips_what_it_cannot_check():
    """Traced values cannot be read: -1 and any negative index are skipped, >= N dropped."""
    pool = _empty_pool(10)
    label = jax.jit(lambda p, i, y: p.label(i, y))
    new = label(pool, jnp.array([-1, -3, 50, 2]), jnp.array([1, 1, 1, 4]))
    np.testing.assert_array_equal(new.y, [-1, -1, 4] + [-1] * 7)
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(new.labeled)), [2])


def _reference_label(y, labeled, indices, labels):
    """NumPy: what label should do with valid indices [K] and labels [K]."""
    y, labeled = y.copy(), labeled.copy()
    for i, value in zip(indices, labels, strict=True):
        if i != -1:
            y[i], labeled[i] = value, True
    return y, labeled


@pytest.mark.parametrize("seed", range(5))
def test_label_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    n, k, classes = int(rng.integers(1, 40)), int(rng.integers(0, 12)), 5
    y = np.where(rng.random(n) < 0.3, rng.integers(0, classes, n), -1)
    labeled = rng.random(n) < 0.3
    pool = jaxal.Pool.create(rng.normal(size=(n, 3)), y=y, labeled=labeled, num_classes=classes)
    indices = rng.integers(0, n, k)
    truth = rng.integers(0, classes, n)  # repeated indices get one label
    labels = truth[indices]
    unfilled = rng.random(k) < 0.3
    indices[unfilled] = -1
    labels[unfilled] = rng.integers(-9, 9, unfilled.sum())
    expected_y, expected_labeled = _reference_label(y, labeled, indices, labels)
    eager = pool.label(indices, labels, num_classes=classes)
    jitted = jax.jit(lambda p, i, t: p.label(i, t))(pool, jnp.asarray(indices), jnp.asarray(labels))
    for got in (eager, jitted):
        np.testing.assert_array_equal(got.y, expected_y)
        np.testing.assert_array_equal(got.labeled, expected_labeled)


def test_mark_labeled_rejects_out_of_range_indices():
    pool = _empty_pool(10)
    with pytest.raises(ValueError, match="indices must lie"):
        pool.mark_labeled(jnp.array([2, 10]))
    with pytest.raises(TypeError, match="indices"):
        pool.mark_labeled(np.array([2.0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y": np.array([0, -2, 1, -1])}, ValueError, r"y must hold class indices >= 0.*-2"),
        ({"y": np.array([0, 4, 1, -1]), "num_classes": 4}, ValueError, r"y must lie in \[-1"),
        ({"y": np.array(["a", "b", "c", "d"])}, TypeError, "y must hold integers"),
        ({"num_classes": 2.5}, TypeError, "num_classes"),
        ({"labeled": np.array([1, 0, 0, 1])}, ValueError, "labeled .*only 0 and 1.*bool mask"),
        ({"labeled": np.array([0, 0, 0, 0])}, ValueError, "labeled .*only 0 and 1.*bool mask"),
        ({"labeled": [1, 1, 1, 1]}, ValueError, "labeled .*only 0 and 1.*bool mask"),
        ({"labeled": np.array([-1, 2])}, ValueError, r"labeled indices must lie in \[0, 4\)"),
        ({"labeled": np.array(["a", "b"])}, TypeError, "labeled"),
        ({"labeled": np.zeros((2, 2), int)}, TypeError, "labeled"),
    ],
)
def test_create_rejects_label_and_mask_mistakes(kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxal.Pool.create(np.zeros((4, 2), np.float32), **kwargs)


def test_create_refuses_an_integer_0_1_mask():
    mask = (np.arange(100) < 10).astype(int)
    with pytest.raises(ValueError, match="labeled"):
        jaxal.Pool.create(np.zeros((100, 2)), labeled=mask)
    pool = jaxal.Pool.create(np.zeros((100, 2)), labeled=mask.astype(bool))
    assert int(pool.labeled.sum()) == 10
    pool = jaxal.Pool.create(np.zeros((100, 2)), labeled=np.flatnonzero(mask))
    assert int(pool.labeled.sum()) == 10


def test_create_accepts_valid_labeled_forms():
    x = np.zeros((6, 2), np.float32)
    permutation = np.random.default_rng(0).permutation(6)
    assert bool(jaxal.Pool.create(x, labeled=permutation).labeled.all())
    np.testing.assert_array_equal(
        jaxal.Pool.create(x, labeled=[4, 1, 4]).labeled, [0, 1, 0, 0, 1, 0]
    )
    assert not bool(jaxal.Pool.create(x, labeled=[]).labeled.any())
    mask = np.array([1, 0, 0, 1, 1, 0], bool)
    np.testing.assert_array_equal(jaxal.Pool.create(x, labeled=jnp.asarray(mask)).labeled, mask)
    y = np.array([-1, 0, 2, -1, 1, 0])
    np.testing.assert_array_equal(jaxal.Pool.create(x, y=y, num_classes=3).y, y)
    np.testing.assert_array_equal(jaxal.Pool.create(x, y=y.astype(np.int64)).y, y)


def test_label_checks_concrete_jax_arrays():
    pool = _empty_pool()
    with pytest.raises(ValueError, match="indices"):
        pool.label(jnp.array([0, 5000]), jnp.array([1, 2]))
    with pytest.raises(ValueError, match="labels"):
        pool.label(jnp.array([0, 1]), jnp.array([1, -5]))
    with pytest.raises(ValueError, match="labels"):
        pool.label(jnp.array([0, 1]), jnp.array([1, 15]), num_classes=10)
    with pytest.raises(TypeError, match="labels"):
        pool.label(jnp.array([0, 1]), jnp.array([3.7, 2.2]))

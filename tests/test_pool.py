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

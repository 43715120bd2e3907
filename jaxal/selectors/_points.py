"""Squared Euclidean distances between points given as rows or as outer products.

Points are ``jaxal._points.Points``: a plain array ``[N, D]`` or an ``OuterProduct``, never
materialized: since <a (x) h, b (x) g> = (a . b)(h . g), a squared distance costs
O(C + D) instead of O(C * D).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxal._chunks import map_chunks
from jaxal._points import OuterProduct, Points, computation_dtype, gather

# The value types and the dtype rule that the selectors reach through this module.
__all__ = ["OuterProduct", "Points", "computation_dtype", "gather"]


def sq_norms(points: Points) -> jax.Array:
    """float [N]: squared norm of every point."""
    if isinstance(points, OuterProduct):
        return _row_sq(points.left) * _row_sq(points.right)
    return _row_sq(points)


def inner_products(points: Points, others: Points) -> jax.Array:
    """float [N, M]: <points[i], others[j]> for every pair, accumulated and returned in
    float32 at least (bfloat16 points are products of float32 values)."""
    if isinstance(points, OuterProduct) and isinstance(others, OuterProduct):
        return _products(points.left, others.left) * _products(points.right, others.right)
    if isinstance(points, OuterProduct) or isinstance(others, OuterProduct):
        raise TypeError("points and others must have the same representation")
    return _products(points, others)


def sq_distances(
    points: Points,
    others: Points,
    points_sq: jax.Array | None = None,
    others_sq: jax.Array | None = None,
) -> jax.Array:
    """float [N, M]: squared distances, by ||x||^2 + ||y||^2 - 2 <x, y>.

    The formula cancels: identical points would come out a few ulps apart. Results below
    ``_ROUNDOFF * (||x||^2 + ||y||^2)`` are therefore set to exactly 0, so duplicates are
    at distance 0 and ties between them are real ties.

    Args:
        points: N points.
        others: M points in the same representation.
        points_sq: optional precomputed ``sq_norms(points)`` [N].
        others_sq: optional precomputed ``sq_norms(others)`` [M].
    """
    points_sq = sq_norms(points) if points_sq is None else points_sq
    others_sq = sq_norms(others) if others_sq is None else others_sq
    return _from_inner(points_sq[:, None], others_sq[None, :], inner_products(points, others))


def sq_distances_to(points: Points, index: jax.Array, points_sq: jax.Array) -> jax.Array:
    """float [N]: squared distance of every point to point ``index`` (an int scalar)."""
    one = gather(points, jnp.reshape(index, (1,)))
    return sq_distances(points, one, points_sq)[:, 0]


def min_sq_distances_to_members(
    points: Points, members: jax.Array, points_sq: jax.Array, chunk_size: int = 128
) -> jax.Array:
    """float [N]: squared distance of every point to the nearest member, +inf if none.

    Cost O(N * L * D) for L members, memory O(N * chunk_size) (:func:`fold_member_blocks`).

    Args:
        points: N points.
        members: bool [N], the reference set (e.g. the labeled points).
        points_sq: ``sq_norms(points)`` [N].
        chunk_size: members per chunk, a Python int >= 1.
    """
    n = members.shape[0]

    def nearest(carry, index, distances):
        distances = jnp.where(index[None, :] < n, distances, jnp.inf)
        return jnp.minimum(carry, jnp.min(distances, axis=1))

    initial = jnp.full((n,), jnp.inf, points_sq.dtype)
    return fold_member_blocks(points, members, points_sq, nearest, initial, chunk_size)


def fold_member_blocks(
    points: Points,
    members: jax.Array,
    points_sq: jax.Array,
    fold: Callable[[Any, jax.Array, jax.Array], Any],
    initial: Any,
    chunk_size: int = 128,
) -> Any:
    """Fold ``fold(carry, index, sq)`` over the members, ``chunk_size`` at a time.

    ``index`` int32 [chunk_size] holds the members' indices (N in padding slots) and ``sq``
    float [N, chunk_size] every point's squared distance to them. The members are gathered
    in chunks and a ``lax.while_loop`` runs only as many chunks as there are members: cost
    O(N * L * D) for L members with static shapes, memory O(N * chunk_size).

    Args:
        points: N points.
        members: bool [N].
        points_sq: ``sq_norms(points)`` [N].
        fold: ``(carry, index [chunk_size], sq [N, chunk_size]) -> carry``.
        initial: the carry before the first chunk.
        chunk_size: members per chunk, a Python int >= 1.
    """
    n = members.shape[0]
    chunk_size = min(chunk_size, n)
    padded = -(-n // chunk_size) * chunk_size
    member_index = jnp.nonzero(members, size=padded, fill_value=n)[0]
    member_count = jnp.sum(members)

    def more(state):
        chunk, _ = state
        return chunk * chunk_size < member_count

    def step(state):
        chunk, carry = state
        index = jax.lax.dynamic_slice(member_index, (chunk * chunk_size,), (chunk_size,))
        distances = sq_distances(points, gather(points, jnp.minimum(index, n - 1)), points_sq)
        return chunk + 1, fold(carry, index, distances)

    return jax.lax.while_loop(more, step, (jnp.int32(0), initial))[1]


def nearest(
    points: Points,
    centers: Points,
    chunk_size: int = 4096,
    active: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """For every point, its nearest center and the squared distance to it.

    Computed over row chunks of ``chunk_size``: memory O(chunk_size * K).

    Args:
        points: N points.
        centers: K points in the same representation.
        active: optional bool [K]: only these centers count (at least one must be True).

    Returns:
        (int32 [N] index of the nearest center, ties to the lower index; float [N]).
    """
    centers_sq = sq_norms(centers)

    def one_chunk(*leaves_and_index):
        chunk = _rebuild(points, leaves_and_index[:-1])
        cross = inner_products(chunk, centers)
        distances = _from_inner(sq_norms(chunk)[:, None], centers_sq[None, :], cross)
        if active is not None:
            distances = jnp.where(active[None, :], distances, jnp.inf)
        return argmin_rows(distances)

    return map_chunks(one_chunk, *_leaves(points), chunk_size=chunk_size)


def argmin_rows(values: jax.Array, width: int = 128) -> tuple[jax.Array, jax.Array]:
    """(int32 [R] the first index of each row's minimum, float [R] the minimum) of
    values [R, M] without NaN, as ``jnp.argmin`` and ``jnp.min``.

    Through the minima of blocks of ``width`` columns: the first block that holds the row's
    minimum, then the first index in that block. On a CPU XLA's argmin is a scalar loop
    and its min is vectorized, so this is several times faster for long rows.
    """
    rows, count = values.shape
    padded = jnp.pad(values, ((0, 0), (0, -count % width)), constant_values=jnp.inf)
    blocks = padded.reshape(rows, -1, width)
    block_minima = jnp.min(blocks, axis=2)
    block = jnp.argmin(block_minima, axis=1)
    chosen = jnp.take_along_axis(blocks, block[:, None, None], axis=1)[:, 0]
    index = block * width + jnp.argmin(chosen, axis=1)
    return index.astype(jnp.int32), jnp.min(block_minima, axis=1)


# Relative size of the cancellation error of ||x||^2 + ||y||^2 - 2 <x, y> in float32.
_ROUNDOFF = 16 * float(jnp.finfo(jnp.float32).eps)


def _from_inner(x_sq: jax.Array, y_sq: jax.Array, cross: jax.Array) -> jax.Array:
    """Squared distances from squared norms and inner products (broadcasting)."""
    norms = x_sq + y_sq
    distances = norms - 2.0 * cross
    return jnp.where(distances <= _ROUNDOFF * norms, 0.0, distances)


def _leaves(points: Points) -> tuple[jax.Array, ...]:
    return tuple(points) if isinstance(points, OuterProduct) else (points,)


def _rebuild(like: Points, leaves: tuple[jax.Array, ...]) -> Points:
    return OuterProduct(*leaves) if isinstance(like, OuterProduct) else leaves[0]


def _products(rows: jax.Array, others: jax.Array) -> jax.Array:
    """[N, M] = rows [N, D] x others [M, D]^T in :func:`computation_dtype`."""
    dtype = computation_dtype(rows, others)
    return jnp.matmul(rows, others.T, preferred_element_type=dtype).astype(dtype)


def _row_sq(array: jax.Array) -> jax.Array:
    wide = array.astype(computation_dtype(array))
    return jnp.sum(wide * wide, axis=1)

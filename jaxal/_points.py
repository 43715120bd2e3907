"""Point sets as values: plain rows or factored outer products, and their vector algebra.

A point set is either a plain array ``[N, D]`` or an :class:`OuterProduct`, whose row i is
the flattened outer product ``left[i] (x) right[i]`` (a last-layer gradient embedding)
and is never materialized. A *vector* of the points' space is a float [D] array for plain
points and a float [C, R] matrix for an ``OuterProduct`` (its ``ravel()`` is the
class-major layout of ``materialize()``). Every layer uses these: the model builds
gradient embeddings, the selectors measure them, the strategies mask them.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST


class OuterProduct(NamedTuple):
    """N points, row i = ``left[i] (x) right[i]`` flattened, of dimension C * D.

    Attributes:
        left: float [N, C].
        right: float [N, D].
    """

    left: jax.Array
    right: jax.Array

    def materialize(self) -> jax.Array:
        """float [N, C * D], class-major (row i = outer(left[i], right[i]).ravel()).

        For tests and small pools only: this is the matrix the factored form avoids.
        """
        return jnp.einsum("nc,nd->ncd", self.left, self.right).reshape(self.left.shape[0], -1)


Points = jax.Array | OuterProduct


def computation_dtype(*arrays: jax.Array) -> jnp.dtype:
    """The dtype arithmetic on points is done in: the arrays' own, at least float32
    (points stored in bfloat16 are read as float32, never rounded to bfloat16 on the way).
    """
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def finite_rows(points: Points) -> jax.Array:
    """bool [N]: True where every entry of the point is finite (both factors of an
    ``OuterProduct``)."""
    if isinstance(points, OuterProduct):
        return finite_rows(points.left) & finite_rows(points.right)
    return jnp.all(jnp.isfinite(points.reshape(points.shape[0], -1)), axis=1)


PointsT = TypeVar("PointsT", jax.Array, OuterProduct)


def zero_rows(points: PointsT, keep: jax.Array) -> PointsT:
    """The points with every row outside ``keep`` (bool [N]) set to zero, same layout."""
    if isinstance(points, OuterProduct):
        return OuterProduct(_zero_rows(points.left, keep), _zero_rows(points.right, keep))
    return _zero_rows(points, keep)


def _zero_rows(array: jax.Array, keep: jax.Array) -> jax.Array:
    mask = keep.reshape(keep.shape + (1,) * (array.ndim - 1))
    return jnp.where(mask, array, jnp.zeros((), array.dtype))


def gather(points: Points, indices: jax.Array) -> Points:
    """The points at ``indices`` (int [M]), in the same representation."""
    if isinstance(points, OuterProduct):
        return OuterProduct(points.left[indices], points.right[indices])
    return points[indices]


def points_sum(points: Points, weights: jax.Array) -> jax.Array:
    """The weighted sum of the points, as a vector of their space.

    Args:
        points: N points, float [N, d] or an ``OuterProduct``.
        weights: float [N] (e.g. a mask cast to float).

    Returns:
        float [d], or float [C, R] for an ``OuterProduct`` (sum_i w_i left_i right_i^T).
    """
    if isinstance(points, OuterProduct):
        weighted = points.right * weights[:, None].astype(points.right.dtype)
        return jnp.matmul(points.left.T, weighted, precision=_HIGHEST)
    return jnp.matmul(weights.astype(points.dtype), points, precision=_HIGHEST)


def dots(points: Points, vector: jax.Array) -> jax.Array:
    """float [N]: the inner product of every point with ``vector`` (see :func:`points_sum`).

    For an ``OuterProduct`` this is a_i^T V u_i, O(N * C * R), never the [N, C * R] matrix.
    """
    if isinstance(points, OuterProduct):
        projected = jnp.matmul(points.right, vector.T, precision=_HIGHEST)  # [N, C]
        return jnp.sum(projected * points.left, axis=1)
    return jnp.matmul(points, vector, precision=_HIGHEST)


def point_vector(points: Points, index: jax.Array) -> jax.Array:
    """Point ``index`` (an int scalar) as a vector of the space (see :func:`points_sum`)."""
    if isinstance(points, OuterProduct):
        return jnp.outer(points.left[index], points.right[index])
    return points[index]

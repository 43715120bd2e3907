"""Similarity kernels from embeddings, as submodlib and DISTIL define them.

Two metrics, with F the number of features (D for a plain [N, D] array, C * D for an
:class:`~jaxal.selectors.OuterProduct`):

* ``"cosine"``: K_ij = <x_i, y_j> / (||x_i|| ||y_j||), and 0 when either norm is 0. No
  shift to [0, 1]: signed features give negative similarities.
* ``"euclidean"``: K_ij = exp(-||x_i - y_j|| / F), the distance *not* squared.

A square kernel (one point set) has an exact diagonal: 1 for a nonzero point, 0 for a
zero point under ``"cosine"`` (submodlib's all-pairs kernel, DISTIL's K2), and 1 under
``"euclidean"``. DISTIL's K1 forces the cosine diagonal to 1 even for a zero point, and its
SMI / SCG / SCMI kernels (K3) are then mapped by K <- (K + 1) / 2; both are one line on top
of these kernels and belong to the strategies.

A kernel is either a dense array [M, N] (``similarity_kernel``), or a :class:`Similarity`,
which keeps only the points and computes the entries it needs, ``chunk_size`` rows at a
time, so that a submodular function over N points never holds an N x N matrix.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal._chunks import map_chunks
from jaxal.selectors import _points
from jaxal.selectors._points import OuterProduct, Points

METRICS = ("cosine", "euclidean")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=("rows", "cols"),
    meta_fields=("metric", "chunk_size"),
)
@dataclasses.dataclass(frozen=True)
class Similarity:
    """The kernel K[i, j] = sim(rows[i], cols[j]), computed on demand, never stored.

    A pytree (the points are leaves; ``metric`` and ``chunk_size`` are static), so it can
    be passed through ``jax.jit``.

    Attributes:
        rows: M points, a float [M, D] array or an ``OuterProduct``.
        cols: N points in the same representation, or None for the square kernel of
            ``rows`` (M = N, exact diagonal: see the module docstring).
        metric: ``"cosine"`` or ``"euclidean"``.
        chunk_size: rows per block when a function reduces over all rows: such a pass
            holds a [chunk_size, R] block for R columns and costs O(M * R * F).
    """

    rows: Points
    cols: Points | None = None
    metric: str = "cosine"
    chunk_size: int = 256

    @property
    def square(self) -> bool:
        return self.cols is None

    @property
    def shape(self) -> tuple[int, int]:
        m = _num_points(self.rows)
        return m, m if self.cols is None else _num_points(self.cols)


Kernel = jax.Array | Similarity
"""A similarity kernel: a dense float array [M, N] or an on-the-fly :class:`Similarity`."""


def similarity_kernel(
    points: Points,
    others: Points | None = None,
    *,
    metric: str = "cosine",
    chunk_size: int = 1024,
) -> jax.Array:
    """The dense kernel K[i, j] = sim(points[i], others[j]) (see the module docstring).

    Memory: the float32 [N, M] result, plus one [chunk_size, M] block at a time.

    Args:
        points: N points, float [N, D] or an ``OuterProduct``.
        others: M points in the same representation, or None for the square kernel of
            ``points`` (exact diagonal: 1, or 0 for a zero point under cosine).
        metric: ``"cosine"`` or ``"euclidean"``.
        chunk_size: rows computed per block.

    Returns:
        float32 [N, M].
    """
    sim = check_kernel(Similarity(points, others, metric, chunk_size), "points")
    assert isinstance(sim, Similarity)
    cols = sim.rows if sim.cols is None else sim.cols
    n_cols = sim.shape[1]
    col_index = jnp.arange(n_cols, dtype=jnp.int32)

    def one_chunk(*leaves_and_index):
        chunk = _points._rebuild(sim.rows, leaves_and_index[:-1])
        return _block(sim, chunk, leaves_and_index[-1], cols, col_index)

    return map_chunks(one_chunk, *_points._leaves(sim.rows), chunk_size=chunk_size)


def kernel_shape(kernel: Kernel) -> tuple[int, int]:
    """(M, N): rows (the points that are represented) and columns (the ground set)."""
    if isinstance(kernel, Similarity):
        return kernel.shape
    return kernel.shape[0], kernel.shape[1]


def check_kernel(kernel: Any, name: str = "kernel", square: bool = False) -> Kernel:
    """Validate a kernel argument at trace time; raise ValueError naming ``name``.

    A dense kernel must be a finite (checked outside jit) floating array [M, N]; a
    Similarity must have a known metric, a positive chunk size and points of equal width.
    """
    if isinstance(kernel, Similarity):
        _checks.one_of(kernel.metric, METRICS, "metric")
        _checks.positive_int(kernel.chunk_size, "chunk_size")
        _check_points(kernel.rows, f"{name}.rows")
        if kernel.cols is not None:
            _check_points(kernel.cols, f"{name}.cols")
            if _n_features(kernel.cols) != _n_features(kernel.rows):
                raise ValueError(
                    f"{name}: rows and cols must have the same number of features, got "
                    f"{_n_features(kernel.rows)} and {_n_features(kernel.cols)}"
                )
    else:
        kernel = jnp.asarray(kernel)
        if kernel.ndim != 2:
            raise ValueError(f"{name} must be a [M, N] array or a Similarity, got {kernel.shape}")
        if not jnp.issubdtype(kernel.dtype, jnp.floating):
            kernel = kernel.astype(jnp.float32)
        _checks.finite(kernel, name)
    m, n = kernel_shape(kernel)
    if square and m != n:
        raise ValueError(f"{name} must be square [N, N], got shape ({m}, {n})")
    if m < 1 or n < 1:
        raise ValueError(f"{name} must not be empty, got shape ({m}, {n})")
    return kernel


def column(kernel: Kernel, index: jax.Array) -> jax.Array:
    """float32 [M]: K[:, index] for an int scalar ``index``. O(M * F) for a Similarity."""
    if not isinstance(kernel, Similarity):
        return kernel[:, index].astype(jnp.float32)
    cols = kernel.rows if kernel.cols is None else kernel.cols
    one = jnp.reshape(index, (1,)).astype(jnp.int32)
    m = kernel.shape[0]
    row_index = jnp.arange(m, dtype=jnp.int32)
    return _block(kernel, kernel.rows, row_index, _points.gather(cols, one), one)[:, 0]


def diagonal(kernel: Kernel) -> jax.Array:
    """float32 [N]: K[j, j] of a square kernel."""
    if not isinstance(kernel, Similarity):
        return jnp.diagonal(kernel).astype(jnp.float32)
    if kernel.metric == "cosine":
        return (_points.sq_norms(kernel.rows) > 0).astype(jnp.float32)
    return jnp.ones(kernel.shape[0], jnp.float32)


def reduce_rows(
    kernel: Kernel,
    fn: Callable[..., jax.Array],
    row_arrays: tuple[jax.Array, ...],
    columns: jax.Array | None = None,
) -> jax.Array:
    """Sum over row blocks of ``fn(K[rows, columns], *row_arrays[rows])``.

    ``fn(block [B, R], *arrays [B, ...]) -> [R]`` reduces one block of rows; the results
    of all blocks are added. A dense kernel is one block (a gather of ``columns``); a
    :class:`Similarity` is computed ``chunk_size`` rows at a time in a ``lax.scan``, so
    the memory is O(chunk_size * R) and the work O(M * R * F).

    Args:
        kernel: a dense [M, N] array or a Similarity.
        fn: the per-block reduction.
        row_arrays: per-row arrays with leading axis M (state, weights).
        columns: int32 [R] column indices, or None for all N columns.

    Returns:
        float32 [R] (R = N when ``columns`` is None).
    """
    if not isinstance(kernel, Similarity):
        block = kernel if columns is None else kernel[:, columns]
        return fn(block.astype(jnp.float32), *row_arrays)
    m, n = kernel.shape
    cols = kernel.rows if kernel.cols is None else kernel.cols
    if columns is None:
        col_index = jnp.arange(n, dtype=jnp.int32)
    else:
        col_index = columns.astype(jnp.int32)
        cols = _points.gather(cols, col_index)
    point_leaves = _points._leaves(kernel.rows)
    leaves = (*point_leaves, jnp.arange(m, dtype=jnp.int32), *row_arrays)
    split = len(point_leaves)

    def one_block(*chunk):
        rows = _points._rebuild(kernel.rows, chunk[:split])
        block = _block(kernel, rows, chunk[split], cols, col_index)
        return fn(block, *chunk[split + 1 :])

    b = min(kernel.chunk_size, m)
    full, head = m // b, (m // b) * b
    total = None
    if full > 0:
        stacked = tuple(a[:head].reshape(full, b, *a.shape[1:]) for a in leaves)
        first = one_block(*(s[0] for s in stacked))

        def body(acc, chunk):
            return acc + one_block(*chunk), None

        total, _ = jax.lax.scan(body, first, tuple(s[1:] for s in stacked))
    if head < m:
        rest = one_block(*(a[head:] for a in leaves))
        total = rest if total is None else total + rest
    assert total is not None
    return total


def _block(
    sim: Similarity, rows: Points, row_index: jax.Array, cols: Points, col_index: jax.Array
) -> jax.Array:
    """float32 [B, R]: the kernel between row and column points, diagonal exact if square."""
    cross = _points.inner_products(rows, cols).astype(jnp.float32)
    rows_sq = _points.sq_norms(rows).astype(jnp.float32)
    cols_sq = _points.sq_norms(cols).astype(jnp.float32)
    if sim.metric == "cosine":
        denominator = jnp.sqrt(rows_sq)[:, None] * jnp.sqrt(cols_sq)[None, :]
        positive = denominator > 0
        values = jnp.where(positive, cross / jnp.where(positive, denominator, 1.0), 0.0)
        diagonal_value = (rows_sq > 0).astype(jnp.float32)[:, None]
    else:
        sq = _points._from_inner(rows_sq[:, None], cols_sq[None, :], cross)
        values = jnp.exp(-jnp.sqrt(jnp.maximum(sq, 0.0)) / _n_features(rows))
        diagonal_value = jnp.ones((), jnp.float32)
    if sim.square:
        values = jnp.where(row_index[:, None] == col_index[None, :], diagonal_value, values)
    return values


def _check_points(points: Points, name: str) -> None:
    if isinstance(points, OuterProduct):
        if points.left.ndim != 2 or points.right.ndim != 2:
            raise ValueError(f"{name} must be an OuterProduct of two rank-2 arrays")
        return
    if jnp.ndim(points) != 2:
        raise ValueError(f"{name} must be a [N, D] array, got shape {jnp.shape(points)}")
    _checks.finite(points, name)


def _num_points(points: Points) -> int:
    return (points.left if isinstance(points, OuterProduct) else points).shape[0]


def _n_features(points: Points) -> int:
    if isinstance(points, OuterProduct):
        return points.left.shape[1] * points.right.shape[1]
    return points.shape[1]

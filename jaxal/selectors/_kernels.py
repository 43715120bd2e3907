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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _checks
from jaxal._chunks import map_chunks
from jaxal.selectors import _points
from jaxal.selectors._points import OuterProduct, Points

METRICS = ("cosine", "euclidean")

# The most kernel entries one block of an on-the-fly reduction holds (16 MB of float32).
_BLOCK_ENTRIES = 1 << 22


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
        chunk_size: at most this many rows per block when a function reduces over the
            rows for R columns, and at most 2^22 / R (a 16 MB block): such a pass holds one
            [R, rows] block at a time and costs O(M * R * F).
    """

    rows: Points
    cols: Points | None = None
    metric: str = "cosine"
    chunk_size: int = 1024

    @property
    def square(self) -> bool:
        return self.cols is None

    @property
    def shape(self) -> tuple[int, int]:
        m = _num_points(self.rows)
        return m, m if self.cols is None else _num_points(self.cols)


Kernel = jax.Array | Similarity
"""A similarity kernel: a dense float array [M, N] or an on-the-fly :class:`Similarity`.

Functions that need a square kernel need it symmetric (checked outside jit).
"""


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
    sim = prepare_kernel(Similarity(points, others, metric, chunk_size), "points")
    assert isinstance(sim, Similarity)
    cols = sim.rows if sim.cols is None else sim.cols
    n_cols = sim.shape[1]
    col_index = jnp.arange(n_cols, dtype=jnp.int32)

    def one_chunk(*leaves_and_index):
        chunk = _points._rebuild(sim.rows, leaves_and_index[:-1])
        return _block(sim, chunk, leaves_and_index[-1], cols, col_index)

    return map_chunks(one_chunk, *_points._leaves(sim.rows), chunk_size=chunk_size)


class DenseColumns(NamedTuple):
    """A dense kernel stored by columns: ``by_column[j] = K[:, j]``, float32 [N, M].

    Gathering a few columns of a row-major [M, N] array touches one cache line per entry
    (strided reads: about 50 times slower here); rows of this layout are contiguous. A
    symmetric kernel is its own column layout; any other is transposed once.
    """

    by_column: jax.Array


PreparedKernel = Similarity | DenseColumns


def prepare_kernel(
    kernel: Any, name: str = "kernel", square: bool = False, symmetric: bool = False
) -> PreparedKernel:
    """Validate a kernel argument at trace time (ValueError naming ``name``) and prepare it.

    A dense kernel must be a finite floating array [M, N]; with ``square`` it must be
    square and symmetric, with ``symmetric`` symmetric (values are checked outside jit
    only; under jit they are trusted). Any other dense kernel is transposed once: an
    extra M * N copy. A Similarity must have a known metric, a positive chunk size and
    points of equal width.
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
        m, n = kernel.shape
        prepared: PreparedKernel = kernel
    else:
        kernel = jnp.asarray(kernel)
        if kernel.ndim != 2:
            raise ValueError(f"{name} must be a [M, N] array or a Similarity, got {kernel.shape}")
        if not jnp.issubdtype(kernel.dtype, jnp.floating):
            kernel = kernel.astype(jnp.float32)
        _checks.finite(kernel, name)
        m, n = kernel.shape
        symmetric = symmetric or square
        if symmetric and m != n:
            raise ValueError(f"{name} must be square [N, N], got shape ({m}, {n})")
        if symmetric and _checks.is_concrete(kernel):
            host = np.asarray(kernel)
            if not np.allclose(host, host.T, rtol=1e-5, atol=1e-6):
                raise ValueError(f"{name} must be symmetric")
        kernel = kernel.astype(jnp.float32)
        if symmetric:
            prepared = DenseColumns(kernel)
        else:  # materialize the transpose once, outside every loop
            prepared = DenseColumns(jax.lax.optimization_barrier(kernel.T))
    if square and m != n:
        raise ValueError(f"{name} must be square [N, N], got shape ({m}, {n})")
    if m < 1 or n < 1:
        raise ValueError(f"{name} must not be empty, got shape ({m}, {n})")
    return prepared


def kernel_shape(kernel: PreparedKernel) -> tuple[int, int]:
    """(M, N): rows (the points that are represented) and columns (the ground set)."""
    if isinstance(kernel, Similarity):
        return kernel.shape
    return kernel.by_column.shape[1], kernel.by_column.shape[0]


def column(kernel: PreparedKernel, index: jax.Array) -> jax.Array:
    """float32 [M]: K[:, index] for an int scalar ``index``. O(M * F) for a Similarity."""
    if isinstance(kernel, DenseColumns):
        return kernel.by_column[index]
    cols = kernel.rows if kernel.cols is None else kernel.cols
    one = jnp.reshape(index, (1,)).astype(jnp.int32)
    row_index = jnp.arange(kernel.shape[0], dtype=jnp.int32)
    return _block(kernel, _points.gather(cols, one), one, kernel.rows, row_index)[0]


def diagonal(kernel: PreparedKernel) -> jax.Array:
    """float32 [N]: K[j, j] of a square kernel."""
    if isinstance(kernel, DenseColumns):
        return jnp.diagonal(kernel.by_column)
    if kernel.metric == "cosine":
        return (_points.sq_norms(kernel.rows) > 0).astype(jnp.float32)
    return jnp.ones(kernel.shape[0], jnp.float32)


def reduce_columns(
    kernel: PreparedKernel,
    fn: Callable[..., jax.Array],
    row_arrays: tuple[jax.Array, ...],
    columns: jax.Array | None = None,
) -> jax.Array:
    """For every column j in ``columns``, a reduction over its entries K[:, j].

    ``fn(block [R, B], *arrays [B, ...]) -> [R]`` reduces B rows of the R columns
    (block[r, b] = K[row b, columns[r]]: one column per row of the block), with the
    matching rows of the per-row arrays; the results of all row blocks are added. A dense
    kernel is one block (R contiguous rows of its column layout); a :class:`Similarity`
    is computed ``chunk_size`` rows at a time (fewer when R is large: at most 2^22
    entries per block) in a ``lax.scan``: memory O(min(chunk_size * R, 2^22)), work
    O(M * R * F).

    Args:
        kernel: a prepared kernel (``prepare_kernel``).
        fn: the per-block reduction.
        row_arrays: per-row arrays with leading axis M (state, weights).
        columns: int32 [R] column indices, or None for all N columns.

    Returns:
        float32 [R] (R = N when ``columns`` is None).
    """
    if isinstance(kernel, DenseColumns):
        block = kernel.by_column if columns is None else kernel.by_column[columns]
        return fn(block, *row_arrays)
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
        block = _block(kernel, cols, col_index, rows, chunk[split])
        return fn(block, *chunk[split + 1 :])

    b = max(1, min(kernel.chunk_size, m, _BLOCK_ENTRIES // col_index.shape[0]))
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
    sim: Similarity, a: Points, a_index: jax.Array, b: Points, b_index: jax.Array
) -> jax.Array:
    """float32 [A, B]: sim(a_i, b_j), with the exact diagonal where a square kernel has one.

    ``a_index`` and ``b_index`` are the positions of the points in the kernel, which are
    compared only for a square kernel (where both sides index the same points).
    """
    if sim.metric == "cosine":  # normalize the points, not the [A, B] entries
        values = _points.inner_products(_unit(a), _unit(b)).astype(jnp.float32)
        diagonal_value = (_points.sq_norms(a) > 0).astype(jnp.float32)[:, None]
    else:
        a_sq = _points.sq_norms(a).astype(jnp.float32)
        b_sq = _points.sq_norms(b).astype(jnp.float32)
        cross = _points.inner_products(a, b).astype(jnp.float32)
        sq = _points._from_inner(a_sq[:, None], b_sq[None, :], cross)
        values = jnp.exp(-jnp.sqrt(jnp.maximum(sq, 0.0)) / _n_features(a))
        diagonal_value = jnp.ones((), jnp.float32)
    if sim.square:
        values = jnp.where(a_index[:, None] == b_index[None, :], diagonal_value, values)
    return values


def _unit(points: Points) -> Points:
    """The points scaled to unit norm; a zero point stays zero."""
    if isinstance(points, OuterProduct):  # ||a (x) h|| = ||a|| ||h||
        return OuterProduct(_unit_rows(points.left), _unit_rows(points.right))
    return _unit_rows(points)


def _unit_rows(array: jax.Array) -> jax.Array:
    norms = jnp.sqrt(jnp.sum(array * array, axis=1, keepdims=True))
    return array / jnp.where(norms > 0, norms, 1.0)


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

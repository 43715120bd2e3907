"""Similarity kernels from embeddings, as submodlib and DISTIL define them.

Three metrics, with F the number of features (D for a plain [N, D] array, C * D for an
:class:`~jaxal.selectors.OuterProduct`):

* ``"cosine"``: K_ij = <x_i, y_j> / (||x_i|| ||y_j||), and 0 when either norm is 0. No
  shift to [0, 1]: signed features give negative similarities.
* ``"euclidean"``: K_ij = exp(-||x_i - y_j|| / F), the distance *not* squared.
* ``"gaussian"`` (RBF, with a ``bandwidth`` h > 0): K_ij = exp(-||x_i - y_j||^2 / h^2),
  the kernel of MaxHerding and UHerding (Bae et al. 2024, 2025; their reference code's
  ``RBFKernel`` with h = ``delta``). scikit-learn's and scikit-activeml's
  ``rbf`` kernel exp(-gamma ||x - y||^2) is the same kernel for gamma = 1 / h^2. Not in
  :data:`METRICS` (the parameter-free names a strategy's ``metric=`` takes): only a
  :class:`Similarity` or :func:`similarity_kernel` given a ``bandwidth`` computes it.

A square kernel (one point set) has an exact diagonal: 1 for a nonzero point, 0 for a
zero point under ``"cosine"`` (submodlib's all-pairs kernel, DISTIL's K2), and 1 under
``"euclidean"`` and ``"gaussian"``. DISTIL's K1 forces the cosine diagonal to 1 even for a
zero point (one line on top of these kernels, in the strategies). Its SMI / SCG / SCMI
kernels (K3) are mapped by K <- (K + 1) / 2 and scaled per block (query columns by eta,
private ones by nu): a :class:`Similarity` does both on the fly (``shift``,
``block_scales``).

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
from jaxal._points import OuterProduct, Points
from jaxal.selectors import _points

METRICS = ("cosine", "euclidean")
"""The parameter-free metrics, the values of a strategy's ``metric=``."""

KERNEL_METRICS = (*METRICS, "gaussian")
"""Every metric a :class:`Similarity` computes (``"gaussian"`` needs a ``bandwidth``)."""

STORED_KERNEL_MAX_POINTS = 16_384
"""The largest square kernel that is stored by default (N^2 = 2^28 float32 entries, 1 GB):
computed once and held, where a larger one is evaluated on the fly. Greedy loops re-read
columns many times, and a stored column costs a read where one on the fly costs
O(N * F) arithmetic."""

# The most kernel entries one block holds (16 MB of float32).
_BLOCK_ENTRIES = 1 << 22
# Blocks of an on-the-fly kernel have a multiple of this many rows when they have more: a
# row count that is not a multiple of 8 slows XLA's CPU dot.
_ROW_ALIGN = 16


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=("rows", "cols", "row_blocks", "col_blocks", "bandwidth"),
    meta_fields=("metric", "chunk_size", "shift", "block_scales", "normalized"),
)
@dataclasses.dataclass(frozen=True)
class Similarity:
    """The kernel K[i, j] = sim(rows[i], cols[j]), computed on demand, never stored.

    A pytree (the points and block ids are leaves; ``metric``, ``chunk_size``, ``shift``
    and ``block_scales`` are static), so it can be passed through ``jax.jit``.

    With ``shift`` and ``block_scales`` the entry is

        K[i, j] = block_scales[row_blocks[i]][col_blocks[j]] * (sim(rows[i], cols[j]) + 1) / 2

    (DISTIL's K3 kernels of the SIMILAR measures: the pool, query and private points in
    one kernel, each block scaled by its own factor). Without them it is sim(...) itself.

    Attributes:
        rows: M points, a float [M, D] array or an ``OuterProduct``.
        cols: N points in the same representation, or None for the square kernel of
            ``rows`` (M = N, exact diagonal: see the module docstring).
        metric: ``"cosine"``, ``"euclidean"`` or ``"gaussian"``.
        chunk_size: at most this many rows per block when a function reduces over the
            rows for R columns (or fills a dense kernel of R columns), and at most
            2^22 / R (a 16 MB block); the M rows are cut into blocks of equal size (a
            multiple of 16 rows when more than 16, so a few rows over): such a pass
            holds one [rows, R] block at a time and costs O(M * R * F). The default
            2,048 rows runs such passes faster on CPU than 1,024 (fewer, larger blocks).
        shift: map every entry (diagonal included) by K <- (K + 1) / 2.
        row_blocks: int [M], the block of every row (default all 0); a square kernel uses
            it for the columns too.
        col_blocks: int [N], the block of every column (default all 0); None for a square
            kernel.
        block_scales: None, or a [row blocks][column blocks] table of factors (Python
            floats; symmetric for a square kernel) applied after the shift.
        normalized: the points are unit vectors already (or zero), so the cosine
            kernel is their inner product. ``prepare_kernel`` normalizes the points of a
            cosine Similarity once and sets it, so that no block normalizes them again.
        bandwidth: h > 0, a float scalar (traced under jit: it may be computed from the
            data), for ``"gaussian"`` only (required there, None otherwise).
    """

    rows: Points
    cols: Points | None = None
    metric: str = "cosine"
    chunk_size: int = 2048
    shift: bool = False
    row_blocks: jax.Array | None = None
    col_blocks: jax.Array | None = None
    block_scales: tuple[tuple[float, ...], ...] | None = None
    normalized: bool = False
    bandwidth: jax.Array | float | None = None

    def __post_init__(self) -> None:
        if self.block_scales is not None:  # hashable: it is static
            table = tuple(tuple(float(v) for v in row) for row in self.block_scales)
            object.__setattr__(self, "block_scales", table)

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
    chunk_size: int = 2048,
    bandwidth: jax.Array | float | None = None,
) -> jax.Array:
    """The dense kernel K[i, j] = sim(points[i], others[j]) (see the module docstring).

    Memory: the float32 [N, M] result, plus one block of at most 2^22 entries (or one
    row) at a time.

    Args:
        points: N points, float [N, D] or an ``OuterProduct``.
        others: M points in the same representation, or None for the square kernel of
            ``points`` (exact diagonal: 1, or 0 for a zero point under cosine).
        metric: ``"cosine"``, ``"euclidean"`` or ``"gaussian"``.
        chunk_size: at most this many rows computed per block.
        bandwidth: h > 0, with ``"gaussian"`` only: K = exp(-||x - y||^2 / h^2).

    Returns:
        float32 [N, M].
    """
    # Prepared here so that errors name the argument, not "kernel" (and the points are
    # normalized once: dense_kernel finds them prepared).
    sim = Similarity(points, others, metric, chunk_size, bandwidth=bandwidth)
    prepared = prepare_kernel(sim, "points")
    assert isinstance(prepared, Similarity)
    return dense_kernel(prepared)


def dense_kernel(sim: Similarity) -> jax.Array:
    """Every entry of a :class:`Similarity` (shift and block scales included), stored.

    The [M, N] result is filled a block of rows at a time (blocks of equal size, about
    min(``chunk_size``, 2^22 / N) rows), in place (a ``dynamic_update_slice`` per block in
    a ``fori_loop`` over the first block padded with zeros; the last block overlaps the
    one before when B does not divide M): peak memory is the result plus one [B, N] block,
    never a second copy. Work O(M * N * F). (Filling only the upper triangle of a square
    kernel and mirroring it halves the arithmetic but is slower on CPU: the transposed
    writes cost more than the saved products.)

    Returns:
        float32 [M, N].
    """
    prepared = prepare_kernel(sim, "kernel")
    assert isinstance(prepared, Similarity)
    sim = prepared
    m, n = sim.shape
    cols = sim.rows if sim.cols is None else sim.cols
    col_index = jnp.arange(n, dtype=jnp.int32)
    rows = _points._leaves(sim.rows)
    b = _rows_per_block(sim, n)

    def block_at(start):
        chunk = tuple(jax.lax.dynamic_slice_in_dim(leaf, start, b) for leaf in rows)
        chunk_points = _points._rebuild(sim.rows, chunk)
        return _block(sim, chunk_points, start, cols, col_index, all_columns=True)

    def fill(i, out):
        start = jnp.minimum(i * b, m - b)
        return jax.lax.dynamic_update_slice(out, block_at(start), (start, 0))

    # The loop starts from the first block padded with zeros: a zero-filled start (a
    # broadcast) is copied by XLA before the loop writes into it, a second M x N buffer.
    first = jnp.pad(block_at(0), ((0, m - b), (0, 0)))
    return jax.lax.fori_loop(1, -(-m // b), fill, first)


class DenseColumns(NamedTuple):
    """A dense kernel stored by columns: ``by_column[j] = K[:, j]``, float32 [N, M].

    Gathering a few columns of a row-major [M, N] array touches one cache line per entry
    (strided reads, far slower than contiguous ones); rows of this layout are contiguous. A
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
        _checks.one_of(kernel.metric, KERNEL_METRICS, "metric")
        _check_bandwidth(kernel, name)
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
        _check_blocks(kernel, name)
        if kernel.metric == "cosine" and not kernel.normalized:  # once, not per block
            cols = None if kernel.cols is None else _unit(kernel.cols)
            kernel = dataclasses.replace(
                kernel, rows=_unit(kernel.rows), cols=cols, normalized=True
            )
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
        if symmetric:
            _checks.require(
                kernel,
                lambda xp, k: xp.allclose(k, k.T, rtol=1e-5, atol=1e-6),
                f"{name} must be symmetric",
            )
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
    return _block(kernel, kernel.rows, 0, _points.gather(cols, one), one)[:, 0]


def diagonal(kernel: PreparedKernel) -> jax.Array:
    """float32 [N]: K[j, j] of a square kernel."""
    if isinstance(kernel, DenseColumns):
        return jnp.diagonal(kernel.by_column)
    return _diagonal_at(kernel, kernel.rows, jnp.arange(kernel.shape[0], dtype=jnp.int32))


def reduce_columns(
    kernel: PreparedKernel,
    contribution: Callable[..., jax.Array],
    row_arrays: tuple[jax.Array, ...],
    columns: jax.Array | None = None,
) -> jax.Array:
    """For every column j in ``columns``: sum_i contribution(K[i, j], a[i], ...).

    ``contribution(entries, *rows)`` is elementwise: ``entries`` is a block of kernel
    entries and ``rows`` the matching values of the per-row arrays, shaped to broadcast
    against it. The kernel's rows lie along axis 1 of a dense kernel's block (its column
    layout: [R, M], one column per row) and of a :class:`Similarity`'s block for R > B
    ([R, B]), along axis 0 of a :class:`Similarity`'s block for R <= B ([B, R]). A dense
    kernel is one block for all columns, else its selected columns gathered at most 2^22
    entries at a time; a :class:`Similarity` is computed in blocks of B rows (about
    ``chunk_size``, fewer when R is large: at most 2^22 entries per block) in a
    ``lax.scan`` over dynamic slices of the rows (no stacked copy): memory
    O(min(chunk_size * R, 2^22)), work O(M * R * F).

    Args:
        kernel: a prepared kernel (``prepare_kernel``).
        contribution: the elementwise contribution of an entry.
        row_arrays: per-row arrays, float [M] each (state, weights).
        columns: int32 [R] column indices, or None for all N columns.

    Returns:
        float32 [R] (R = N when ``columns`` is None).
    """
    if isinstance(kernel, DenseColumns):

        def reduce_block(block):  # [R, M]: the kernel's rows along axis 1
            rows = (a[None, :] for a in row_arrays)
            return jnp.sum(contribution(block, *rows), axis=1)

        if columns is None:
            return reduce_block(kernel.by_column)
        return _reduce_gathered(kernel.by_column, reduce_block, columns)
    m, n = kernel.shape
    cols = kernel.rows if kernel.cols is None else kernel.cols
    if columns is None:
        col_index = jnp.arange(n, dtype=jnp.int32)
    else:
        col_index = columns.astype(jnp.int32)
        cols = _points.gather(cols, col_index)
    point_leaves = _points._leaves(kernel.rows)
    leaves = (*point_leaves, *row_arrays)
    split = len(point_leaves)

    b = _rows_per_block(kernel, col_index.shape[0])
    # The kernel's rows along axis 0 ([B, R]) for a few columns, along axis 1 ([R, B])
    # for many: each is the faster orientation on CPU where it is used (R <= B: a slice
    # of a lazy or stochastic step; R > B: a full pass).
    axis = 0 if col_index.shape[0] <= b else 1

    def one_block(start, counted=0):
        chunk = tuple(jax.lax.dynamic_slice_in_dim(a, start, b) for a in leaves)
        rows = _points._rebuild(kernel.rows, chunk[:split])
        block = _block(
            kernel, rows, start, cols, col_index, all_columns=columns is None, transposed=axis == 1
        )
        values = contribution(block, *(jnp.expand_dims(a, 1 - axis) for a in chunk[split:]))
        if counted:  # the first rows of an overlapping last block were summed already
            fresh = jnp.expand_dims(jnp.arange(b) >= counted, 1 - axis)
            values = jnp.where(fresh, values, 0.0)
        return jnp.sum(values, axis=axis)

    def body(acc, start):
        return acc + one_block(start), None

    full = m // b
    total, _ = jax.lax.scan(body, one_block(0), jnp.arange(1, full, dtype=jnp.int32) * b)
    if full * b < m:  # one more block of b rows, ending at the last row
        total = total + one_block(m - b, counted=full * b - (m - b))
    return total


def _rows_per_block(sim: Similarity, columns: int) -> int:
    """Rows B of every [B, ``columns``] block of ``sim``: the M rows cut into as few blocks
    of equal size as min(chunk_size, 2^22 / columns) rows allow, B rounded up to a multiple
    of 16 when larger (at most M). Equal blocks share one compiled block computation (a
    short last block would be a second one)."""
    m = sim.shape[0]
    most = max(1, min(sim.chunk_size, _BLOCK_ENTRIES // columns))
    b = -(-m // -(-m // most))
    return min(m, -(-b // _ROW_ALIGN) * _ROW_ALIGN) if b > _ROW_ALIGN else b


def _reduce_gathered(
    by_column: jax.Array,
    reduce_block: Callable[[jax.Array], jax.Array],
    columns: jax.Array,
    max_entries: int = _BLOCK_ENTRIES,
) -> jax.Array:
    """``reduce_block`` ([G, M] -> [G]) over the gathered columns [R, M] of a column
    layout, in groups of at most ``max_entries`` entries (one gather per group: cheaper on
    CPU than a dynamic slice per column)."""
    r, m = columns.shape[0], by_column.shape[1]
    group = max(1, min(r, max_entries // m))

    def reduce_group(cols):
        return reduce_block(jnp.take(by_column, cols, axis=0, mode="clip"))

    if group == r:
        return reduce_group(columns)
    groups = -(-r // group)
    padded = jnp.pad(columns, (0, groups * group - r))  # column 0 fills the last group
    return jax.lax.map(reduce_group, padded.reshape(groups, group)).reshape(-1)[:r]


def _block(
    sim: Similarity,
    rows: Points,
    row_start: jax.Array | int,
    cols: Points,
    col_index: jax.Array,
    *,
    all_columns: bool = False,
    transposed: bool = False,
) -> jax.Array:
    """float32 [B, R] (or [R, B] when ``transposed``): K[row_start + b, col_index[r]].

    ``sim`` is prepared (``prepare_kernel``: cosine points are unit vectors already);
    ``rows`` are the B consecutive kernel rows from ``row_start`` on, ``cols`` the points
    of the R kernel columns ``col_index`` (``all_columns``: every column in order, R = N).
    The entries are computed, shifted and scaled elementwise; then a square kernel's
    diagonal entries in the block are set to their exact values by a scatter: of the R
    columns' entries, or with ``all_columns`` and R > B of the B rows' (entry
    (b, row_start + b)): B or R writes per block. Comparing all B * R entries instead
    costs a sizeable share of the block, and scattering over all N columns per block of a
    full pass more.
    """
    b, r = _num_points(rows), col_index.shape[0]
    first, second = (cols, rows) if transposed else (rows, cols)
    if sim.metric == "cosine":  # the points were normalized once, not the entries
        assert sim.normalized, "_block needs a prepared Similarity"
        values = _points.inner_products(first, second).astype(jnp.float32)
    else:
        first_sq = _points.sq_norms(first).astype(jnp.float32)
        second_sq = _points.sq_norms(second).astype(jnp.float32)
        cross = _points.inner_products(first, second).astype(jnp.float32)
        sq = _points._from_inner(first_sq[:, None], second_sq[None, :], cross)
        if sim.metric == "gaussian":
            values = gaussian(sq, sim.bandwidth)
        else:
            values = jnp.exp(-jnp.sqrt(jnp.maximum(sq, 0.0)) / _n_features(first))
    if sim.shift:
        values = 0.5 * (values + 1.0)
    if sim.block_scales is not None:
        scale = _block_scale(sim, row_start + jnp.arange(b, dtype=jnp.int32), col_index)
        values = values * (scale.T if transposed else scale)
    if not sim.square:
        return values
    if all_columns and r > b:  # the diagonal of these rows: (i, row_start + i)
        row_at = jnp.arange(b, dtype=jnp.int32)
        col_at = row_start + row_at
        exact = _diagonal_at(sim, rows, col_at)
    else:  # the columns whose index falls among these rows
        row_at = col_index - row_start
        row_at = jnp.where((row_at >= 0) & (row_at < b), row_at, b)  # b: outside, dropped
        col_at = jnp.arange(r, dtype=jnp.int32)
        exact = _diagonal_at(sim, cols, col_index)
    at = (col_at, row_at) if transposed else (row_at, col_at)
    return values.at[at].set(exact, mode="drop")


def _diagonal_at(sim: Similarity, points: Points, index: jax.Array) -> jax.Array:
    """float32 [P]: K[i, i] of a square kernel for its points ``points`` at ``index``: 1,
    or 0 for a zero point under cosine, then shifted and scaled."""
    if sim.metric == "cosine":
        values = (_points.sq_norms(points) > 0).astype(jnp.float32)
    else:
        values = jnp.ones(index.shape, jnp.float32)
    if sim.shift:
        values = 0.5 * (values + 1.0)
    if sim.block_scales is not None:
        blocks = _blocks(sim.row_blocks, sim.shape[0])[index]
        values = values * jnp.diagonal(jnp.asarray(sim.block_scales, jnp.float32))[blocks]
    return values


def gaussian(sq_distances: jax.Array, bandwidth: jax.Array | float | None) -> jax.Array:
    """float32: the Gaussian kernel exp(-d^2 / h^2) of squared distances d^2 (negative
    rounding errors count as 0). Decreasing in d^2: the largest kernel value over a set
    is the value at the smallest squared distance."""
    h = jnp.asarray(bandwidth, jnp.float32)
    return jnp.exp(-jnp.maximum(sq_distances, 0.0).astype(jnp.float32) / (h * h))


def _check_bandwidth(sim: Similarity, name: str) -> None:
    """A ``"gaussian"`` Similarity has a positive scalar bandwidth; others none."""
    if sim.metric != "gaussian":
        if sim.bandwidth is not None:
            raise ValueError(f"{name}: bandwidth applies to metric='gaussian' only")
        return
    if sim.bandwidth is None:
        raise ValueError(f"{name}: metric='gaussian' needs a bandwidth h > 0")
    if jnp.ndim(sim.bandwidth) != 0:
        raise ValueError(f"{name}.bandwidth must be a scalar, got shape {jnp.shape(sim.bandwidth)}")
    _checks.require(
        sim.bandwidth,
        lambda xp, h: xp.isfinite(h) & (h > 0),
        f"{name}.bandwidth must be finite and > 0, got {{}}",
        lambda xp, h: h,
    )


def _block_scale(sim: Similarity, row_index: jax.Array, col_index: jax.Array) -> jax.Array:
    """float32 [B, R] (or broadcastable): block_scales[block of row i, block of column j].

    A side without block ids is block 0 (one table row or column, broadcast); otherwise
    the table lookup is a [B, blocks] gather times a one-hot [blocks, R]: no per-entry
    gather.
    """
    assert sim.block_scales is not None
    table = jnp.asarray(sim.block_scales, jnp.float32)  # [row blocks, col blocks]
    row_blocks = sim.row_blocks
    col_blocks = sim.row_blocks if sim.square else sim.col_blocks
    if row_blocks is None and col_blocks is None:
        return table[0, 0]
    if row_blocks is None:
        return table[0][jnp.asarray(col_blocks)[col_index]][None, :]
    per_row = table[jnp.asarray(row_blocks)[row_index]]  # [B, column blocks]
    if col_blocks is None:
        return per_row[:, :1]
    one_hot = jax.nn.one_hot(jnp.asarray(col_blocks)[col_index], table.shape[1], dtype=jnp.float32)
    return per_row @ one_hot.T


def _blocks(blocks: jax.Array | None, size: int) -> jax.Array:
    """int32 [size]: the block ids, or all 0 when there are none."""
    if blocks is None:
        return jnp.zeros((size,), jnp.int32)
    return jnp.asarray(blocks).astype(jnp.int32)


def _check_blocks(sim: Similarity, name: str) -> None:
    """Validate the shift, block ids and block scales of a Similarity (ValueError)."""
    if not isinstance(sim.shift, bool):
        raise TypeError(f"{name}.shift must be a bool, got {type(sim.shift).__name__}")
    m, n = sim.shape
    if sim.block_scales is None:
        if sim.row_blocks is not None or sim.col_blocks is not None:
            raise ValueError(f"{name}: row_blocks / col_blocks need block_scales")
        return
    table = np.asarray(sim.block_scales, np.float64)
    if table.ndim != 2 or table.size == 0:
        raise ValueError(f"{name}.block_scales must be a non-empty table, got {sim.block_scales}")
    if not np.all(np.isfinite(table)):
        raise ValueError(f"{name}.block_scales must be finite")
    if sim.square:
        if sim.col_blocks is not None:
            raise ValueError(f"{name}: a square kernel takes row_blocks only (no col_blocks)")
        if table.shape[0] != table.shape[1] or not np.array_equal(table, table.T):
            raise ValueError(f"{name}.block_scales of a square kernel must be symmetric")
    for blocks, size, count, side in (
        (sim.row_blocks, m, table.shape[0], "row_blocks"),
        (sim.col_blocks, n, table.shape[1], "col_blocks"),
    ):
        if blocks is None:
            continue
        if jnp.shape(blocks) != (size,) or not jnp.issubdtype(jnp.result_type(blocks), jnp.integer):
            raise ValueError(
                f"{name}.{side} must be int [{size}], got {jnp.result_type(blocks)} "
                f"{jnp.shape(blocks)}"
            )
        if sim.square and side == "row_blocks":
            count = table.shape[0]
        if size:
            _checks.require(
                blocks,
                _all_below(count),
                f"{name}.{side} must lie in [0, {count}) (the table's size)",
            )


def stored_by_default(n: int) -> bool:
    """Whether a square kernel over ``n`` points is stored by default
    (``n <= STORED_KERNEL_MAX_POINTS``)."""
    return n <= STORED_KERNEL_MAX_POINTS


def _all_below(count: int) -> Callable[[Any, Any], Any]:
    """The check ``0 <= entries < count`` for :func:`jaxal._checks.require`."""
    return lambda xp, a: (a.min() >= 0) & (a.max() < count)


def _unit(points: Points) -> Points:
    """The points scaled to unit norm; a zero point stays zero."""
    if isinstance(points, OuterProduct):  # ||a (x) h|| = ||a|| ||h||
        return OuterProduct(_unit_rows(points.left), _unit_rows(points.right))
    return _unit_rows(points)


def _unit_rows(array: jax.Array) -> jax.Array:
    array = array.astype(_points.computation_dtype(array))
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

"""Submodular (and two non-submodular) set functions as :class:`SubmodularFn` pure functions.

Every factory takes its data (a kernel or features) and keyword-only hyperparameters and
returns a :class:`SubmodularFn` over the N columns of the kernel (rows of the features).
Call factories inside the jitted function, so the data are traced arguments.

Definitions follow submodlib (DISTIL's backend), except sum redundancy, which submodlib
lacks and apricot defines. Notation: K the kernel, V the ground set (``ground``, all
elements by default), S the selected set, d_ij = 1 - K_ij.

* facility_location: sum_{i in V} w_i [min(max(l_i, max_{j in S} K_ij), c_i) - min(l_i, c_i)]
  with a floor l (default 0), a cap c (default +inf) and a weight w >= 0 (default 1) per
  row. Monotone submodular.
* graph_cut: sum_{i in V, j in S} K_ij - lambda sum_{i, j in S} K_ij. Submodular; monotone
  while lambda is small enough for every gain to stay >= 0.
* saturated_coverage: sum_{i in V} min(sum_{j in S} K_ij, alpha sum_{j in V} K_ij).
  Monotone submodular.
* sum_redundancy: -sum_{i, j in S} K_ij. Submodular, gains <= 0 (never monotone).
* feature_based: sum_f w_f g(sum_{j in S} X_jf), g concave, X >= 0. Monotone submodular.
* log_determinant: log det(K_S + lambda I). Submodular for a positive semi-definite K;
  monotone when lambda >= 1.
* disparity_sum: sum_{i < j in S} d_ij. Not submodular (supermodular for K <= 1).
* disparity_min: min(1, min_{i != j in S} d_ij), 0 when |S| < 2. Not submodular.

The sums over pairs "i, j in S" run over ordered pairs including i = j. Graph cut, sum
redundancy and saturated coverage are submodular for a non-negative kernel; a signed
cosine kernel breaks that (and lazy greedy's exactness) without an error.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal.selectors.submodular import kernels as _kernels
from jaxal.selectors.submodular._arguments import ground_mask, memo_outside_ground, row_vector
from jaxal.selectors.submodular.greedy import Insert, SubmodularFn
from jaxal.selectors.submodular.kernels import Kernel

CONCAVE_FUNCTIONS = ("sqrt", "log", "inverse")


class FacilityLocationState(NamedTuple):
    """best: float32 [M], max(l_i, max_{j in S} K_ij) per row of V; +inf outside V."""

    best: jax.Array


class ModularState(NamedTuple):
    """gains: float32 [N], the current marginal gain of every element (kept exactly)."""

    gains: jax.Array


class SaturatedCoverageState(NamedTuple):
    """cover: float32 [M], sum_{j in S} K_ij (+inf outside V); cap: float32 [M],
    alpha sum_{j in V} K_ij."""

    cover: jax.Array
    cap: jax.Array


class FeatureBasedState(NamedTuple):
    """totals: float32 [F], sum_{j in S} X_jf."""

    totals: jax.Array


class LogDeterminantState(NamedTuple):
    """Incremental Cholesky factor of K_S + lambda I, in the rows of every element.

    Attributes:
        n_picked: int32, |S|.
        factors: float32 [capacity, N], row t = the t-th Cholesky column, for every
            element (L^-1 k_{S, e} stacked over the picks).
        residual: float32 [N], K_ee + lambda - ||factors[:, e]||^2, the Schur complement
            whose log is the gain of e.
    """

    n_picked: jax.Array
    factors: jax.Array
    residual: jax.Array


class DisparityMinState(NamedTuple):
    """The pairwise minimum so far and every element's distance to S.

    Attributes:
        n_picked: int32, |S|.
        current: float32, min(1, min_{i != j in S} d_ij); 1 while |S| < 2.
        nearest: float32 [N], min_{j in S} d_ej; +inf for S = {}.
    """

    n_picked: jax.Array
    current: jax.Array
    nearest: jax.Array


def facility_location(
    kernel: Kernel,
    *,
    ground: jax.Array | None = None,
    symmetric: bool = False,
    floor: jax.Array | None = None,
    cap: jax.Array | None = None,
    weights: jax.Array | None = None,
) -> SubmodularFn:
    """Facility location: f(S) = sum_{i in V} w_i [min(m_i(S), c_i) - min(l_i, c_i)] with
    the memo m_i(S) = max(l_i, max_{j in S} K_ij).

    The rows i of K are the points to represent (V, masked by ``ground``), the columns j
    the elements to choose from; a rectangular kernel represents one set by another. With
    the defaults (floor l = 0, no cap) this is submodlib's and apricot's
    sum_{i in V} max(0, max_{j in S} K_ij): negative similarities count as 0. A floor
    l_i = max_{p in P} K_ip gives the conditional gain f(S | P); a cap
    c_i = max_{q in Q} K_iq the mutual information I(S; Q); both (c >= l) I(S; Q | P):
    the closed forms of SIMILAR's facility-location measures. Row weights w_i >= 0 weigh
    the points to represent (UHerding's uncertainty coverage: w = the model's
    uncertainty). Monotone submodular for any kernel, floor, cap and weights >= 0.

    Gain: sum_{i in V} w_i max(0, min(K_ie, c_i) - min(m_i, c_i)).
    Cost: a full gain pass is O(M * N) for a dense kernel, O(M * N * F) for a Similarity
    (a block of rows at a time); ``gains_at`` over R elements is O(M * R) or
    O(M * R * F); an update is one column. Memory: the kernel if dense (M * N floats,
    twice unless ``symmetric``: the kernel is transposed once so that its columns are
    contiguous), else one block of at most 2^22 entries during a pass; plus O(M) state.

    Args:
        kernel: float [M, N] (rows: the represented points; columns: the elements) or a
            Similarity.
        ground: bool [M], the rows in V (default all).
        symmetric: a dense kernel is square and symmetric (e.g. ``similarity_kernel(x)``),
            so it is its own column layout: no transposed copy. Checked outside jit;
            ignored for a Similarity.
        floor: float [M], l (default 0).
        cap: float [M], c (default +inf).
        weights: float [M], w >= 0 (default 1; checked outside jit). A weight multiplies
            each entry's contribution: one more multiply per kernel entry of a pass.

    Returns:
        A :class:`SubmodularFn` over the N columns.
    """
    prepared = _kernels.prepare_kernel(kernel, symmetric=symmetric)
    m, n = _kernels.kernel_shape(prepared)
    low = jnp.zeros((m,), jnp.float32) if floor is None else row_vector(floor, m, "floor")
    low = jnp.where(ground_mask(ground, m), low, jnp.inf)  # rows outside V never gain
    weight = None if weights is None else row_vector(weights, m, "weights")
    if weight is not None:
        _checks.require(weight, lambda xp, w: xp.all(w >= 0), "weights must be >= 0")

    if cap is None and weight is None:  # one row vector per pass: the plain memo

        def gains_at(state, indices):
            return _kernels.reduce_columns(prepared, _gains_over_memo, (state.best,), indices)

    elif cap is None:

        def gains_at(state, indices):
            rows = (state.best, weight)
            return _kernels.reduce_columns(prepared, _weighted_gains_over_memo, rows, indices)

    else:
        high = row_vector(cap, m, "cap")
        w = jnp.ones((m,), jnp.float32) if weight is None else weight
        contribution = _capped_gains_over_memo if weight is None else _weighted_capped_gains

        def gains_at(state, indices):
            rows = (jnp.minimum(state.best, high), high)
            if weight is not None:
                rows = (*rows, w)
            return _kernels.reduce_columns(prepared, contribution, rows, indices)

    def update(state, index):
        return FacilityLocationState(jnp.maximum(state.best, _kernels.column(prepared, index)))

    return SubmodularFn(
        "facility_location",
        n,
        {"symmetric": symmetric},
        lambda capacity: FacilityLocationState(low),
        lambda state: gains_at(state, None),
        gains_at,
        update,
    )


def graph_cut(kernel: Kernel, *, lambda_: float, ground: jax.Array | None = None) -> SubmodularFn:
    """Graph cut: f(S) = sum_{i in V, j in S} K_ij - lambda sum_{i, j in S} K_ij.

    submodlib's GraphCut (DISTIL's ``lambda_val``). apricot's GraphCutSelection with
    ``alpha`` is alpha times this with lambda = 1 / alpha: the same greedy picks.
    Submodular for a non-negative kernel; monotone while every gain stays >= 0 (small
    lambda).

    Gain: sum_{i in V} K_ie - lambda (K_ee + 2 sum_{j in S} K_je) (K symmetric).
    Cost: ``init`` sums the columns once, O(N^2) dense or O(N^2 * F) on the fly; then the
    gains are an O(N) state and an update is one column (O(N) or O(N * F)). Memory O(N)
    beyond a dense kernel.

    Args:
        kernel: symmetric float [N, N] or a square Similarity.
        lambda_: the redundancy weight, >= 0.
        ground: bool [N], the elements in V for the coverage term (default all).

    Returns:
        A :class:`SubmodularFn` over the N columns of the kernel.
    """
    prepared = _kernels.prepare_kernel(kernel, square=True)
    n = _kernels.kernel_shape(prepared)[1]
    lambda_ = _checks.nonnegative_float(lambda_, "lambda_")
    weights = ground_mask(ground, n).astype(jnp.float32)

    def init(capacity):
        del capacity
        coverage = _kernels.reduce_columns(prepared, _weighted_sum, (weights,))
        return ModularState(coverage - lambda_ * _kernels.diagonal(prepared))

    def update(state, index):
        return ModularState(state.gains - 2.0 * lambda_ * _kernels.column(prepared, index))

    return _modular_fn("graph_cut", n, {"lambda_": lambda_}, init, update)


def saturated_coverage(
    kernel: Kernel, *, alpha: float = 0.1, ground: jax.Array | None = None
) -> SubmodularFn:
    """Saturated coverage: f(S) = sum_{i in V} min(sum_{j in S} K_ij, alpha sum_{j in V} K_ij).

    submodlib's and apricot's definition (apricot's default alpha = 0.1). Monotone
    submodular for a non-negative kernel.

    Gain: sum_{i in V} [min(c_i, s_i + K_ie) - min(c_i, s_i)] with s_i = sum_{j in S} K_ij
    and c_i = alpha sum_{j in V} K_ij.
    Cost and memory as facility location (an O(N^2) or O(N^2 * F) pass per full gain
    evaluation), plus one O(N^2) pass in ``init`` for the caps.

    Args:
        kernel: symmetric float [N, N] or a square Similarity.
        alpha: the saturation fraction, > 0.
        ground: bool [N], V for both sums (default all).

    Returns:
        A :class:`SubmodularFn` over the N columns of the kernel.
    """
    prepared = _kernels.prepare_kernel(kernel, square=True)
    n = _kernels.kernel_shape(prepared)[1]
    alpha = _checks.positive_float(alpha, "alpha")
    ground = ground_mask(ground, n)
    weights = ground.astype(jnp.float32)

    def coverage_gain(entries, cover, cap):
        return jnp.minimum(cap, cover + entries) - jnp.minimum(cap, cover)

    def init(capacity):
        del capacity
        cap = alpha * _kernels.reduce_columns(prepared, _weighted_sum, (weights,))
        return SaturatedCoverageState(memo_outside_ground(ground), cap)

    def gains_at(state, indices):
        rows = (state.cover, state.cap)
        return _kernels.reduce_columns(prepared, coverage_gain, rows, indices)

    def update(state, index):
        return state._replace(cover=state.cover + _kernels.column(prepared, index))

    return SubmodularFn(
        "saturated_coverage",
        n,
        {"alpha": alpha},
        init,
        lambda state: gains_at(state, None),
        gains_at,
        update,
    )


def sum_redundancy(kernel: Kernel) -> SubmodularFn:
    """Sum redundancy: f(S) = -sum_{i, j in S} K_ij (ordered pairs, i = j included).

    apricot's SumRedundancySelection, without its constant sum_{i, j in V} K_ij (it does
    not change the gains). Submodular for a non-negative kernel, never monotone: every
    gain is <= 0 and the greedy picks the least redundant element.

    Gain: -(K_ee + 2 sum_{j in S} K_je) (K symmetric).
    Cost: O(N) gains from the state; an update is one column. Memory O(N).

    Args:
        kernel: symmetric float [N, N] or a square Similarity.

    Returns:
        A :class:`SubmodularFn` over the N columns of the kernel.
    """
    prepared = _kernels.prepare_kernel(kernel, square=True)
    n = _kernels.kernel_shape(prepared)[1]

    def init(capacity):
        del capacity
        return ModularState(-_kernels.diagonal(prepared))

    def update(state, index):
        return ModularState(state.gains - 2.0 * _kernels.column(prepared, index))

    return _modular_fn("sum_redundancy", n, {}, init, update)


def feature_based(
    features: jax.Array, *, concave: str = "log", weights: jax.Array | None = None
) -> SubmodularFn:
    """Feature based: f(S) = sum_f w_f g(sum_{j in S} X_jf) over non-negative features.

    g is ``"sqrt"``, ``"log"`` (log(1 + x), submodlib's and DISTIL's default) or
    ``"inverse"`` (1 - 1 / (1 + x)). Monotone submodular. submodlib min-max scales each
    feature column to [0, 1] first; do that before the call to match it.

    Gain: sum_f w_f [g(t_f + X_ef) - g(t_f)] with t_f = sum_{j in S} X_jf.
    Cost: a full gain pass O(N * F), ``gains_at`` O(R * F), an update O(F). Memory: the
    features and O(F) state.

    Args:
        features: float [N, F], >= 0 (checked outside jit).
        concave: the concave function g.
        weights: float [F], w (default all ones).

    Returns:
        A :class:`SubmodularFn` over the N rows of the features.
    """
    features = jnp.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be a [N, F] array, got shape {features.shape}")
    features = features.astype(jnp.float32)
    _checks.finite(features, "features")
    _checks.require(features, lambda xp, f: xp.all(f >= 0), "features must be non-negative")
    _checks.one_of(concave, CONCAVE_FUNCTIONS, "concave")
    n, f = features.shape
    w = jnp.ones((f,), jnp.float32) if weights is None else jnp.asarray(weights, jnp.float32)
    if w.shape != (f,):
        raise ValueError(f"weights must have shape ({f},), got {w.shape}")
    g = _CONCAVE[concave]

    def gains_of(rows, totals):
        return (g(totals[None, :] + rows) - g(totals)[None, :]) @ w

    def init(capacity):
        del capacity
        return FeatureBasedState(jnp.zeros((f,), jnp.float32))

    return SubmodularFn(
        "feature_based",
        n,
        {"concave": concave},
        init,
        lambda state: gains_of(features, state.totals),
        lambda state, indices: gains_of(features[indices], state.totals),
        lambda state, index: FeatureBasedState(state.totals + features[index]),
    )


def log_determinant(kernel: Kernel, *, lambda_: float) -> SubmodularFn:
    """Log-determinant: f(S) = log det(K_S + lambda I), f({}) = 0.

    submodlib's LogDeterminant: lambda on the diagonal only, off-diagonals raw K.
    Submodular for a positive semi-definite kernel (cosine and euclidean kernels are);
    monotone when lambda >= 1. The gains come from an incremental Cholesky factorization
    (as in fast greedy MAP inference for DPPs), never from a determinant per candidate:

        gain(e) = log(K_ee + lambda - k_eS^T (K_S + lambda I)^-1 k_eS)

    is the log of a Schur complement kept for every element; adding j appends
    c_e = (K_je - <c_j, c_e>) / sqrt(r_j) to every element's factor and subtracts c_e^2
    from its complement r_e. An element whose complement reaches 0 (a duplicate with
    lambda = 0) has gain -inf.

    Cost: gains O(N) from the state; an update O(N * capacity) plus one column (O(N) or
    O(N * F)). Memory: capacity * N floats (the factors), capacity = the greedy budget.

    Args:
        kernel: symmetric positive semi-definite float [N, N] or a square Similarity.
        lambda_: the diagonal regularizer, >= 0.

    Returns:
        A :class:`SubmodularFn` over the N columns of the kernel.
    """
    prepared = _kernels.prepare_kernel(kernel, square=True)
    n = _kernels.kernel_shape(prepared)[1]
    lambda_ = _checks.nonnegative_float(lambda_, "lambda_")

    def init(capacity):
        return LogDeterminantState(
            jnp.zeros((), jnp.int32),
            jnp.zeros((capacity, n), jnp.float32),
            _kernels.diagonal(prepared) + lambda_,
        )

    def gains(state):
        positive = state.residual > 0
        return jnp.where(positive, jnp.log(jnp.where(positive, state.residual, 1.0)), -jnp.inf)

    def update(state, index):
        pivot = state.residual[index]
        projection = state.factors[:, index] @ state.factors
        scale = jnp.where(pivot > 0, jax.lax.rsqrt(jnp.where(pivot > 0, pivot, 1.0)), 0.0)
        new = (_kernels.column(prepared, index) - projection) * scale
        return LogDeterminantState(
            state.n_picked + 1,
            state.factors.at[state.n_picked].set(new, mode="drop"),
            state.residual - new * new,
        )

    return SubmodularFn(
        "log_determinant",
        n,
        {"lambda_": lambda_},
        init,
        gains,
        lambda state, indices: gains(state)[indices],
        update,
    )


def log_determinant_insert(kernel: _kernels.Kernel, lambda_: float) -> Insert:
    """A bulk :data:`Insert` for ``log_determinant(kernel, lambda_=lambda_)``'s state.

    Adds R elements G at once by a block Cholesky step instead of R rank-one updates:
    with F the factors so far, C = K[G, :] - F[:, G]^T F, L = chol(C[:, G] + lambda I),
    the new factor rows are L^-1 C (one triangular solve) and the Schur complements drop
    by their column norms. The same state as R updates in any order (the Cholesky factor
    is unique), in BLAS-3 work. Cost: R kernel rows O(R * N * F), O(R * k * N) for the
    projection and O(R^2 * N) for the solve. Memory: two R x N blocks.
    """
    prepared = _kernels.prepare_kernel(kernel, square=True)

    def insert(state: LogDeterminantState, given: jax.Array) -> LogDeterminantState:
        given = jnp.asarray(given, jnp.int32)
        rows = jax.vmap(lambda index: _kernels.column(prepared, index))(given)  # K[G, :]
        projected = rows - state.factors[:, given].T @ state.factors
        block = projected[:, given] + lambda_ * jnp.eye(given.shape[0], dtype=jnp.float32)
        lower = jnp.linalg.cholesky(block)
        new = jax.scipy.linalg.solve_triangular(lower, projected, lower=True)
        return LogDeterminantState(
            state.n_picked + given.shape[0],
            jax.lax.dynamic_update_slice(state.factors, new, (state.n_picked, 0)),
            state.residual - jnp.sum(new * new, axis=0),
        )

    return insert


def disparity_sum(kernel: Kernel) -> SubmodularFn:
    """Disparity sum: f(S) = sum_{i < j in S} (1 - K_ij). Not submodular.

    submodlib's DisparitySum. Every gain at S = {} is 0 (the first pick is the lowest
    candidate index); gains grow with S for K <= 1, so lazy greedy is refused (submodlib's
    LazyGreedy returns index order for it).

    Gain: sum_{j in S} (1 - K_je).
    Cost: O(N) gains; an update is one column. Memory O(N).

    Args:
        kernel: symmetric float [N, N] or a square Similarity.

    Returns:
        A :class:`SubmodularFn` over the N columns of the kernel.
    """
    prepared = _kernels.prepare_kernel(kernel, square=True)
    n = _kernels.kernel_shape(prepared)[1]

    def init(capacity):
        del capacity
        return ModularState(jnp.zeros((n,), jnp.float32))

    def update(state, index):
        return ModularState(state.gains + 1.0 - _kernels.column(prepared, index))

    return _modular_fn("disparity_sum", n, {}, init, update, submodular=False)


def disparity_min(kernel: Kernel) -> SubmodularFn:
    """Disparity min: f(S) = min(1, min_{i != j in S} (1 - K_ij)); 0 when |S| < 2.

    submodlib's DisparityMin, including its cap: distances above 1 (cosine similarities
    below 0) count as 1. Not submodular. Every gain is 0 at S = {} (the first pick is the
    lowest candidate index); the second pick is the element furthest from the first; later
    gains are min(f(S), min_{j in S} d_ej) - f(S) <= 0, so every element at least f(S)
    away from S ties at 0.

    Cost: O(N) gains; an update is one column. Memory O(N).

    Args:
        kernel: symmetric float [N, N] or a square Similarity.

    Returns:
        A :class:`SubmodularFn` over the N columns of the kernel.
    """
    prepared = _kernels.prepare_kernel(kernel, square=True)
    n = _kernels.kernel_shape(prepared)[1]

    def init(capacity):
        del capacity
        return DisparityMinState(
            jnp.zeros((), jnp.int32), jnp.ones((), jnp.float32), jnp.full((n,), jnp.inf)
        )

    def value(state):
        return jnp.where(state.n_picked >= 2, state.current, 0.0)

    def gains(state):
        after = jnp.where(state.n_picked >= 1, jnp.minimum(state.current, state.nearest), 0.0)
        return after - value(state)

    def update(state, index):
        current = jnp.where(
            state.n_picked >= 1, jnp.minimum(state.current, state.nearest[index]), state.current
        )
        nearest = jnp.minimum(state.nearest, 1.0 - _kernels.column(prepared, index))
        return DisparityMinState(state.n_picked + 1, current, nearest)

    return SubmodularFn(
        "disparity_min",
        n,
        {},
        init,
        gains,
        lambda state, indices: gains(state)[indices],
        update,
        submodular=False,
    )


SUBMODULAR_FUNCTIONS = MappingProxyType(
    {
        "facility_location": facility_location,
        "graph_cut": graph_cut,
        "saturated_coverage": saturated_coverage,
        "sum_redundancy": sum_redundancy,
        "feature_based": feature_based,
        "log_determinant": log_determinant,
        "disparity_sum": disparity_sum,
        "disparity_min": disparity_min,
    }
)
"""Name -> factory. Every factory but ``feature_based`` takes a kernel first."""


_CONCAVE = {
    "sqrt": jnp.sqrt,
    "log": jnp.log1p,
    "inverse": lambda x: 1.0 - 1.0 / (1.0 + x),
}


def _modular_fn(name, n, hparams, init, update, submodular=True) -> SubmodularFn:
    """A function whose state is the exact gain vector."""
    return SubmodularFn(
        name,
        n,
        hparams,
        init,
        lambda state: state.gains,
        lambda state, indices: state.gains[indices],
        update,
        submodular,
    )


def _weighted_sum(entries: jax.Array, weights: jax.Array) -> jax.Array:
    return entries * weights


def _gains_over_memo(entries: jax.Array, memo: jax.Array) -> jax.Array:
    """Facility-location contributions max(0, K_ij - m_i) (``reduce_columns`` sums them).

    Rows outside the ground set carry memo +inf, so they add 0: a mask multiplied into
    the sum instead makes XLA's CPU reduction much slower.
    """
    return jnp.maximum(entries - memo, 0.0)


def _capped_gains_over_memo(entries: jax.Array, covered: jax.Array, cap: jax.Array) -> jax.Array:
    """Capped contributions max(0, min(K_ij, c_i) - min(m_i, c_i)), ``covered`` being
    min(m_i, c_i)."""
    return jnp.maximum(jnp.minimum(entries, cap) - covered, 0.0)


def _weighted_gains_over_memo(entries: jax.Array, memo: jax.Array, weight: jax.Array) -> jax.Array:
    """Weighted contributions w_i max(0, K_ij - m_i)."""
    return weight * jnp.maximum(entries - memo, 0.0)


def _weighted_capped_gains(
    entries: jax.Array, covered: jax.Array, cap: jax.Array, weight: jax.Array
) -> jax.Array:
    """Weighted capped contributions w_i max(0, min(K_ij, c_i) - min(m_i, c_i))."""
    return weight * jnp.maximum(jnp.minimum(entries, cap) - covered, 0.0)

"""GLISTER-active (Killamsetty et al. 2021): greedy validation-loss reduction.

Letters: N pool points, V validation points, C classes, R the width of the gradients'
right factor (D + 1 for ``bias_linear``, D for ``linear``, 1 for ``bias``), k the budget.

GLISTER simulates one SGD step on the last layer per pick and greedily takes the pool
point whose gradient most reduces the validation loss under a one-step Taylor
approximation. Every gradient is a factored outer product: pool point e has gradient
a_e (x) u_e (``OuterProduct(left=a [N, C], right=u [N, R])``), validation point v has
right factor s_v, and the logits respond linearly to a last-layer step,
z_v(theta - lr * a (x) u) = z_v - lr * a * (u . s_v). With out_v the simulated logits and
r_v = softmax(out_v) - onehot(y_v):

* the validation gradient is Gval = (1 / V) sum_v r_v (x) s_v, a [C, R] matrix
  (O(V * C * R));
* the gain of pool point e is its gradient times Gval, a_e^T Gval u_e (O(N * C * R) for
  all e, never the [N, C * R] matrix; bounds skip most of this, see
  :func:`glister`);
* picking e* updates every simulated logit by -lr * a_e* (u_e* . s_v) (O(V * (C + R))).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal._chunks import map_chunks
from jaxal._points import OuterProduct
from jaxal.selectors import _points
from jaxal.selectors._selection import GreedyInfo, Selection
from jaxal.selectors._top_k import random_subset

REGULARIZERS = ("none", "random", "facility_location", "diversity")

_HIGHEST = jax.lax.Precision.HIGHEST
# The most distance entries one block of the facility-location pass holds (16 MB).
_BLOCK_ENTRIES = 1 << 22
# Reductions over at most this many classes are unrolled.
_UNROLL = 32
# Default cap on the points whose gains one step recomputes exactly (see glister).
EXACT_ROWS = 4096
# Relative allowance for float rounding in the gain bounds (see ``glister``).
_SLACK = 1e-4


def greedy_count(budget: int, regularizer: str, lam: float) -> int:
    """How many of the ``budget`` picks are greedy: all, or ceil((1 - lam) * budget) with
    ``"random"`` (the rest are uniform), computed as budget - floor(lam * budget) so that
    greedy + random = budget exactly (DISTIL returns budget + 1 points when (1 - lam) *
    budget is not an integer)."""
    if regularizer != "random":
        return budget
    if not 0 < lam < 1:
        raise ValueError(f"lam must be in (0, 1) with regularizer='random', got {lam!r}")
    random_picks = min(math.floor(lam * budget + 1e-9), budget - 1)
    return budget - random_picks


def glister(
    gradients: OuterProduct,
    candidates: jax.Array,
    validation_logits: jax.Array,
    validation_right: jax.Array,
    validation_labels: jax.Array,
    budget: int,
    key: jax.Array,
    *,
    lr: float,
    start_gradient: jax.Array | None = None,
    regularizer: str = "none",
    lam: float = 0.0,
    exact_rows: int = EXACT_ROWS,
) -> Selection:
    """GLISTER's greedy selection over factored gradients.

    1. Simulated start: out_v = z_v - lr * G0 s_v, with G0 = ``start_gradient`` (DISTIL:
       the *sum* of the labeled points' gradients at their labels, one SGD step on it).
    2. Each greedy step: Gval = mean over the V validation rows of r_v (x) s_v (the same
       normalization at every step: DISTIL divides its first Gval by the number of
       unlabeled points instead, which changes the balance against ``lam``); gains(e) =
       a_e^T Gval u_e plus the regularizer; the pick is the argmax over the candidates not
       yet picked (ties to the lowest index); then out_v -= lr * a_e* (u_e* . s_v).

    The gains are exact but mostly not recomputed: since a gradient is rank one,
    |gain_e(t) - gain_e(s)| <= |a_e| |u_e| ||Gval_t - Gval_s||, so each step bounds every
    point's gain from its last exact value and the accumulated change of Gval (plus a
    rounding allowance), computes the gain of the point with the highest bound, and
    recomputes exactly only the points whose bound reaches it (the argmax and every tie
    are among them). When more than ``exact_rows`` points qualify, the step recomputes
    all N gains (O(N * C * R)). Picks and gains equal those of the full computation up to
    float rounding; on a 50,000-point pool about one step in eight needs the full pass.

    Regularizers (d(i, j) = ||g_i - g_j||^2 between the pool gradients, computed from the
    factors by ``jaxal.selectors.sq_distances``; i ranges over the candidates):

    * ``"none"``: the gain is the Taylor term alone. Cost per step O(V * C * R) for Gval
      plus at most O(N * C * R) for the gains: O(k * (N + V) * C * R) in all at worst.
    * ``"random"``: ``greedy_count`` picks are greedy (ceil((1 - lam) * budget)), the rest
      drawn uniformly with ``key`` among the candidates not picked: exactly ``budget``.
    * ``"facility_location"``: + lam * sum_i max(m_i - d(e, i), 0), with m_i the distance
      from i to its nearest pick, starting at the largest distance between two candidates;
      after a pick m <- min(m, d(e*, .)). Every step needs d(e, i) for all pairs: it is
      recomputed in blocks of at most 2^22 entries, so memory stays O(N * block) but each
      step costs O(N^2 * (C + R)) (DISTIL holds the N x N matrix instead); the gains are
      always computed in full.
    * ``"diversity"``: - lam * sum_{s picked} exp(-d(e, s) / 2); one distance column per
      pick keeps the running sum: O(N * (C + R)) per step, no N x N matrix.

    Args:
        gradients: ``OuterProduct(left=a [N, C], right=u [N, R])``, the pool gradients
            (DISTIL: at the predicted labels).
        candidates: bool [N], the points that may be picked.
        validation_logits: float [V, C], z_v before any step.
        validation_right: float [V, R], the right factor s_v of each validation gradient
            (the same kind as ``gradients.right``: [1, e_v] for ``bias_linear``).
        validation_labels: int [V] in [0, C), y_v.
        budget: Python int, 1 <= budget <= N.
        key: PRNG key (used by ``"random"`` only).
        lr: the simulated learning rate (a float or a scalar array).
        start_gradient: float [C, R], the step applied before the first pick; None for
            none.
        regularizer: one of ``REGULARIZERS``.
        lam: the regularizer's weight (for ``"random"``, the fraction in (0, 1) of random
            picks).
        exact_rows: Python int >= 1, the most points whose gains one step recomputes
            exactly before it falls back to all N.

    Returns:
        ``Selection(indices, GreedyInfo(gains))``: indices int32 [budget] in pick order,
        distinct candidates, -1 once none is left; gains float [budget], the gain of each
        greedy pick (NaN for random picks and -1 slots).
    """
    if not isinstance(gradients, OuterProduct):
        raise TypeError(
            "gradients must be an OuterProduct (GLISTER simulates last-layer steps from its "
            f"factors), got {type(gradients).__name__}"
        )
    _checks.one_of(regularizer, REGULARIZERS, "regularizer")
    a, u = jnp.asarray(gradients.left), jnp.asarray(gradients.right)
    gradients = OuterProduct(a, u)
    if a.ndim != 2 or u.ndim != 2 or a.shape[0] != u.shape[0]:
        raise ValueError(
            f"gradients must have left [N, C] and right [N, R], got {a.shape} and {u.shape}"
        )
    n, c = a.shape
    width = u.shape[1]
    logits = jnp.asarray(validation_logits)
    right = jnp.asarray(validation_right)
    labels = jnp.asarray(validation_labels)
    if logits.ndim != 2 or logits.shape[1] != c:
        raise ValueError(f"validation_logits must have shape [V, {c}], got {logits.shape}")
    v = logits.shape[0]
    if v == 0:
        raise ValueError("the validation set must hold at least one point")
    if right.shape != (v, width):
        raise ValueError(f"validation_right must have shape ({v}, {width}), got {right.shape}")
    if labels.shape != (v,):
        raise ValueError(f"validation_labels must have shape ({v},), got {labels.shape}")
    _checks.labels_in_range(labels, c, "validation_labels")
    if jnp.shape(candidates) != (n,):
        raise ValueError(f"candidates must have shape ({n},), got {jnp.shape(candidates)}")
    if not 1 <= budget <= n:
        raise ValueError(f"budget must be in [1, {n}] (the pool size), got {budget}")
    greedy = greedy_count(budget, regularizer, lam)
    exact_rows = _checks.positive_int(exact_rows, "exact_rows")
    candidates = jnp.asarray(candidates, bool)
    dtype = jnp.result_type(a.dtype, u.dtype, logits.dtype, jnp.float32)
    target = jax.nn.one_hot(labels, c, dtype=dtype)
    out = logits.astype(dtype)
    if start_gradient is not None:
        if jnp.shape(start_gradient) != (c, width):
            raise ValueError(
                f"start_gradient must have shape ({c}, {width}), got {jnp.shape(start_gradient)}"
            )
        out = out - lr * jnp.matmul(right, jnp.asarray(start_gradient).T, precision=_HIGHEST)
    points_sq = _points.sq_norms(gradients)
    regularize = _regularizer(gradients, candidates, points_sq, regularizer, lam)
    lazy = regularizer != "facility_location"

    # Layouts with the long (pool / validation) axis last, made once: on CPU the per-step
    # products and the softmax over the C classes run fastest that way.
    u_t, a_t, right_t = u.T, a.T, right.T  # [R, N], [C, N], [R, V]
    target_t = target.T  # [C, V]
    # ||g_e|| = |a_e| |u_e| without squaring: on a saturated model |a_e|^2 underflows
    # (and XLA on CPU flushes it to zero), which left such points' bounds without slack.
    norms = _row_norms(a) * _row_norms(u)
    rows = min(n, exact_rows)

    def taylor_all(gval):
        return _sum_rows(jnp.matmul(gval, u_t, precision=_HIGHEST) * a_t)  # [N]

    def taylor_at(gval, index):
        projected = jnp.matmul(u[index], gval.T, precision=_HIGHEST)  # [M, C]
        return jnp.sum(projected * a[index], axis=-1)

    def pick(gval, available, bounds, reg_now):
        """(index, its gain, bounds): the argmax of the gains over the available points.

        With bounds (last exact Taylor gain, cumulative drift of gval when computed, the
        drift now, the largest ||gval|| so far): |gain_e(t) - gain_e(s)| <= ||g_e||
        ||gval_t - gval_s||, so only the points whose bound reaches the exact gain of the
        most promising one can win; their gains are computed exactly when they are at most
        ``rows``, all gains otherwise.
        """
        last, stamp, drift, top_norm = bounds
        slack = _SLACK * norms * top_norm
        upper = last + norms * (drift - stamp) + slack + reg_now
        upper = jnp.where(available, upper, -jnp.inf)
        probe = jnp.argmax(upper)
        floor = taylor_at(gval, probe[None])[0] + reg_now[probe]
        # The probe always contends (its bound can fall below its exact gain by rounding);
        # a NaN bound is no bound.
        contenders = available & ((upper >= floor) | jnp.isnan(upper) | (jnp.arange(n) == probe))

        def exact_few(_):
            index = jnp.nonzero(contenders, size=rows, fill_value=n)[0]
            safe = jnp.minimum(index, n - 1)
            taylor = taylor_at(gval, safe)
            gains = _nan_lowest(jnp.where(index < n, taylor + reg_now[safe], -jnp.inf))
            j = jnp.argmax(gains)  # index is ascending: ties go to the lowest
            last_ = last.at[index].set(taylor, mode="drop")
            stamp_ = stamp.at[index].set(drift, mode="drop")
            return safe[j].astype(jnp.int32), gains[j], last_, stamp_

        def exact_all(_):
            taylor = taylor_all(gval)
            gains = _nan_lowest(jnp.where(available, taylor + reg_now, -jnp.inf))
            best = jnp.argmax(gains).astype(jnp.int32)
            return best, gains[best], taylor, jnp.full_like(stamp, drift)

        if not lazy:
            return exact_all(None)
        return jax.lax.cond(jnp.sum(contenders) <= rows, exact_few, exact_all, None)

    def step(t, state):
        out_t, available, picked, gains_taken, extra, bounds, previous = state
        residual_t = _softmax_columns(out_t) - target_t  # [C, V]
        gval = _validation_gradient(residual_t, right) / v  # [C, R]
        last, stamp, drift, top_norm = bounds
        drift = drift + jnp.sqrt(jnp.sum((gval - previous) ** 2))
        top_norm = jnp.maximum(top_norm, jnp.sqrt(jnp.sum(gval * gval)))
        best, gain, last, stamp = pick(
            gval, available, (last, stamp, drift, top_norm), regularize.gain(extra)
        )
        # A non-finite gain is never taken: once only such points are left, slots are -1.
        any_left = jnp.any(available) & jnp.isfinite(gain)
        index = jnp.where(any_left, best, -1)
        safe = jnp.maximum(index, 0)
        along = jnp.matmul(u[safe], right_t, precision=_HIGHEST)  # [V]: u_e* . s_v
        step_size = jnp.where(any_left, lr, 0.0)
        out_t = out_t - step_size * a[safe][:, None] * along[None, :]
        extra = jax.tree.map(
            lambda new, old: jnp.where(any_left, new, old), regularize.update(extra, safe), extra
        )
        available = available.at[jnp.where(any_left, index, n)].set(False, mode="drop")
        taken = jnp.where(any_left, gain, jnp.nan)
        return (
            out_t,
            available,
            picked.at[t].set(index),
            gains_taken.at[t].set(taken),
            extra,
            (last, stamp, drift, top_norm),
            gval,
        )

    zero = jnp.zeros((), dtype)
    initial = (
        out.T,
        candidates,
        jnp.full((greedy,), -1, jnp.int32),
        jnp.full((greedy,), jnp.nan, dtype),
        regularize.initial,
        # No exact gain yet: unbounded, so the first step computes them all.
        (jnp.full((n,), jnp.inf, dtype), jnp.zeros((n,), dtype), zero, zero),
        jnp.zeros((c, width), dtype),
    )
    _, available, picked, gains, _, _, _ = jax.lax.fori_loop(0, greedy, step, initial)
    if greedy == budget:
        return Selection(picked, GreedyInfo(gains))
    extras = random_subset(available, budget - greedy, key)
    return Selection(
        jnp.concatenate([picked, extras]),
        GreedyInfo(jnp.concatenate([gains, jnp.full((budget - greedy,), jnp.nan, dtype)])),
    )


def _validation_gradient(residual_t: jax.Array, right: jax.Array) -> jax.Array:
    """sum_v r_v (x) s_v as [C, R], from residual_t [C, V] and right [V, R].

    Each r_v (softmax - onehot) sums to 0 over the classes, so the last row is minus the
    sum of the others: one matrix product over C - 1 rows instead of C.
    """
    if residual_t.shape[0] == 1:
        return jnp.matmul(residual_t, right, precision=_HIGHEST)
    head = jnp.matmul(residual_t[:-1], right, precision=_HIGHEST)
    return jnp.concatenate([head, -jnp.sum(head, axis=0, keepdims=True)])


def _row_norms(x: jax.Array) -> jax.Array:
    """float [M]: the Euclidean norm of each row of [M, K], scaled by the row's largest
    magnitude first so that tiny rows do not underflow to 0."""
    scale = jnp.max(jnp.abs(x), axis=1, keepdims=True)
    safe = jnp.where(scale > 0, scale, 1.0)
    return scale[:, 0] * jnp.sqrt(jnp.sum((x / safe) ** 2, axis=1))


def _nan_lowest(gains: jax.Array) -> jax.Array:
    """``gains`` with NaN replaced by -inf, so that argmax never prefers it."""
    return jnp.where(jnp.isnan(gains), -jnp.inf, gains)


def _sum_rows(x: jax.Array) -> jax.Array:
    """Sum over the leading axis of [C, M]; unrolled for few rows (C - 1 contiguous
    vector adds, cheaper on CPU than XLA's reduce over the major axis)."""
    if x.shape[0] > _UNROLL:
        return jnp.sum(x, axis=0)
    total = x[0]
    for row in range(1, x.shape[0]):
        total = total + x[row]
    return total


def _softmax_columns(x: jax.Array) -> jax.Array:
    """Softmax over the leading (class) axis of [C, M]."""
    if x.shape[0] > _UNROLL:
        return jax.nn.softmax(x, axis=0)
    top = x[0]
    for row in range(1, x.shape[0]):
        top = jnp.maximum(top, x[row])
    e = jnp.exp(x - top[None, :])
    return e / _sum_rows(e)[None, :]


class _Regularizer:
    """A regularizer's state and its two functions: ``gain(state) -> [N]`` (added to the
    Taylor gains) and ``update(state, picked index) -> state``."""

    def __init__(self, initial, gain, update):
        self.initial = initial
        self.gain = gain
        self.update = update


def _regularizer(
    gradients: OuterProduct,
    candidates: jax.Array,
    points_sq: jax.Array,
    regularizer: str,
    lam: float,
) -> _Regularizer:
    n = candidates.shape[0]
    zeros = jnp.zeros((n,), points_sq.dtype)

    def column(index):  # d(., index) [N]
        return _points.sq_distances_to(gradients, index, points_sq)

    if regularizer == "diversity":
        return _Regularizer(
            zeros,
            lambda penalty: -lam * penalty,
            lambda penalty, index: penalty + jnp.exp(-0.5 * column(index)),
        )
    if regularizer == "facility_location":
        block = max(1, min(n, _BLOCK_ENTRIES // n))

        def over_blocks(reduce):
            def one_block(left, right, index):
                del index
                chunk = OuterProduct(left, right)
                distances = _points.sq_distances(chunk, gradients, _points.sq_norms(chunk))
                return reduce(distances)

            return map_chunks(one_block, gradients.left, gradients.right, chunk_size=block)

        row_max = over_blocks(
            lambda d: jnp.max(jnp.where(candidates[None, :], d, -jnp.inf), axis=1)
        )
        largest = jnp.max(jnp.where(candidates, row_max, -jnp.inf))

        def gain(nearest):
            reduction = over_blocks(
                lambda d: jnp.sum(
                    jnp.where(candidates[None, :], jnp.maximum(nearest[None, :] - d, 0.0), 0.0),
                    axis=1,
                )
            )
            return lam * reduction

        return _Regularizer(
            jnp.full((n,), largest, points_sq.dtype),
            gain,
            lambda nearest, index: jnp.minimum(nearest, column(index)),
        )
    return _Regularizer(zeros, lambda state: zeros, lambda state, index: state)

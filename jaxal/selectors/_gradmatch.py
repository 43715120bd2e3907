"""GradMatch (Killamsetty et al. 2021), the active-learning variant: gradient matching.

Letters: N points, k the budget, F the dimension of a point (d for a plain [N, d] array,
C * R for an :class:`~jaxal.selectors.OuterProduct` with left [N, C] and right [N, R]).

The points are per-example gradients; the target is a gradient to match. A *vector* of the
points' space is a float [d] array for plain points and a float [C, R] matrix for an
``OuterProduct`` (its ``ravel()`` is the class-major layout of ``materialize()``), so a
vector is never wider than the factors it comes from.

* :func:`gradmatch`, the fixed-weight greedy (DISTIL's default): ``budget`` points whose
  gradient *sum* comes closest to the target; ||A_j + r||^2 is evaluated as
  ||A_j||^2 + 2 A_j . r + ||r||^2, O(N * F) per pick with no [F, N] temporary, and for an
  ``OuterProduct`` A_j . r = a_j^T R u_j, O(N * C * R) with nothing materialized.
* :func:`gradmatch_omp`, orthogonal matching pursuit with non-negative weights: each pick
  is the candidate most aligned with the residual, then the weights of all picks are the
  non-negative least-squares solution (:func:`nnls`) of the small regularized system.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal._points import OuterProduct, Points, dots, point_vector, points_sum
from jaxal.selectors import _points
from jaxal.selectors._top_k import random_subset

_HIGHEST = jax.lax.Precision.HIGHEST


def _check_points(
    points: Points, candidates: jax.Array, target: jax.Array, budget: int
) -> tuple[Points, int]:
    """Validate the common arguments at trace time; return the points as JAX arrays and N."""
    if isinstance(points, OuterProduct):
        points = OuterProduct(jnp.asarray(points.left), jnp.asarray(points.right))
        if points.left.ndim != 2 or points.right.ndim != 2:
            raise ValueError(
                "points must be an OuterProduct of [N, C] and [N, R] arrays, got "
                f"{points.left.shape} and {points.right.shape}"
            )
        n = points.left.shape[0]
        if points.right.shape[0] != n:
            raise ValueError(
                f"points.left and points.right must have N rows each, got {n} and "
                f"{points.right.shape[0]}"
            )
        shape: tuple[int, ...] = (points.left.shape[1], points.right.shape[1])
    else:
        points = jnp.asarray(points)
        if points.ndim != 2:
            raise ValueError(
                f"points must be a [N, d] array or an OuterProduct, got shape {points.shape}"
            )
        n, shape = points.shape[0], points.shape[1:]
    if jnp.shape(target) != shape:
        raise ValueError(
            f"target must have shape {shape} (a vector of the points' space), "
            f"got {jnp.shape(target)}"
        )
    if jnp.shape(candidates) != (n,):
        raise ValueError(f"candidates must have shape ({n},), got {jnp.shape(candidates)}")
    if not 1 <= budget <= n:
        raise ValueError(f"budget must be in [1, {n}] (the pool size), got {budget}")
    return points, n


def gradmatch(points: Points, candidates: jax.Array, target: jax.Array, budget: int) -> jax.Array:
    """Fixed-weight gradient matching: greedily min || sum_{j in S} A_j - target ||.

    DISTIL's ``fixed_weight_greedy_parallel``: starting from S = {}, each step adds the
    candidate j not yet in S that minimizes ||A_j + r||^2 with r = sum_S A - target, ties to
    the lowest index. The target is used as given; DISTIL scales its target by N / n_b
    (its code) where its docstring's objective has k / n_b: the strategy
    (``jaxal.strategies.gradmatch``) chooses.

    Cost O(budget * N * F) (for an ``OuterProduct``, F = C * R through the factors); memory
    O(N + F).

    Args:
        points: N points (per-example gradients), float [N, d] or an ``OuterProduct``.
        candidates: bool [N], the points that may be picked.
        target: the vector to match, float [d] or [C, R] (see :func:`points_sum`).
        budget: Python int, 1 <= budget <= N.

    Returns:
        int32 [budget] in pick order (DISTIL returns the same set sorted ascending):
        distinct candidates; -1 once no candidate is left.
    """
    points, n = _check_points(points, candidates, target, budget)
    target = jnp.asarray(target)
    sq = _points.sq_norms(points)

    def step(t, state):
        total, available, picked = state
        residual = total - target
        # ||A_j + r||^2 - ||r||^2: the constant ||r||^2 does not change the argmin.
        objective = sq + 2.0 * dots(points, residual)
        any_left = jnp.any(available)
        best = jnp.argmin(jnp.where(available, objective, jnp.inf)).astype(jnp.int32)
        index = jnp.where(any_left, best, -1)
        added = point_vector(points, jnp.maximum(index, 0))
        total = jnp.where(any_left, total + added, total)
        available = available.at[jnp.where(any_left, index, n)].set(False, mode="drop")
        return total, available, picked.at[t].set(index)

    initial = (
        jnp.zeros_like(target, dtype=sq.dtype),
        jnp.asarray(candidates, bool),
        jnp.full((budget,), -1, jnp.int32),
    )
    return jax.lax.fori_loop(0, budget, step, initial)[2]


def gradmatch_omp(
    points: Points,
    candidates: jax.Array,
    target: jax.Array,
    budget: int,
    key: jax.Array,
    *,
    reg: float = 0.0,
    tol: float = 1e-4,
    nnls_iterations: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Orthogonal matching pursuit with non-negative weights (DISTIL's weighted GradMatch).

    At most ``budget`` steps, each in a fixed-length loop with a stop mask:

    1. stop if ||resid|| < tol * ||target|| (or the target is 0);
    2. j = argmax over the candidates of A_j . resid (ties to the lowest index); stop if j
       was already picked;
    3. with S the picks so far, the weights are w = nnls(A_S A_S^T + reg * I, A_S target),
       i.e. min ||M w - v|| over w >= 0 (DISTIL's system, solved by :func:`nnls`, warm
       started from the previous weights);
    4. resid = target - sum_S w_s A_s.

    DISTIL solves step 3 only from the second pick on and sets the first weight to
    (A_j . target) / ||A_j||^2, without ``reg`` and without the sign constraint; here every
    step solves the same regularized non-negative system (identical when ``reg`` is 0 and
    the first projection is positive).

    Picks whose weight is 0 are dropped; the remaining slots are filled with candidates
    drawn uniformly with ``key`` among those not kept (weight 1, as DISTIL). Output order:
    kept picks in pick order, then the random fills.

    Cost per step O(N * F) for the projections plus the k x k NNLS (a few O(k^3) solves);
    memory O(N + k^2 + F).

    Args:
        points: N points (per-example gradients), float [N, d] or an ``OuterProduct``.
        candidates: bool [N], the points that may be picked.
        target: the vector to match (DISTIL: the *sum* of the target gradients), float [d]
            or [C, R].
        budget: Python int, 1 <= budget <= N.
        key: PRNG key for the random fill.
        reg: the ridge term of the weight system (DISTIL's ``omp_reg``), >= 0.
        tol: relative residual below which the pursuit stops (DISTIL: 1e-4).
        nnls_iterations: iteration cap of each NNLS solve (default 3 * budget).

    Returns:
        (int32 [budget] distinct candidates, -1 once none is left; float [budget] weights,
        > 0 for every filled slot, 0 for -1 slots).
    """
    points, n = _check_points(points, candidates, target, budget)
    target = jnp.asarray(target)
    candidates = jnp.asarray(candidates, bool)
    k = budget
    sq = _points.sq_norms(points)
    target = target.astype(sq.dtype)
    target_norm = jnp.sqrt(jnp.sum(target * target))
    slots = jnp.arange(k)

    def extend(state, index):
        count, _, picks, weights, gram, along = state
        picked = _points.gather(points, jnp.maximum(picks, 0))
        one = _points.gather(points, index[None])
        column = _points.inner_products(picked, one)[:, 0]
        column = jnp.where(slots < count, column, 0.0).at[count].set(sq[index])
        gram = gram.at[count, :].set(column).at[:, count].set(column)
        along = along.at[count].set(dots(one, target)[0])
        picks = picks.at[count].set(index)
        valid = slots <= count
        system = gram + reg * jnp.diag(valid.astype(gram.dtype))
        weights = nnls(system, along, x0=weights, valid=valid, max_iter=nnls_iterations)
        return count + 1, jnp.bool_(False), picks, weights, gram, along

    def residual(picks, weights):
        chosen = _points.gather(points, jnp.maximum(picks, 0))
        return target - points_sum(chosen, jnp.where(picks >= 0, weights, 0.0))

    def step(t, state):
        def active(state):
            _, _, picks, weights, _, _ = state
            resid = residual(picks, weights)
            small = (jnp.sqrt(jnp.sum(resid * resid)) < tol * target_norm) | (target_norm == 0)
            projections = jnp.where(candidates, dots(points, resid), -jnp.inf)
            index = jnp.argmax(projections).astype(jnp.int32)
            stop = small | jnp.any(picks == index) | ~jnp.any(candidates)
            stopped = (*state[:1], jnp.bool_(True), *state[2:])
            return jax.lax.cond(stop, lambda s: stopped, lambda s: extend(s, index), state)

        return jax.lax.cond(state[1], lambda s: s, active, state)

    initial = (
        jnp.int32(0),
        jnp.bool_(False),
        jnp.full((k,), -1, jnp.int32),
        jnp.zeros((k,), sq.dtype),
        jnp.zeros((k, k), sq.dtype),
        jnp.zeros((k,), sq.dtype),
    )
    _, _, picks, weights, _, _ = jax.lax.fori_loop(0, k, step, initial)

    kept = (picks >= 0) & (weights > 0)
    order = jnp.argsort(~kept, stable=True)
    kept_picks, kept_weights = picks[order], weights[order]
    n_kept = jnp.sum(kept)
    kept_mask = jnp.zeros((n,), bool).at[jnp.where(kept, picks, n)].set(True, mode="drop")
    fills = random_subset(candidates & ~kept_mask, k, key)
    fill = fills[jnp.maximum(slots - n_kept, 0)]
    indices = jnp.where(slots < n_kept, kept_picks, fill).astype(jnp.int32)
    out_weights = jnp.where(slots < n_kept, kept_weights, jnp.where(fill >= 0, 1.0, 0.0))
    return indices, out_weights.astype(sq.dtype)


def nnls(
    a: jax.Array,
    b: jax.Array,
    *,
    x0: jax.Array | None = None,
    valid: jax.Array | None = None,
    max_iter: int | None = None,
) -> jax.Array:
    """Non-negative least squares, argmin ||a x - b|| over x >= 0, with static shapes.

    The Lawson-Hanson active-set method (the algorithm of ``scipy.optimize.nnls``) as one
    bounded ``lax.while_loop``: each iteration solves one least-squares problem on the
    passive set (modified Gram-Schmidt on [a_P | b], columns outside P masked to zero), so
    an iteration costs O(m * n^2). A feasible ``x0`` warm-starts it (its support is the
    initial passive set); a column whose new coefficient comes out non-positive is skipped
    until the iterate moves, as in Lawson and Hanson's code.

    Args:
        a: float [m, n].
        b: float [m].
        x0: optional float [n] start, >= 0 (negative entries are clipped to 0).
        valid: optional bool [n]: columns that may be used; the others stay 0.
        max_iter: Python int, the iteration cap (default 3 * n, as scipy).

    Returns:
        float [n], >= 0, exactly 0 outside the passive set.
    """
    a = jnp.asarray(a)
    b = jnp.asarray(b, a.dtype)
    if a.ndim != 2 or b.shape != a.shape[:1]:
        raise ValueError(f"nnls needs a [m, n] and b [m], got {a.shape} and {b.shape}")
    m, n = a.shape
    valid = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)
    x = jnp.zeros((n,), a.dtype) if x0 is None else jnp.where(valid, jnp.maximum(x0, 0.0), 0.0)
    max_iter = 3 * n if max_iter is None else int(max_iter)
    eps = float(jnp.finfo(a.dtype).eps)
    scale = jnp.sqrt(jnp.sum(a * a)) * jnp.sqrt(jnp.sum(b * b))
    dual_tol = 10.0 * max(m, n) * eps * scale
    columns = jnp.arange(n)

    def cond(state):
        _, _, _, _, it, done = state
        return ~done & (it < max_iter)

    def body(state):
        x, passive, skipped, inner, it, _ = state
        w = jnp.matmul(a.T, b - jnp.matmul(a, x, precision=_HIGHEST), precision=_HIGHEST)
        free = ~inner & valid & ~passive & ~skipped & (w > dual_tol)
        add = jnp.any(free)
        j = jnp.argmax(jnp.where(free, w, -jnp.inf))
        trial = passive | (add & (columns == j))
        z = _masked_lstsq(a, b, trial)
        reject = add & (z[j] <= 0)
        # Rejected: keep x and P, skip column j until the iterate moves.
        passive_next = jnp.where(reject, passive, trial)
        bad = passive_next & (z <= 0)
        any_bad = jnp.any(bad)
        # Interpolate towards z until the first passive coefficient hits 0.
        ratios = jnp.where(bad, x / jnp.where(bad, x - z, 1.0), jnp.inf)
        alpha = jnp.min(ratios)
        first = jnp.argmin(ratios)
        moved = x + alpha * (z - x)
        shrunk = passive_next & (moved > 0) & (columns != first)
        x_next = jnp.where(any_bad, jnp.where(shrunk, moved, 0.0), jnp.where(passive_next, z, 0.0))
        passive_next = jnp.where(any_bad, shrunk, passive_next)
        done = ~inner & ~add
        x_next = jnp.where(reject | done, x, x_next)
        passive_next = jnp.where(reject | done, passive, passive_next)
        skipped = jnp.where(reject, skipped | (columns == j), jnp.zeros_like(skipped))
        inner_next = jnp.where(reject | done, inner, any_bad)
        return x_next, passive_next, skipped, inner_next, it + 1, done

    passive = x > 0
    initial = (x, passive, jnp.zeros((n,), bool), jnp.bool_(True), jnp.int32(0), jnp.bool_(False))
    return jax.lax.while_loop(cond, body, initial)[0]


def _masked_lstsq(a: jax.Array, b: jax.Array, columns: jax.Array) -> jax.Array:
    """argmin ||a[:, P] z_P - b|| with z = 0 outside P (``columns``), by modified
    Gram-Schmidt on [a_P | b]; a column dependent on the earlier ones gets z = 0."""
    m, n = a.shape
    augmented = jnp.concatenate([jnp.where(columns[None, :], a, 0.0), b[:, None]], axis=1)
    norms = jnp.sqrt(jnp.sum(augmented * augmented, axis=0))
    rank_tol = max(m, n) * float(jnp.finfo(a.dtype).eps) * jnp.max(norms[:n])
    later_than = jnp.arange(n + 1)

    def step(j, state):
        augmented, r = state
        column = augmented[:, j]
        norm = jnp.sqrt(jnp.sum(column * column))
        keep = columns[j] & (norm > rank_tol)
        q = jnp.where(keep, column / jnp.where(keep, norm, 1.0), 0.0)
        projection = jnp.where(later_than > j, jnp.matmul(q, augmented, precision=_HIGHEST), 0.0)
        augmented = augmented - jnp.outer(q, projection)
        row = jnp.where(keep, projection.at[j].set(norm), (later_than == j).astype(a.dtype))
        return augmented, r.at[j].set(row)

    r = jnp.zeros((n, n + 1), a.dtype)
    _, r = jax.lax.fori_loop(0, n, step, (augmented, r))
    z = jax.scipy.linalg.solve_triangular(r[:, :n], r[:, n], lower=False)
    return jnp.where(columns, z, 0.0)

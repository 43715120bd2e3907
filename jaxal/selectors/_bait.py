"""BAIT's greedy (Ash et al. 2021) over last-layer Fisher information, with rank-C
Woodbury updates and never a per-point [C * D, C * D] matrix.

Letters: N points, C classes, D embedding width, E = C * D (the weights of a linear
softmax head, class-major: index c * D + d), T forward picks, P = C (C + 1) / 2 class
pairs c <= c'.

The Fisher information of the head at a point with probabilities p and embedding h is
I(x) = (diag(p) - p p^T) (x) h h^T = V^T V with V = S (I_C (x) h^T) [C, E] and
S = diag(sqrt p) (I - 1 p^T) [C, C]. Adding (s = +1) or removing (s = -1) a point changes
M by s V^T V, so its inverse K = M^-1 changes by Woodbury,

    (M + s V^T V)^-1 = K - U W U^T,   U = K V^T [E, C],   W = (s I + V K V^T)^-1 [C, C],

and tr(K F) drops by tr(W V K F K V^T). For every point the loop keeps the two [C, C]
matrices R = V K V^T and Q = V K F K V^T. With W = s L L^T, a rank-C change of K
changes them by

    R <- R - s a a^T,   Q <- Q - s (a b^T + b a^T),
    a = V U L,   b = V (K F U - U W U^T F U / 2) L,

products of the [C, C] projections a and b, which one [N, D] x [D, 2 C^2] product gives
for all points at once.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _checks
from jaxal._chunks import map_slices
from jaxal.selectors._selection import BaitInfo, Selection
from jaxal.selectors._top_k import rank_keys

_HIGHEST = jax.lax.Precision.HIGHEST


class _Points(NamedTuple):
    """The points as the loop sees them: embeddings h [n, D], probabilities p [n, C], and
    R, Q [n, C, C]."""

    h: jax.Array
    p: jax.Array
    r: jax.Array
    q: jax.Array


def bait(
    probs: jax.Array,
    embeddings: jax.Array,
    candidates: jax.Array,
    labeled: jax.Array,
    fisher_points: jax.Array,
    budget: int,
    *,
    lambda_: float = 1.0,
    oversample: int = 2,
    chunk_size: int = 512,
    step_chunk_size: int = 16384,
) -> Selection:
    """BAIT: greedy forward selection of T = ``oversample * budget`` candidates, then
    backward removal down to ``budget``, each step minimizing tr((lambda I + M)^-1 F).

    M = the sum of I(x) over the ``labeled`` points and the points picked so far (each
    point counts once); F = the mean of I(x) over ``fisher_points``; I(x) = (diag(p) -
    p p^T) (x) h h^T is the Fisher information of a linear softmax head at x. Forward step
    t adds the candidate whose I(x) lowers the objective most; backward step t drops the
    picked point whose removal raises it least, until ``budget`` remain (with fewer than T
    candidates all are picked, then pruned to ``budget``). Ties go to the lower index.

    Cost: O(N P D^2) once for F, the labeled points' sum and every point's R and Q
    (memory O(chunk_size * P * D)), O(E^3) once for (lambda I + M)^-1; then per forward
    pick O(N C^2 D) for the projections (one matrix product), O(N C^3) for the [C, C]
    updates and solves and O(C E^2) for K; a backward step costs the same with T points
    in place of N; each forward step's passes over the points (their gains, then R and Q)
    run ``step_chunk_size`` points at a time. Memory O(E^2 + N C^2 +
    chunk_size * P * D + step_chunk_size * C^2): no [N, C, E] array, no per-point [E, E]
    matrix, and the per-point [2 C, C] projections for one block only. The [E, E]
    matrices must fit: C = 10, D = 128 is 6.5 MB each, C = 100, D = 512 is 10 GB.

    Args:
        probs: float [N, C], rows sum to 1.
        embeddings: float [N, D], the head's input h.
        candidates: bool [N], the points that may be picked.
        labeled: bool [N], the points already in M.
        fisher_points: bool [N], the points F averages over.
        budget: Python int, 1 <= budget <= N.
        lambda_: float > 0, the ridge.
        oversample: Python int >= 1, forward picks per kept point.
        chunk_size: Python int >= 1, points per block of the one-time O(N P D^2) sums.
        step_chunk_size: Python int >= 1, points per block of each forward step's pass
            over the points' [C, C] matrices.

    Returns:
        ``Selection(indices, BaitInfo)``: int32 [budget], the kept picks in forward order,
        -1 for slots no candidate can fill.
    """
    n, c = probs.shape
    if not 1 <= budget <= n:
        raise ValueError(f"budget must be in [1, {n}] (the pool size), got {budget}")
    step_chunk_size = _checks.positive_int(step_chunk_size, "step_chunk_size")
    e = c * embeddings.shape[1]
    probs = probs.astype(jnp.float32)
    embeddings = embeddings.astype(jnp.float32)
    mean = fisher_points / jnp.maximum(jnp.sum(fisher_points), 1)
    weights = jnp.stack([mean, labeled.astype(jnp.float32)], axis=1)
    fisher, labeled_sum = fisher_sums(probs, embeddings, weights, chunk_size)
    eye = jnp.eye(e, dtype=jnp.float32)
    factor = jnp.linalg.cholesky(labeled_sum + lambda_ * eye)
    inverse = _symmetric(jax.scipy.linalg.cho_solve((factor, True), eye))
    spread = _symmetric(_matmul(_matmul(inverse, fisher), inverse))
    sandwiched = jnp.stack([inverse, spread])
    r, q = map_slices(
        lambda h, p, index: tuple(_s_sandwich(_sandwiches(sandwiched, h), p)),
        embeddings,
        probs,
        chunk_size=chunk_size,
    )
    pool = _Points(embeddings, probs, r, q)
    steps = oversample * budget

    def forward_step(t, state):
        inverse, pool, available, picked, objective = state
        gains = _gains(pool, 1.0, step_chunk_size)
        index = jnp.argmax(rank_keys(gains, available)).astype(jnp.int32)
        active = jnp.any(available)
        inverse, by_h = _step(inverse, fisher, pool, index, 1.0, active)
        pool = _refresh(pool, by_h, 1.0, step_chunk_size)
        available = available.at[jnp.where(active, index, n)].set(False, mode="drop")
        picked = picked.at[t].set(jnp.where(active, index, -1))
        objective = objective.at[t].set(_objective(inverse, fisher))
        return inverse, pool, available, picked, objective

    empty = (jnp.full((steps,), -1, jnp.int32), jnp.zeros((steps,), jnp.float32))
    initial = (inverse, pool, candidates, *empty)
    inverse, pool, _, picked, forward = jax.lax.fori_loop(0, steps, forward_step, initial)
    chosen = _Points(*(field[jnp.maximum(picked, 0)] for field in pool))
    valid = picked >= 0
    removals = jnp.maximum(jnp.sum(valid) - budget, 0)

    def backward_step(t, state):
        inverse, chosen, kept, objective = state
        index = jnp.argmax(rank_keys(_scores(chosen.r, chosen.q, -1.0), kept)).astype(jnp.int32)
        active = t < removals
        inverse, by_h = _step(inverse, fisher, chosen, index, -1.0, active)
        chosen = _refreshed(chosen, by_h, -1.0)
        kept = kept.at[jnp.where(active, index, steps)].set(False, mode="drop")
        return inverse, chosen, kept, objective.at[t].set(_objective(inverse, fisher))

    prune = steps - budget
    kept, backward = valid, jnp.zeros((prune,), jnp.float32)
    if prune:
        initial_backward = (inverse, chosen, kept, backward)
        kept, backward = jax.lax.fori_loop(0, prune, backward_step, initial_backward)[2:]
    slots = jnp.nonzero(kept, size=budget, fill_value=steps)[0]
    indices = jnp.where(slots < steps, picked[jnp.minimum(slots, steps - 1)], -1)
    return Selection(indices.astype(jnp.int32), BaitInfo(forward, backward))


def fisher_sums(
    probs: jax.Array, embeddings: jax.Array, weights: jax.Array, chunk_size: int = 512
) -> jax.Array:
    """Weighted sums of the per-point Fisher information, sum_x w_x I(x), m at once.

    Only the class pairs c <= c' are summed (I(x) is symmetric), ``chunk_size`` points at
    a time: O(N P D^2 m) work, memory O(chunk_size * P * D + P D^2 m).

    Args:
        probs: float [N, C].
        embeddings: float [N, D].
        weights: float [N, m], one weighting per column.
        chunk_size: points per block.

    Returns:
        float [m, E, E], E = C * D, class-major.
    """
    n, c = probs.shape
    d = embeddings.shape[1]
    m = weights.shape[1]
    first, second = np.triu_indices(c)
    chunk_size = min(chunk_size, n)
    blocks = -(-n // chunk_size)

    def blocked(array):
        padded = jnp.pad(array, ((0, blocks * chunk_size - n), (0, 0)))
        return padded.reshape(blocks, chunk_size, array.shape[1])

    def add(total, block):
        p, h, w = block
        hessian = _softmax_hessian(p)[:, first, second]  # [B, P]
        left = (hessian[:, :, None] * h[:, None, :]).reshape(chunk_size, -1)
        right = (w[:, :, None] * h[:, None, :]).reshape(chunk_size, m * d)
        return total + _matmul(left.T, right), None

    total = jnp.zeros((first.size * d, m * d), jnp.float32)
    total = jax.lax.scan(add, total, (blocked(probs), blocked(embeddings), blocked(weights)))[0]
    pairs = total.reshape(first.size, d, m, d).transpose(2, 0, 1, 3)  # [m, P, D, D]
    return _from_pairs(pairs, c).transpose(0, 1, 3, 2, 4).reshape(m, c * d, c * d)


def _sandwiches(matrices: jax.Array, h: jax.Array) -> jax.Array:
    """(I (x) h^T) A (I (x) h) of every point for m symmetric matrices A [E, E]: each
    C x C block A_cc' [D, D] contracted with h on both sides, the pairs c <= c' only:
    O(B P D^2 m) work.

    Args:
        matrices: float [m, E, E], symmetric.
        h: float [B, D].

    Returns:
        float [m, B, C, C], symmetric in the last two axes.
    """
    m, e, _ = matrices.shape
    d = h.shape[1]
    c = e // d
    first, second = np.triu_indices(c)
    blocks = matrices.reshape(m, c, d, c, d).transpose(1, 3, 0, 2, 4)[first, second]
    flat = blocks.transpose(3, 0, 1, 2).reshape(d, -1)  # [D', P * m * D]
    half = _matmul(h, flat).reshape(h.shape[0], first.size, m, d)  # A_cc' h per pair
    values = jnp.sum(half * h[:, None, None, :], axis=3)  # [B, P, m]
    return values.transpose(2, 0, 1)[:, :, _pair_index(c)]


def _from_pairs(pairs: jax.Array, c: int) -> jax.Array:
    """Blocks [m, C, C, D, D] of a symmetric [E, E] matrix from its blocks c <= c'
    ([m, P, D, D]): block (c', c) is the transpose of block (c, c')."""
    blocks = pairs[:, _pair_index(c)]  # [m, C, C, D, D]
    upper = np.less_equal.outer(np.arange(c), np.arange(c))[None, :, :, None, None]
    return jnp.where(upper, blocks, blocks.swapaxes(3, 4))


def _pair_index(c: int) -> np.ndarray:
    """int32 [C, C]: the position of the pair (min(c, c'), max(c, c')) in
    ``np.triu_indices(C)``."""
    first, second = np.triu_indices(c)
    pair = np.zeros((c, c), np.int32)
    pair[first, second] = pair[second, first] = np.arange(first.size)
    return pair


def _softmax_hessian(p: jax.Array) -> jax.Array:
    """diag(p) - p p^T, [..., C, C] from p [..., C]."""
    return jnp.eye(p.shape[-1], dtype=p.dtype) * p[..., None] - p[..., :, None] * p[..., None, :]


def _s_sandwich(matrices: jax.Array, p: jax.Array) -> jax.Array:
    """S A S^T per point, S = diag(sqrt p)(I - 1 p^T): float [..., n, C, C] from symmetric
    A [..., n, C, C] and p [n, C], in O(C^2) per point."""
    row = jnp.sum(matrices * p[:, None, :], axis=-1)  # A p: [..., n, C]
    total = jnp.sum(row * p, axis=-1)[..., None, None]  # p^T A p
    centered = matrices - row[..., :, None] - row[..., None, :] + total
    root = jnp.sqrt(p)
    return root[:, :, None] * centered * root[:, None, :]


def _scores(r: jax.Array, q: jax.Array, sign: float) -> jax.Array:
    """float [n]: the drop of tr(K F) when each point enters (sign +1) or leaves (sign -1)
    M, sign * tr((I + sign R)^-1 Q) from R, Q [n, C, C]; -inf where I + sign R is not
    positive definite (removing that point would leave M singular)."""
    c = r.shape[-1]
    trace, smallest_pivot = _trace_solve(jnp.eye(c) + sign * r, q)
    return jnp.where(smallest_pivot > 0, sign * trace, -jnp.inf)


def _trace_solve(b: jax.Array, a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(tr(B^-1 A) [n], the smallest pivot [n]) for symmetric B and A [n, C, C].

    Symmetric elimination, one pivot at a time: with B = [[beta, c^T], [c, B2]] and
    A = [[alpha, a^T], [a, A2]], tr(B^-1 A) = alpha / beta + tr(S^-1 A') where
    S = B2 - r c^T and A' = A2 - a r^T - r a^T + alpha r r^T, r = c / beta.
    O(C^3) per point, vectorized over the points; unrolled over the static C.
    """
    trace = jnp.zeros(b.shape[:1], b.dtype)
    smallest = jnp.full(b.shape[:1], jnp.inf, b.dtype)
    for _ in range(b.shape[1]):
        pivot, alpha = b[:, 0, 0], a[:, 0, 0]
        ratio = b[:, 1:, 0] / pivot[:, None]
        column = a[:, 1:, 0]
        trace = trace + alpha / pivot
        smallest = jnp.minimum(smallest, pivot)
        b = b[:, 1:, 1:] - ratio[:, :, None] * b[:, None, 0, 1:]
        a = (
            a[:, 1:, 1:]
            - ratio[:, :, None] * column[:, None, :]
            - column[:, :, None] * ratio[:, None, :]
            + alpha[:, None, None] * ratio[:, :, None] * ratio[:, None, :]
        )
    return trace, smallest


def _step(
    inverse: jax.Array,
    fisher: jax.Array,
    points: _Points,
    index: jax.Array,
    sign: float,
    active: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Point ``index`` of ``points`` enters (sign +1) or leaves (sign -1) M: the new K
    [E, E] and the factors [D, 2 C^2] that update every point's R and Q (see
    :func:`_refreshed`). Nothing changes when ``active`` is False (the factors are 0)."""
    d = points.h.shape[1]
    c = points.p.shape[1]
    h, p = points.h[index], points.p[index]
    s = jnp.sqrt(p)[:, None] * (jnp.eye(c) - p[None, :]) * active  # [C, C]; 0: no change
    u = _matmul(_times_h(inverse.reshape(c * d, c, d), h), s.T)  # K V^T [E, C]
    vkv = _matmul(s, _times_h(u.reshape(c, d, c).transpose(0, 2, 1), h))
    w = _symmetric(jnp.linalg.inv(sign * jnp.eye(c) + _symmetric(vkv)))
    fu = _matmul(fisher, u)
    spread = _matmul(inverse, fu) - 0.5 * _matmul(u, _matmul(w, _matmul(u.T, fu)))
    root = jnp.linalg.cholesky(sign * w)  # W = sign * root root^T
    scaled = _matmul(u, root)
    factors = jnp.concatenate([scaled, _matmul(spread, root)], axis=1)  # [E, 2C]
    by_h = factors.reshape(c, d, 2 * c).transpose(1, 2, 0).reshape(d, 2 * c * c)
    return inverse - sign * _matmul(scaled, scaled.T), by_h


def _refreshed(points: _Points, by_h: jax.Array, sign: float) -> _Points:
    """Every point's R and Q [n, C, C] after the change that ``by_h`` [D, 2 C^2] (from
    :func:`_step`) describes: row-wise, O(n C^2 D + n C^3)."""
    c = points.p.shape[1]
    projected = _matmul(points.h, by_h).reshape(-1, 2 * c, c)  # ((I (x) h^T) factors)^T
    projected = _s_right(projected, points.p)  # [a, b]^T: [n, 2C, C]
    a = projected[:, :c]
    r = points.r - sign * _outer_sum(a, a)
    q = points.q - sign * _outer_sum(projected, jnp.concatenate([projected[:, c:], a], axis=1))
    return points._replace(r=r, q=q)


def _refresh(points: _Points, by_h: jax.Array, sign: float, chunk_size: int) -> _Points:
    """:func:`_refreshed` ``chunk_size`` points at a time, each block's R and Q written
    into arrays of n rows: the [n, 2 C, C] temporaries exist for one block only."""
    r, q = map_slices(
        lambda h, p, r, q, index: _refreshed(_Points(h, p, r, q), by_h, sign)[2:],
        *points,
        chunk_size=chunk_size,
    )
    return points._replace(r=r, q=q)


def _gains(points: _Points, sign: float, chunk_size: int) -> jax.Array:
    """float [n]: :func:`_scores` of every point, ``chunk_size`` points at a time (a pass
    of its own: computed in the same pass as :func:`_refresh` it runs slower on CPU)."""
    return map_slices(
        lambda r, q, index: _scores(r, q, sign), points.r, points.q, chunk_size=chunk_size
    )


def _s_right(matrices: jax.Array, p: jax.Array) -> jax.Array:
    """A S^T per point (the transpose of S A^T): float [n, k, C] from A [n, k, C] and
    p [n, C]. The sum over the C classes is unrolled: XLA on a CPU reduces a short minor
    axis several times slower."""
    mean = matrices[:, :, 0] * p[:, None, 0]
    for j in range(1, p.shape[1]):
        mean = mean + matrices[:, :, j] * p[:, None, j]
    return jnp.sqrt(p)[:, None, :] * (matrices - mean[:, :, None])


def _outer_sum(x: jax.Array, y: jax.Array) -> jax.Array:
    """x^T y per point, sum_k x_k y_k^T: float [n, C, C] from x, y [n, k, C]. A sum of k
    outer products, which XLA fuses into one pass (a batched [C, k] x [k, C] product is
    several times slower on a CPU)."""
    total = x[:, 0, :, None] * y[:, 0, None, :]
    for t in range(1, x.shape[1]):
        total = total + x[:, t, :, None] * y[:, t, None, :]
    return total


def _times_h(matrices: jax.Array, h: jax.Array) -> jax.Array:
    """Contract the last axis (D) of ``matrices`` with h [D]."""
    return jnp.einsum("...d,d->...", matrices, h, precision=_HIGHEST)


def _objective(inverse: jax.Array, fisher: jax.Array) -> jax.Array:
    """tr(K F) for symmetric F."""
    return jnp.sum(inverse * fisher)


def _symmetric(matrix: jax.Array) -> jax.Array:
    return 0.5 * (matrix + matrix.T)


def _matmul(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.matmul(x, y, precision=_HIGHEST)

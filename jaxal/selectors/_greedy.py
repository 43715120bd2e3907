"""Greedy selection by distance: k-center greedy and k-means++ seeding share one loop.

Both keep, for every point, the squared distance to the nearest chosen point, pick one
point per step, and fold that point's distances in. They differ only in the pick.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxal._points import Points
from jaxal.selectors import _points

# pick(step, nearest_sq [N], available [N]) -> int32 index of an available point.
PickFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def greedy_by_distance(
    points: Points,
    candidates: jax.Array,
    budget: int,
    pick: PickFn,
    nearest_sq: jax.Array | None = None,
    *,
    picks: jax.Array | int | None = None,
) -> jax.Array:
    """The shared loop: ``budget`` picks, each folding its distances into ``nearest_sq``.

    Args:
        points: N points (a plain [N, D] array or an ``OuterProduct``).
        candidates: bool [N], the points that may be picked.
        budget: Python int, 1 <= budget <= N.
        pick: chooses one available point from the current nearest squared distances.
        nearest_sq: float [N], initial squared distance to the nearest already-chosen
            point; +inf (no chosen point yet) when None.
        picks: optional int scalar in [0, budget] (may be traced): stop after this many
            picks; the later slots stay -1.

    Returns:
        int32 [budget] in pick order, distinct candidates; -1 once no candidate is left.
    """
    n = candidates.shape[0]
    if not 1 <= budget <= n:
        raise ValueError(f"budget must be in [1, {n}] (the pool size), got {budget}")
    points_sq = _points.sq_norms(points)
    if nearest_sq is None:
        nearest_sq = jnp.full((n,), jnp.inf, points_sq.dtype)

    def step(t, state):
        nearest_sq, available, picked = state
        any_left = jnp.any(available)
        index = jnp.where(any_left, pick(t, nearest_sq, available), -1).astype(jnp.int32)
        safe = jnp.maximum(index, 0)
        new_sq = _points.sq_distances_to(points, safe, points_sq)
        nearest_sq = jnp.where(any_left, jnp.minimum(nearest_sq, new_sq), nearest_sq)
        available = available.at[jnp.where(any_left, index, n)].set(False, mode="drop")
        return nearest_sq, available, picked.at[t].set(index)

    initial = (nearest_sq, candidates, jnp.full((budget,), -1, jnp.int32))
    stop = budget if picks is None else jnp.minimum(picks, budget)
    return jax.lax.fori_loop(0, stop, step, initial)[2]


def sample_by_weight(weights: jax.Array, uniform: jax.Array) -> jax.Array:
    """Inverse-CDF draw: the smallest i with cumsum(weights)[i] > uniform * sum(weights).

    Args:
        weights: float [N] >= 0 with a positive sum.
        uniform: float scalar in [0, 1).

    Returns:
        int32 index with weights[index] > 0.
    """
    cumulative = jnp.cumsum(weights)
    index = jnp.searchsorted(cumulative, uniform * cumulative[-1], side="right")
    last_positive = weights.shape[0] - 1 - jnp.argmax(weights[::-1] > 0)
    return jnp.minimum(index, last_positive).astype(jnp.int32)


def k_center_greedy(
    points: Points,
    candidates: jax.Array,
    reference: jax.Array,
    budget: int,
    key: jax.Array,
    chunk_size: int = 128,
) -> jax.Array:
    """Greedy k-center (Sener & Savarese 2018): the candidate furthest from all chosen.

    The first pick is the candidate furthest from the ``reference`` set (the labeled
    points); with an empty reference set it is a uniform draw among the candidates. Ties go
    to the lower index. Cost O(N * L * D) for the reference distances (chunked, see
    ``min_sq_distances_to_members``) plus O(budget * N * D).

    Args:
        points: N points (a plain [N, D] array or an ``OuterProduct``).
        candidates: bool [N], the points that may be picked.
        reference: bool [N], points already covered (distances start from them).
        budget: Python int, 1 <= budget <= N.
        key: PRNG key, used only when ``reference`` is empty.
        chunk_size: reference points per distance chunk.

    Returns:
        int32 [budget] in pick order, distinct candidates; -1 once none is left.
    """
    points_sq = _points.sq_norms(points)
    nearest_sq = _points.min_sq_distances_to_members(points, reference, points_sq, chunk_size)
    first_uniform = jax.random.uniform(key)
    no_reference = ~jnp.any(reference)

    def pick(t, nearest_sq, available):
        furthest = jnp.argmax(jnp.where(available, nearest_sq, -1.0))
        uniform_pick = sample_by_weight(available.astype(jnp.float32), first_uniform)
        return jnp.where((t == 0) & no_reference, uniform_pick, furthest)

    return greedy_by_distance(points, candidates, budget, pick, nearest_sq)


def kmeans_plusplus(
    points: Points,
    candidates: jax.Array,
    uniforms: jax.Array,
    *,
    first: str = "uniform",
    picks: jax.Array | int | None = None,
) -> jax.Array:
    """k-means++ seeding (D^2 sampling) with the uniforms given explicitly.

    Each pick draws a candidate with probability proportional to its squared distance to
    the nearest chosen point (inverse CDF over ``uniforms[t]``). Chosen points are never
    drawn again; if every remaining candidate sits on a chosen point (all weights zero), the
    draw is uniform over the remaining candidates.

    Args:
        points: N points (a plain [N, D] array or an ``OuterProduct``).
        candidates: bool [N].
        uniforms: float [budget] in [0, 1), one per pick; ``budget`` = its length.
        first: ``"uniform"`` (k-means++: the first pick is drawn with ``uniforms[0]``) or
            ``"max_norm"`` (BADGE: the candidate with the largest norm, lowest index on
            ties).
        picks: optional int scalar (may be traced): stop after this many picks (see
            :func:`greedy_by_distance`).

    Returns:
        int32 [budget] in pick order, distinct candidates; -1 once none is left.
    """
    if first not in ("uniform", "max_norm"):
        raise ValueError(f"first must be 'uniform' or 'max_norm', got {first!r}")
    uniforms = jnp.asarray(uniforms)
    points_sq = _points.sq_norms(points)

    def pick(t, nearest_sq, available):
        weights = jnp.where(available, jnp.where(jnp.isinf(nearest_sq), 1.0, nearest_sq), 0.0)
        weights = jnp.where(jnp.sum(weights) > 0, weights, available.astype(weights.dtype))
        drawn = sample_by_weight(weights, uniforms[t])
        if first == "uniform":
            return drawn
        largest = jnp.argmax(jnp.where(available, points_sq, -1.0)).astype(jnp.int32)
        return jnp.where(t == 0, largest, drawn)

    return greedy_by_distance(points, candidates, uniforms.shape[0], pick, picks=picks)

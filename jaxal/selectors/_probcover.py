"""ProbCover's greedy max coverage of delta-balls, and the ball purity that chooses delta.

The delta-ball graph (an edge i -> j when ||x_i - x_j|| < delta, self-loops included) is
never stored: counts of points in balls are computed from blocks of distances, so memory
stays O(N * chunk_size) for any N.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal._chunks import map_chunks
from jaxal.selectors import _points
from jaxal.selectors._selection import GreedyInfo, Selection


def ball_counts(
    points: jax.Array, rows: jax.Array, sq_radius: jax.Array, chunk_size: int = 256
) -> jax.Array:
    """int32 [N]: for every point j, how many points of ``rows`` lie in its ball,
    #{i in rows : ||x_i - x_j||^2 < sq_radius}.

    The rows are gathered ``chunk_size`` at a time and a ``lax.while_loop`` runs only as
    many blocks as there are rows: O(|rows| * N * D) work, O(chunk_size * N) memory. Every
    pair is measured the same way (a row block against all points), so counts of
    disjoint row sets add up exactly.

    Args:
        points: float [N, D].
        rows: bool [N].
        sq_radius: float scalar, delta squared.
        chunk_size: Python int >= 1.
    """
    n = rows.shape[0]
    chunk = min(chunk_size, n)
    padded = -(-n // chunk) * chunk
    index = jnp.nonzero(rows, size=padded, fill_value=n)[0]
    count = jnp.sum(rows)
    points_sq = _points.sq_norms(points)

    def step(state):
        start, counts = state
        block = jax.lax.dynamic_slice(index, (start,), (chunk,))
        safe = jnp.minimum(block, n - 1)
        sq = _points.sq_distances(_points.gather(points, safe), points, points_sq[safe])
        inside = (sq < sq_radius) & (block < n)[:, None]
        return start + chunk, counts + jnp.sum(inside, axis=0, dtype=jnp.int32)

    initial = (jnp.int32(0), jnp.zeros((n,), jnp.int32))
    return jax.lax.while_loop(lambda state: state[0] < count, step, initial)[1]


def probcover(
    points: jax.Array,
    candidates: jax.Array,
    members: jax.Array,
    covering: jax.Array,
    delta: jax.Array | float,
    budget: int,
    key: jax.Array,
    *,
    chunk_size: int = 256,
) -> Selection:
    """Greedy max coverage of delta-balls (ProbCover, Yehuda et al. 2022).

    The points of ``members`` inside a ball of a ``covering`` point are covered first.
    Each pick is then the candidate whose ball holds the most uncovered members (its
    out-degree in the graph with the covered points' incoming edges removed), the lowest
    index on ties; the members in its ball become covered. Once no candidate's ball holds
    an uncovered member (coverage is saturated), picks are uniform among the remaining
    candidates (one uniform priority per point from ``key``), as scikit-activeml does
    through its random tie-break; the official code returns index 0 there.

    Cost: O(L * N * D) for the covering points' balls, O(N^2 * D) for the initial degrees
    (every member's ball, in blocks), then per pick O(N * D) plus O(|newly covered| * N
    * D) to take the newly covered points out of every degree: O(N^2 * D) over the whole
    selection whatever the budget, since a point is covered once. Memory
    O(N * chunk_size); the N x N graph never exists.

    Args:
        points: float [N, D].
        candidates: bool [N], the points that may be picked.
        members: bool [N], the points to cover (points outside count for nothing).
        covering: bool [N], points whose balls are covered already (the labeled set).
        delta: float scalar > 0, the radius (strict: ||x - y|| < delta is an edge).
        budget: Python int, 1 <= budget <= N.
        key: PRNG key, for the picks after saturation.
        chunk_size: Python int >= 1, points per distance block.

    Returns:
        ``Selection(indices int32 [budget], GreedyInfo(gains float32 [budget]))``: the
        picks in order (-1 once no candidate is left) and how many uncovered members each
        one covered.
    """
    n = candidates.shape[0]
    if not 1 <= budget <= n:
        raise ValueError(f"budget must be in [1, {n}] (the pool size), got {budget}")
    sq_radius = jnp.square(jnp.asarray(delta, _points.computation_dtype(points)))
    points_sq = _points.sq_norms(points)
    nearest_cover = _points.min_sq_distances_to_members(points, covering, points_sq, chunk_size)
    uncovered = members & ~(nearest_cover < sq_radius)
    degrees = ball_counts(points, uncovered, sq_radius, chunk_size)
    priority = jax.random.uniform(key, (n,))

    def step(t, state):
        uncovered, degrees, available, picked, gains = state
        best = jnp.argmax(jnp.where(available, degrees, -1)).astype(jnp.int32)
        saturated = jnp.max(jnp.where(available, degrees, 0)) == 0
        fallback = jnp.argmax(jnp.where(available, priority, -1.0)).astype(jnp.int32)
        index = jnp.where(saturated, fallback, best)
        index = jnp.where(jnp.any(available), index, -1)
        distances = _points.sq_distances_to(points, jnp.maximum(index, 0), points_sq)
        newly = uncovered & (distances < sq_radius) & (index >= 0)
        degrees = degrees - ball_counts(points, newly, sq_radius, chunk_size)
        available = available.at[jnp.where(index < 0, n, index)].set(False, mode="drop")
        gain = jnp.sum(newly).astype(jnp.float32)
        return (
            uncovered & ~newly,
            degrees,
            available,
            picked.at[t].set(index),
            gains.at[t].set(gain),
        )

    initial = (
        uncovered,
        degrees,
        candidates,
        jnp.full((budget,), -1, jnp.int32),
        jnp.zeros((budget,), jnp.float32),
    )
    _, _, _, picked, gains = jax.lax.fori_loop(0, budget, step, initial)
    return Selection(picked, GreedyInfo(gains))


def nearest_other_label(
    points: jax.Array, members: jax.Array, labels: jax.Array, chunk_size: int = 256
) -> jax.Array:
    """float [N]: every point's squared distance to the nearest member with another label
    (+inf if none). Blocks of ``chunk_size`` rows: O(N^2 * D) work, O(chunk_size * N)
    memory.

    Args:
        points: float [N, D]; members: bool [N]; labels: int [N].
    """
    points_sq = _points.sq_norms(points)

    def block(chunk, chunk_labels, chunk_sq, index):
        del index
        sq = _points.sq_distances(chunk, points, chunk_sq)
        other = members[None, :] & (labels[None, :] != chunk_labels[:, None])
        return jnp.min(jnp.where(other, sq, jnp.inf), axis=1)

    return map_chunks(block, points, labels, points_sq, chunk_size=chunk_size)


def ball_purity(
    points: jax.Array,
    members: jax.Array,
    labels: jax.Array,
    deltas: jax.Array,
    chunk_size: int = 256,
) -> jax.Array:
    """float32 [G]: for each radius, the fraction of members whose delta-ball (strict <,
    itself included) holds members of its own label only (ProbCover's purity).

    A ball is pure exactly when delta <= the distance to the nearest member of another
    label, so one O(N^2 * D) pass (:func:`nearest_other_label`) gives every radius; purity
    never increases with delta.

    Args:
        points: float [N, D]; members: bool [N]; labels: int [N] (pseudo-labels).
        deltas: float [G], the radii.
    """
    nearest = nearest_other_label(points, members, labels, chunk_size)
    deltas = jnp.asarray(deltas, _points.computation_dtype(points))
    pure = nearest[None, :] >= jnp.square(deltas)[:, None]
    weight = members.astype(jnp.float32)
    return jnp.sum(pure * weight[None, :], axis=1) / jnp.maximum(jnp.sum(weight), 1.0)


def purity_radius(
    points: jax.Array,
    members: jax.Array,
    labels: jax.Array,
    deltas: jax.Array,
    alpha: float,
    chunk_size: int = 256,
) -> jax.Array:
    """The largest radius of ``deltas`` whose :func:`ball_purity` is at least ``alpha``
    (ProbCover's choice); the smallest radius when none is (scikit-activeml keeps its
    smallest too, with a warning).

    Args:
        deltas: float [G], increasing.
        alpha: float in (0, 1].

    Returns:
        float scalar, one of ``deltas``.
    """
    deltas = jnp.asarray(deltas, _points.computation_dtype(points))
    purity = ball_purity(points, members, labels, deltas, chunk_size)
    passing = purity >= alpha
    return jnp.where(jnp.any(passing), jnp.max(jnp.where(passing, deltas, -jnp.inf)), deltas[0])

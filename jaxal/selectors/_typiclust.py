"""TypiClust's selection given the clusters: the most typical point of each chosen cluster."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.selectors import _points


def typical_per_cluster(
    points: jax.Array,
    candidates: jax.Array,
    members: jax.Array,
    labeled: jax.Array,
    assignment: jax.Array,
    n_clusters: int,
    budget: int,
    *,
    neighbors: int = 20,
    min_cluster_size: int = 5,
    squared: bool = False,
    chunk_size: int = 256,
) -> jax.Array:
    """TypiClust's picks (Hacohen et al. 2022) from a clustering of the pool.

    Clusters are ranked once, as the official code does: those with more than
    ``min_cluster_size`` members first, then by number of labeled members (ascending),
    then by size (descending), then by cluster id. Pick t goes to the next cluster in
    that order (round robin, so when the budget exceeds the uncovered clusters the
    covered ones follow, then the order starts again); a cluster with no candidate left is
    skipped. Once no cluster of the ranking has a candidate left, the small clusters
    (``min_cluster_size`` members or fewer) give theirs, in the same ranking; every
    candidate therefore belongs to a cluster that can be reached, and exactly
    min(budget, candidates) slots are filled.

    In the chosen cluster, the point picked is the candidate of least mean distance to
    its K nearest neighbours among the cluster's candidates not yet picked (the official
    code's set: labeled and picked points are left out), with
    K = min(``neighbors``, n // 2) for n such candidates (the official rule; K = 0 when
    n = 1: the single candidate). That is the highest typicality 1 / mean distance; ties
    go to the lower index.

    Cost per pick O(n_c^2 * D) for a cluster of n_c candidates (chunked, dynamic trip
    counts) plus O(N); memory O(chunk_size * (chunk_size + neighbors)).

    Args:
        points: float [N, D].
        candidates: bool [N], the points that may be picked (a subset of ``members``).
        members: bool [N], the points counted in the cluster sizes (labeled included).
        labeled: bool [N], the points that cover their clusters.
        assignment: int [N] in [0, n_clusters), every point's cluster.
        n_clusters: Python int, the number of cluster ids.
        budget: Python int >= 1.
        neighbors: Python int >= 1, the static maximum K.
        min_cluster_size: clusters of at most this many members rank last.
        squared: rank by mean squared distance (the official code, which takes faiss's
            squared L2) instead of the paper's mean distance.
        chunk_size: Python int >= 1, points per distance block.

    Returns:
        int32 [budget] in pick order: distinct candidates, -1 once none is left.
    """
    n = candidates.shape[0]
    assignment = assignment.astype(jnp.int32)
    sizes = jax.ops.segment_sum(members.astype(jnp.int32), assignment, num_segments=n_clusters)
    covered = jax.ops.segment_sum(
        (labeled & members).astype(jnp.int32), assignment, num_segments=n_clusters
    )
    eligible = sizes > min_cluster_size
    ids = jnp.arange(n_clusters, dtype=jnp.int32)
    order = jnp.lexsort((ids, -sizes, covered, ~eligible)).astype(jnp.int32)
    n_eligible = jnp.sum(eligible).astype(jnp.int32)
    position = jnp.arange(n_clusters, dtype=jnp.int32)
    in_ranking = position < n_eligible
    # Eligible positions in round-robin distance from the pointer; small clusters after.
    big = jnp.int32(2 * n_clusters + 1)
    points_sq = _points.sq_norms(points)

    def step(t, state):
        remaining, pointer, picked = state
        left = jax.ops.segment_sum(remaining.astype(jnp.int32), assignment, num_segments=n_clusters)
        available = left[order] > 0
        rank = jnp.where(
            in_ranking,
            jnp.mod(position - pointer, jnp.maximum(n_eligible, 1)),
            n_clusters + position,
        )
        chosen = jnp.argmin(jnp.where(available, rank, big)).astype(jnp.int32)
        any_left = jnp.any(available)
        cluster = order[chosen]
        pool = remaining & (assignment == cluster)
        index = _most_typical(points, points_sq, pool, neighbors, squared, chunk_size)
        index = jnp.where(any_left, index, -1)
        pointer = jnp.where(any_left & (chosen < n_eligible), chosen + 1, pointer)
        remaining = remaining.at[jnp.where(index < 0, n, index)].set(False, mode="drop")
        return remaining, pointer, picked.at[t].set(index)

    initial = (candidates, jnp.int32(0), jnp.full((budget,), -1, jnp.int32))
    return jax.lax.fori_loop(0, budget, step, initial)[2]


def _most_typical(
    points: jax.Array,
    points_sq: jax.Array,
    pool: jax.Array,
    neighbors: int,
    squared: bool,
    chunk_size: int,
) -> jax.Array:
    """int32: the point of ``pool`` (bool [N], not empty) with the least mean distance to
    its min(neighbors, n // 2) nearest other points of ``pool``; the lower index on ties."""
    n = pool.shape[0]
    chunk = min(chunk_size, n)
    padded = -(-n // chunk) * chunk
    index = jnp.nonzero(pool, size=padded, fill_value=n)[0]
    count = jnp.sum(pool).astype(jnp.int32)
    k = jnp.minimum(neighbors, count // 2)
    width = neighbors + 1  # the nearest: the point itself (or a duplicate, at distance 0)

    def block(start):
        rows = jax.lax.dynamic_slice(index, (start,), (chunk,))
        return rows, _points.gather(points, jnp.minimum(rows, n - 1)), rows < n

    def row_chunk(state):
        start, best_value, best_index = state
        rows, row_points, row_valid = block(start)
        row_sq = points_sq[jnp.minimum(rows, n - 1)]

        def col_chunk(inner):
            col_start, nearest = inner
            _, col_points, col_valid = block(col_start)
            sq = _points.sq_distances(row_points, col_points, row_sq)
            sq = jnp.where(col_valid[None, :], sq, jnp.inf)
            merged = jnp.concatenate([nearest, sq], axis=1)
            return col_start + chunk, -jax.lax.top_k(-merged, width)[0]

        nearest = jnp.full((chunk, width), jnp.inf, points.dtype)
        _, nearest = jax.lax.while_loop(
            lambda inner: inner[0] < count, col_chunk, (jnp.int32(0), nearest)
        )
        others = nearest[:, 1:] if squared else jnp.sqrt(nearest[:, 1:])
        used = jnp.arange(neighbors)[None, :] < k
        mean = jnp.sum(jnp.where(used, others, 0.0), axis=1) / jnp.maximum(k, 1)
        mean = jnp.where(row_valid, mean, jnp.inf)
        local = jnp.argmin(mean)
        better = mean[local] < best_value
        return (
            start + chunk,
            jnp.where(better, mean[local], best_value),
            jnp.where(better, rows[local], best_index),
        )

    initial = (jnp.int32(0), jnp.asarray(jnp.inf, points.dtype), index[0])
    return jax.lax.while_loop(lambda state: state[0] < count, row_chunk, initial)[2].astype(
        jnp.int32
    )

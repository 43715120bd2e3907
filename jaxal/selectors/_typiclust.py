"""TypiClust's selection given the clusters: the most typical point of each chosen cluster."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

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

    The candidates are sorted by cluster once, so each cluster's candidates are one
    contiguous range; every candidate's typicality within its cluster is computed once
    up front (a cluster's first pick uses it: nothing of that cluster was picked before),
    and a cluster visited again by the round robin is recomputed without its picks.
    Cost O(sum_c n_c^2 * D) for clusters of n_c candidates (block granularity
    ``chunk_size``) plus O(n_c^2 * D + N) per revisit; memory O(N * D) for the sorted
    points and O(chunk_size * (chunk_size + neighbors)) per block.

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

    groups = _Groups.of(points, candidates, assignment, n_clusters)
    typicality = partial(
        _mean_neighbor_distances,
        groups,
        neighbors=neighbors,
        squared=squared,
        chunk_size=min(chunk_size, n),
    )
    first_means = typicality(groups.alive, 0, groups.total)
    first_best = _best_per_cluster(first_means, groups.cluster, n_clusters)

    def revisit(alive, cluster):
        lo = groups.starts[cluster]
        hi = lo + groups.sizes[cluster]
        means = typicality(alive, lo, hi)
        return jnp.argmin(means).astype(jnp.int32)  # lowest position: lowest index on ties

    def step(t, state):
        alive, left, visited, pointer, picked = state
        available = left[order] > 0
        rank = jnp.where(
            in_ranking,
            jnp.mod(position - pointer, jnp.maximum(n_eligible, 1)),
            n_clusters + position,
        )
        chosen = jnp.argmin(jnp.where(available, rank, big)).astype(jnp.int32)
        any_left = jnp.any(available)
        cluster = order[chosen]
        at = jax.lax.cond(
            visited[cluster], revisit, lambda _alive, c: first_best[c], alive, cluster
        )
        index = jnp.where(any_left, groups.order[at], -1)
        pointer = jnp.where(any_left & (chosen < n_eligible), chosen + 1, pointer)
        alive = alive.at[jnp.where(any_left, at, n)].set(False, mode="drop")
        left = left.at[cluster].add(jnp.where(any_left, -1, 0))
        visited = visited.at[cluster].set(True)
        return alive, left, visited, pointer, picked.at[t].set(index)

    initial = (
        groups.alive,
        groups.sizes,
        jnp.zeros((n_clusters,), bool),
        jnp.int32(0),
        jnp.full((budget,), -1, jnp.int32),
    )
    return jax.lax.fori_loop(0, budget, step, initial)[4]


class _Groups(NamedTuple):
    """The candidates sorted by cluster (then index), the others after them.

    order: int32 [N], the original index at each sorted position.
    points: float [N, D] and points_sq: float [N], in sorted order.
    cluster: int32 [N], each sorted position's cluster (n_clusters past the candidates).
    alive: bool [N], the sorted positions that hold a candidate.
    starts, sizes: int32 [n_clusters], each cluster's first position and candidate count.
    total: int32 scalar, the number of candidates.
    """

    order: jax.Array
    points: jax.Array
    points_sq: jax.Array
    cluster: jax.Array
    alive: jax.Array
    starts: jax.Array
    sizes: jax.Array
    total: jax.Array

    @classmethod
    def of(
        cls, points: jax.Array, candidates: jax.Array, assignment: jax.Array, n_clusters: int
    ) -> _Groups:
        key = jnp.where(candidates, assignment, n_clusters)
        order = jnp.argsort(key, stable=True).astype(jnp.int32)
        count = jax.ops.segment_sum(
            candidates.astype(jnp.int32), assignment, num_segments=n_clusters
        )
        sorted_points = points[order]
        return cls(
            order=order,
            points=sorted_points,
            points_sq=_points.sq_norms(sorted_points),
            cluster=key[order],
            alive=candidates[order],
            starts=jnp.cumsum(count) - count,
            sizes=count,
            total=jnp.sum(count),
        )


def _mean_neighbor_distances(
    groups: _Groups,
    alive: jax.Array,
    lo: jax.Array | int,
    hi: jax.Array | int,
    *,
    neighbors: int,
    squared: bool,
    chunk_size: int,
) -> jax.Array:
    """float [N] in sorted order: for each alive position in [lo, hi), the mean distance
    to its K nearest other alive positions of its cluster, K = min(neighbors, n // 2) for
    the cluster's n alive positions; +inf elsewhere. Rows and columns go in blocks of
    ``chunk_size``: a row block reads only the column range of the clusters it spans."""
    n = alive.shape[0]
    n_groups = groups.starts.shape[0]
    alive_count = jax.ops.segment_sum(
        alive.astype(jnp.int32), groups.cluster, num_segments=n_groups + 1
    )
    width = neighbors + 1  # the nearest: the point itself (or a duplicate, at distance 0)
    offsets = jnp.arange(chunk_size, dtype=jnp.int32)

    def row_block(state):
        step, means = state
        first = lo + step * chunk_size
        start = jnp.minimum(first, n - chunk_size)
        rows = start + offsets
        row_cluster = groups.cluster[rows]
        row_ok = alive[rows] & (rows >= first) & (rows < hi)
        block = jax.lax.dynamic_slice_in_dim(groups.points, start, chunk_size)
        block_sq = jax.lax.dynamic_slice_in_dim(groups.points_sq, start, chunk_size)
        low_cluster = jnp.minimum(groups.cluster[start], n_groups - 1)
        high_cluster = jnp.minimum(
            groups.cluster[jnp.minimum(start + chunk_size, hi) - 1], n_groups - 1
        )
        col_lo = groups.starts[low_cluster]
        col_hi = groups.starts[high_cluster] + groups.sizes[high_cluster]

        def col_block(inner):
            col_step, nearest = inner
            col_first = col_lo + col_step * chunk_size
            col_start = jnp.minimum(col_first, n - chunk_size)
            cols = col_start + offsets
            columns = jax.lax.dynamic_slice_in_dim(groups.points, col_start, chunk_size)
            sq = _points.sq_distances(block, columns, block_sq)
            same = row_cluster[:, None] == groups.cluster[cols][None, :]
            usable = alive[cols] & (cols >= col_first) & (cols < col_hi)
            sq = jnp.where(same & usable[None, :], sq, jnp.inf)
            merged = jnp.concatenate([nearest, sq], axis=1)
            return col_step + 1, -jax.lax.top_k(-merged, width)[0]

        nearest = jnp.full((chunk_size, width), jnp.inf, _points.computation_dtype(block))
        _, nearest = jax.lax.while_loop(
            lambda inner: col_lo + inner[0] * chunk_size < col_hi,
            col_block,
            (jnp.int32(0), nearest),
        )
        others = nearest[:, 1:] if squared else jnp.sqrt(nearest[:, 1:])
        k = jnp.minimum(neighbors, alive_count[row_cluster] // 2)
        used = jnp.arange(neighbors)[None, :] < k[:, None]
        mean = jnp.sum(jnp.where(used, others, 0.0), axis=1) / jnp.maximum(k, 1)
        old = jax.lax.dynamic_slice_in_dim(means, start, chunk_size)
        mean = jnp.where(row_ok, mean, old)
        return step + 1, jax.lax.dynamic_update_slice_in_dim(means, mean, start, 0)

    means = jnp.full((n,), jnp.inf, _points.computation_dtype(groups.points))
    return jax.lax.while_loop(
        lambda state: lo + state[0] * chunk_size < hi, row_block, (jnp.int32(0), means)
    )[1]


def _best_per_cluster(means: jax.Array, cluster: jax.Array, n_clusters: int) -> jax.Array:
    """int32 [n_clusters]: each cluster's sorted position of least ``means`` [N] (the
    lowest position on ties; ``cluster`` [N] may hold n_clusters for no cluster)."""
    n = means.shape[0]
    least = jax.ops.segment_min(means, cluster, num_segments=n_clusters + 1)
    positions = jnp.arange(n, dtype=jnp.int32)
    at_least = jnp.where(means == least[cluster], positions, n)
    return jax.ops.segment_min(at_least, cluster, num_segments=n_clusters + 1)[:n_clusters]

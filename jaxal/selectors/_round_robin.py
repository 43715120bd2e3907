"""Round robin over clusters, smallest first (Cluster-Margin's sampling)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def round_robin(
    clusters: jax.Array, candidates: jax.Array, uniforms: jax.Array, budget: int
) -> jax.Array:
    """Visit the clusters from the fewest candidates to the most (ties: the lower cluster
    id first) and take one candidate from each, again and again, until ``budget`` are
    taken; a cluster with none left is skipped. In a cluster the candidates come in the
    order of ``uniforms`` (lowest first; uniform draws make it a random order), so pass r
    takes every cluster's r-th candidate.

    One sort: candidate i is pick (rank of i in its cluster, rank of its cluster), in
    lexicographic order. Cost O(n log n), static shapes.

    Args:
        clusters: int [n], each point's cluster id in [0, n).
        candidates: bool [n], the points that may be taken.
        uniforms: float [n], the order inside a cluster.
        budget: Python int, 1 <= budget <= n.

    Returns:
        int32 [budget] in pick order; -1 once no candidate is left.
    """
    n = clusters.shape[0]
    if not 1 <= budget <= n:
        raise ValueError(f"budget must be in [1, {n}] (the number of points), got {budget}")
    index = jnp.arange(n, dtype=jnp.int32)
    cluster = jnp.where(candidates, clusters, n).astype(jnp.int32)
    sizes = jax.ops.segment_sum(candidates.astype(jnp.int32), cluster, n)
    cluster_order = jnp.lexsort((index, jnp.where(sizes > 0, sizes, n + 1)))
    cluster_rank = jnp.zeros((n,), jnp.int32).at[cluster_order].set(index)
    in_cluster = jnp.lexsort((uniforms, cluster))  # by cluster, then by uniform
    sorted_cluster = cluster[in_cluster]
    starts = jnp.concatenate([jnp.ones((1,), bool), sorted_cluster[1:] != sorted_cluster[:-1]])
    first = jax.lax.cummax(jnp.where(starts, index, 0))
    rank = jnp.zeros((n,), jnp.int32).at[in_cluster].set(index - first)
    turn = jnp.where(candidates, rank, n)
    order = jnp.lexsort((cluster_rank[jnp.minimum(cluster, n - 1)], turn))
    filled = jnp.arange(budget) < jnp.sum(candidates)
    return jnp.where(filled, order[:budget], -1).astype(jnp.int32)

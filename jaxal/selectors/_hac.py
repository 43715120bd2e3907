"""Exact average-linkage agglomerative clustering (UPGMA) under ``jit``, and flat cuts of
its dendrogram.

The nearest-neighbour chain algorithm: follow nearest neighbours from any cluster until
two clusters are each other's nearest, merge them, continue from the rest of the chain.
Average linkage is reducible, so this gives the same merges as merging the closest pair
each time (scipy's ``linkage(method="average")`` uses the same algorithm), in another
order: the merges are sorted by height at the end (stable, as scipy).

Average linkage is the mean pairwise distance, d(A, B) = S(A, B) / (|A| |B|) with S the
sum of the point distances, and S is additive: S(A u B, .) = S(A, .) + S(B, .). So the
loop keeps, for every cluster, the sums of its points' distances to every *point*
(one row of an [n, n] matrix, which starts as the distance matrix); a merge adds one row
to another. A cluster's distances to the other clusters are its row summed per cluster
(one segment sum): every write is a row, none is a column, which a row-major [n, n]
matrix could only take one scattered element at a time.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal.selectors import _points


class Linkage(NamedTuple):
    """A dendrogram of n points: merge t joined the clusters whose smallest member
    indices were ``merged[t, 0] < merged[t, 1]`` (the merged cluster keeps the first),
    at average-linkage distance ``heights[t]``; merges sorted by height.

    Attributes:
        merged: int32 [n - 1, 2]; -1 in the rows after the last merge.
        heights: float32 [n - 1], ascending; +inf in the rows after the last merge.
    """

    merged: jax.Array
    heights: jax.Array


def average_linkage(points: jax.Array, members: jax.Array) -> Linkage:
    """Average-linkage (UPGMA) agglomerative clustering of the ``members`` by Euclidean
    distance, every merge down to one cluster.

    Exact, as ``scipy.cluster.hierarchy.linkage(points, "average")`` up to floating-point
    ties (here float32, and a tie goes to the lower index). Cost O(n^2 D) for the
    distances and O(n^2) for the at most 4 n chain steps (each a row of n); memory O(n^2).

    Args:
        points: float [n, D].
        members: bool [n], the points to cluster (the others are left out).

    Returns:
        :class:`Linkage` of (number of members - 1) merges, sorted by height.
    """
    n = points.shape[0]
    points = points.astype(jnp.float32)
    count = jnp.sum(members)
    center = jnp.sum(jnp.where(members[:, None], points, 0.0), 0) / jnp.maximum(count, 1)
    centered = jnp.where(members[:, None], points - center, 0.0)  # less cancellation
    sums = jnp.sqrt(_points.sq_distances(centered, centered))
    total = jnp.maximum(count - 1, 0)
    index = jnp.arange(n, dtype=jnp.int32)

    def more(state):
        step, done = state[0], state[5]
        return (done < total) & (step < 4 * n)

    def step(state):
        step, sums, cluster, size, chain, done, top, merged, heights, level = state
        alive = size > 0
        chain = jnp.where(top == 0, chain.at[0].set(jnp.argmax(alive).astype(jnp.int32)), chain)
        top = jnp.maximum(top, 1)
        x = chain[top - 1]
        previous = jnp.where(top >= 2, chain[jnp.maximum(top - 2, 0)], -1)
        linked = jax.ops.segment_sum(sums[x], cluster, n) / (size[x] * size)
        linked = jnp.where(alive & (index != x), linked, jnp.inf)
        nearest = jnp.min(linked)
        y = jnp.min(jnp.where(linked == nearest, index, n)).astype(jnp.int32)
        back = (previous >= 0) & (linked[jnp.maximum(previous, 0)] == nearest)
        y = jnp.where(back, previous, y)

        def merge(state):
            sums, cluster, size, chain, done, top, merged, heights, level = state
            low, high = jnp.minimum(x, y), jnp.maximum(x, y)
            sums = sums.at[low].add(sums[high])
            cluster = jnp.where(cluster == high, low, cluster)
            size = size.at[low].add(size[high]).at[high].set(0.0)
            merged = merged.at[done].set(jnp.stack([low, high]))
            # Never below a child's height (float rounding could invert them): sorting by
            # height then keeps every merge after those that formed its two clusters.
            height = jnp.maximum(nearest, jnp.maximum(level[low], level[high]))
            heights = heights.at[done].set(height)
            level = level.at[low].set(height)
            return sums, cluster, size, chain, done + 1, top - 2, merged, heights, level

        def push(state):
            chain, top = state[3], state[5]
            return (*state[:3], chain.at[top].set(y), state[4], top + 1, *state[6:])

        carried = (sums, cluster, size, chain, done, top, merged, heights, level)
        return (step + 1, *jax.lax.cond(back, merge, push, carried))

    initial = (
        jnp.int32(0),
        sums,
        jnp.where(members, index, n),  # each point's cluster: its smallest member index
        members.astype(jnp.float32),
        jnp.zeros((n,), jnp.int32),
        jnp.int32(0),
        jnp.int32(0),
        jnp.full((max(n - 1, 0), 2), -1, jnp.int32),
        jnp.full((max(n - 1, 0),), jnp.inf, jnp.float32),
        jnp.zeros((n,), jnp.float32),  # the height of the merge that formed each cluster
    )
    merged, heights = jax.lax.while_loop(more, step, initial)[-3:-1]
    order = jnp.argsort(heights, stable=True)
    return Linkage(merged[order], heights[order])


def cut(
    linkage: Linkage,
    members: jax.Array,
    *,
    clusters: int | jax.Array | None = None,
    threshold: float | None = None,
) -> jax.Array:
    """Flat clusters from a dendrogram: into ``clusters`` clusters (its first
    members - ``clusters`` merges; scipy's ``fcluster(criterion="maxclust")`` up to
    ties in height), or at ``threshold`` (the merges of height <= threshold; scipy's
    ``criterion="distance"``). Exactly one of the two. Cost O(n^2).

    Args:
        linkage: :class:`Linkage` of n points.
        members: bool [n], the points it clustered.
        clusters: int >= 1 (a Python int or int scalar).
        threshold: float, a distance.

    Returns:
        int32 [n]: each member's cluster, named by its smallest member index; n for
        non-members.
    """
    if (clusters is None) == (threshold is None):
        raise ValueError("give exactly one of clusters and threshold")
    n = members.shape[0]
    if threshold is not None:
        applied = linkage.heights <= threshold
    else:
        applied = jnp.arange(max(n - 1, 0)) < jnp.sum(members) - jnp.asarray(clusters)

    def replay(t, cluster):
        low, high = linkage.merged[t, 0], linkage.merged[t, 1]
        return jnp.where(applied[t] & (cluster == high), low, cluster)

    initial = jnp.where(members, jnp.arange(n, dtype=jnp.int32), n)
    return jax.lax.fori_loop(0, max(n - 1, 0), replay, initial)

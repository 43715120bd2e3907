"""k-means clustering of the candidates, then one distinct candidate per center."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.selectors import _points
from jaxal.selectors._greedy import kmeans_plusplus
from jaxal.selectors._top_k import random_subset


def lloyd(
    embeddings: jax.Array,
    candidates: jax.Array,
    centers: jax.Array,
    max_iter: int,
    tol: float,
    active: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Lloyd iterations over the candidates, at most ``max_iter``, from ``centers``.

    Each iteration assigns every candidate to its nearest center and moves each center to
    the mean of its members; a cluster that empties keeps its previous center, so no center
    is ever undefined. It stops when an iteration lowers the inertia (summed squared
    distance to the nearest center) by no more than ``tol`` times the inertia before it.
    Cost O(N * K * D) per iteration; memory O(chunk * K).

    Args:
        embeddings: float [N, D].
        candidates: bool [N], the points that are clustered.
        centers: float [K, D], the initial centers.
        max_iter: Python int >= 0.
        tol: float >= 0, relative inertia decrease that counts as converged.
        active: optional bool [K] (at least one True): only these centers take members;
            the others stay where they are (a number of clusters that is a traced value
            under a static maximum K).

    Returns:
        (centers float [K, D], inertia: float scalar of the returned centers).
    """
    weights = candidates.astype(embeddings.dtype)
    k = centers.shape[0]

    def assign(centers):
        assignment, distances = _points.nearest(embeddings, centers, active=active)
        return assignment, jnp.sum(distances * weights)

    def more(state):
        iteration, _, _, previous, inertia = state
        improving = previous - inertia > tol * previous
        return (iteration < max_iter) & ((iteration == 0) | improving)

    def step(state):
        iteration, centers, assignment, _, inertia = state
        sums = jax.ops.segment_sum(embeddings * weights[:, None], assignment, num_segments=k)
        sizes = jax.ops.segment_sum(weights, assignment, num_segments=k)
        moved = jnp.where(sizes[:, None] > 0, sums / jnp.maximum(sizes, 1.0)[:, None], centers)
        new_assignment, new_inertia = assign(moved)
        return iteration + 1, moved, new_assignment, inertia, new_inertia

    assignment, inertia = assign(centers)
    initial = (jnp.int32(0), centers, assignment, inertia, inertia)
    _, centers, _, _, inertia = jax.lax.while_loop(more, step, initial)
    return centers, inertia


def nearest_distinct(embeddings: jax.Array, candidates: jax.Array, centers: jax.Array) -> jax.Array:
    """For each center in order, the nearest candidate not taken by an earlier center.

    Args:
        embeddings: float [N, D].
        candidates: bool [N].
        centers: float [K, D].

    Returns:
        int32 [K], distinct candidates (lowest index on ties); -1 once none is left.
    """
    n = candidates.shape[0]
    embeddings_sq = _points.sq_norms(embeddings)

    def step(t, state):
        available, picked = state
        distances = _points.sq_distances(embeddings, centers[t][None, :], embeddings_sq)[:, 0]
        index = jnp.argmin(jnp.where(available, distances, jnp.inf)).astype(jnp.int32)
        index = jnp.where(jnp.any(available), index, -1)
        available = available.at[jnp.where(index < 0, n, index)].set(False, mode="drop")
        return available, picked.at[t].set(index)

    k = centers.shape[0]
    initial = (candidates, jnp.full((k,), -1, jnp.int32))
    return jax.lax.fori_loop(0, k, step, initial)[1]


def kmeans(
    embeddings: jax.Array,
    candidates: jax.Array,
    budget: int,
    key: jax.Array,
    *,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> jax.Array:
    """k-means with ``budget`` clusters, then the candidate nearest each center.

    Runs ``n_init`` k-means++ seedings, each refined by :func:`lloyd`, keeps the run with the
    lowest inertia (the first on ties), and returns :func:`nearest_distinct` of its centers.
    Cost per run O(max_iter * N * budget * D).

    Args:
        embeddings: float [N, D].
        candidates: bool [N].
        budget: Python int, 1 <= budget <= N: the number of clusters and of picks.
        key: PRNG key.
        n_init, max_iter: Python ints >= 1 and >= 0.
        tol: relative inertia tolerance, see :func:`lloyd`.

    Returns:
        int32 [budget], distinct candidates; -1 where fewer than ``budget`` candidates exist.
    """

    def one_run(run_key):
        seeds = kmeans_plusplus(embeddings, candidates, jax.random.uniform(run_key, (budget,)))
        # Unfilled seeds (-1: fewer candidates than clusters) start at an arbitrary point.
        return lloyd(embeddings, candidates, embeddings[jnp.maximum(seeds, 0)], max_iter, tol)

    all_centers, inertias = jax.lax.map(one_run, jax.random.split(key, n_init))
    best = jnp.argmin(inertias)
    return nearest_distinct(embeddings, candidates, all_centers[best])


def kmeans_with_fill(
    embeddings: jax.Array,
    chosen: jax.Array,
    candidates: jax.Array,
    budget: int,
    key: jax.Array,
    fill_key: jax.Array,
    *,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> jax.Array:
    """:func:`kmeans` over the ``chosen`` points, then uniform random ``candidates`` outside
    ``chosen`` for the slots k-means cannot fill.

    With at least ``budget`` chosen points, the chosen point nearest each of ``budget``
    centers; with fewer, every chosen point (in k-means' order), then a draw without
    replacement from the other candidates (DropQuery's and ALFA-Mix's selection).

    Args:
        embeddings: float [N, D].
        chosen: bool [N], the points that are clustered (a subset of ``candidates``).
        candidates: bool [N], the points that may fill the rest.
        budget: Python int, 1 <= budget <= N.
        key: PRNG key of the k-means++ seeds; fill_key: PRNG key of the fill.
        n_init, max_iter, tol: as :func:`kmeans`.

    Returns:
        int32 [budget]: the clustered picks first, then the fill; -1 where neither can
        fill a slot.
    """
    picked = kmeans(embeddings, chosen, budget, key, n_init=n_init, max_iter=max_iter, tol=tol)
    fill = random_subset(candidates & ~chosen, budget, fill_key)
    slot = jnp.arange(budget)
    count = jnp.sum(chosen)
    return jnp.where(slot < count, picked, fill[jnp.clip(slot - count, 0, budget - 1)])


def kmeans_clusters(
    embeddings: jax.Array,
    members: jax.Array,
    n_clusters: jax.Array | int,
    max_clusters: int,
    key: jax.Array,
    *,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> jax.Array:
    """k-means of the members into ``n_clusters`` clusters, a number known only at run time.

    Centers live in a static array of ``max_clusters`` rows; the first ``n_clusters`` of a
    k-means++ seeding over all ``max_clusters`` (its picks are sequential, so they are
    exactly a seeding of ``n_clusters``) start :func:`lloyd` with the rest inactive. Best of
    ``n_init`` runs by inertia (the first on ties). Cost per run O(max_clusters * N * D)
    for the seeding plus O(max_iter * N * max_clusters * D); memory O(chunk * max_clusters).

    Args:
        embeddings: float [N, D].
        members: bool [N], the points that are clustered.
        n_clusters: int scalar (may be traced), clipped to [1, max_clusters] and to the
            number of members.
        max_clusters: Python int >= 1, the static maximum.
        key: PRNG key.
        n_init, max_iter: Python ints >= 1 and >= 0; tol: see :func:`lloyd`.

    Returns:
        int32 [N]: every point's cluster (its nearest active center, ties to the lower
        cluster id), in [0, max_clusters); cluster ids follow the seeding order.
    """
    count = jnp.minimum(jnp.maximum(jnp.asarray(n_clusters, jnp.int32), 1), max_clusters)

    def one_run(run_key):
        seeds = kmeans_plusplus(embeddings, members, jax.random.uniform(run_key, (max_clusters,)))
        active = (jnp.arange(max_clusters) < count) & (seeds >= 0)
        active = active.at[0].set(True)  # with no member at all, one center still exists
        start = embeddings[jnp.maximum(seeds, 0)]
        centers, inertia = lloyd(embeddings, members, start, max_iter, tol, active)
        return centers, active, inertia

    all_centers, all_active, inertias = jax.lax.map(one_run, jax.random.split(key, n_init))
    best = jnp.argmin(inertias)
    assignment, _ = _points.nearest(embeddings, all_centers[best], active=all_active[best])
    return assignment

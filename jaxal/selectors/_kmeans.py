"""k-means clustering of the candidates, then one distinct candidate per center.

The candidates are gathered to the front of the array once and every pass (seeding,
Lloyd's assignment, the final nearest candidates) runs on the smallest of a few static
capacities that holds them (N, N/2, N/4, ..., not below ``MIN_CAPACITY``), chosen at run
time by ``lax.switch``; nearest-center searches go over center blocks only as far as the
active centers. The cost follows the candidates and clusters of the call, within a
factor 2, while every shape stays static.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxal._chunks import map_chunks, map_slices
from jaxal.selectors import _points
from jaxal.selectors._greedy import kmeans_plusplus
from jaxal.selectors._top_k import random_subset

# Rows per block of a pass over the candidates.
ROW_BLOCK = 1024
# Centers per block of a nearest-center search.
CENTER_BLOCK = 256
# The smallest capacity below N: fewer candidates than this run at this size.
MIN_CAPACITY = 1024
# Centers per block of the nearest-row pass of nearest_distinct ([64, C] distances).
_DISTINCT_BLOCK = 64


class _Packed(NamedTuple):
    """The candidates gathered to the front.

    rows: float [N, D], the candidates in index order, then arbitrary points.
    origin: int32 [N], each row's position in the original array (N past the candidates).
    size: int32 scalar, the number of candidates.
    """

    rows: jax.Array
    origin: jax.Array
    size: jax.Array


def _pack(points: jax.Array, mask: jax.Array) -> _Packed:
    """The rows of ``points`` [N, D] where ``mask`` [N] holds, first, in index order."""
    n = mask.shape[0]
    index = jnp.nonzero(mask, size=n, fill_value=n)[0].astype(jnp.int32)
    return _Packed(points[jnp.minimum(index, n - 1)], index, jnp.sum(mask).astype(jnp.int32))


def _unpack(packed: _Packed, positions: jax.Array) -> jax.Array:
    """int32 [K]: the original indices of packed ``positions`` [K] (-1 stays -1)."""
    return jnp.where(positions >= 0, packed.origin[jnp.maximum(positions, 0)], -1)


def capacities(n: int, least: int = 1) -> tuple[int, ...]:
    """The static row counts a k-means over at most ``n`` candidates may run at: n,
    then halvings while they stay >= ``MIN_CAPACITY`` and >= ``least``, largest first."""
    sizes = [n]
    while sizes[-1] // 2 >= max(MIN_CAPACITY, least):
        sizes.append(sizes[-1] // 2)
    return tuple(sizes)


def _on_capacity(packed: _Packed, fn: Callable[[jax.Array, jax.Array], Any], least: int = 1) -> Any:
    """``fn(rows [C, D], count)`` on the first C packed rows, C the smallest of
    ``capacities(N, least)`` that holds the ``count`` candidates (one branch each)."""
    sizes = capacities(packed.rows.shape[0], least)
    branch = jnp.sum(jnp.asarray(sizes[1:], jnp.int32) >= packed.size)
    branches = [lambda rows, count, size=size: fn(rows[:size], count) for size in sizes]
    return jax.lax.switch(branch, branches, packed.rows, packed.size)


def _nearest_in_block(
    block: jax.Array, block_sq: jax.Array, centers: jax.Array, n_centers: jax.Array | int
) -> tuple[jax.Array, jax.Array]:
    """Nearest of the first ``n_centers`` (>= 1) of ``centers`` [K, D] for ``block`` [B, D].

    Returns (int32 [B], ties to the lower center; float [B] squared distance).
    """
    k = centers.shape[0]
    width = min(CENTER_BLOCK, k)

    def more(state):
        return state[0] * width < n_centers

    def visit(state):
        step, best, best_sq = state
        start = jnp.minimum(step * width, k - width)
        columns = jax.lax.dynamic_slice_in_dim(centers, start, width)
        sq = _points.sq_distances(block, columns, block_sq)
        ids = start + jnp.arange(width, dtype=jnp.int32)
        sq = jnp.where(ids[None, :] < n_centers, sq, jnp.inf)
        local, local_sq = _points.argmin_rows(sq, width=32)
        better = local_sq < best_sq  # a revisited center ties: the earlier stays
        return (
            step + 1,
            jnp.where(better, start + local, best),
            jnp.where(better, local_sq, best_sq),
        )

    b = block.shape[0]
    initial = (
        jnp.int32(0),
        jnp.zeros((b,), jnp.int32),
        jnp.full((b,), jnp.inf, _points.computation_dtype(block)),
    )
    _, best, best_sq = jax.lax.while_loop(more, visit, initial)
    return best, best_sq


def _nearest(
    rows: jax.Array, centers: jax.Array, n_centers: jax.Array | int
) -> tuple[jax.Array, jax.Array]:
    """For every row of ``rows`` [N, D], the nearest of the first ``n_centers`` centers
    (ties to the lower index) and its squared distance: (int32 [N], float [N]). Cost
    O(N * n_centers * D) (center-block granularity), memory O(ROW_BLOCK * CENTER_BLOCK)."""

    def block(x, _index):
        return _nearest_in_block(x, _points.sq_norms(x), centers, n_centers)

    return map_chunks(block, rows, chunk_size=ROW_BLOCK)


def _lloyd(
    rows: jax.Array,
    count: jax.Array | int,
    centers: jax.Array,
    n_centers: jax.Array | int,
    max_iter: int,
    tol: float,
) -> tuple[jax.Array, jax.Array]:
    """Lloyd over the first ``count`` of ``rows`` [C, D] with the first ``n_centers`` of
    ``centers`` [K, D] taking members (see :func:`lloyd`). Returns (float [K, D], inertia)."""
    n, k = rows.shape[0], centers.shape[0]
    dtype = _points.computation_dtype(rows)
    weights = (jnp.arange(n) < count).astype(dtype)
    centers = centers.astype(dtype)

    def assign(centers):
        assignment, sq = _nearest(rows, centers, n_centers)
        return assignment, jnp.sum(sq * weights)

    def more(state):
        iteration, _, _, previous, inertia = state
        improving = previous - inertia > tol * previous
        return (iteration < max_iter) & ((iteration == 0) | improving)

    def step(state):
        iteration, centers, assignment, _, inertia = state
        sums = jax.ops.segment_sum(rows * weights[:, None], assignment, num_segments=k)
        sizes = jax.ops.segment_sum(weights, assignment, num_segments=k)
        moved = jnp.where(sizes[:, None] > 0, sums / jnp.maximum(sizes, 1.0)[:, None], centers)
        new_assignment, new_inertia = assign(moved)
        return iteration + 1, moved, new_assignment, inertia, new_inertia

    assignment, inertia = assign(centers)
    initial = (jnp.int32(0), centers, assignment, inertia, inertia)
    _, centers, _, _, inertia = jax.lax.while_loop(more, step, initial)
    return centers, inertia


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
    Cost O(C * A * D) per iteration for A active centers and C the capacity that holds
    the M candidates (C < 2 M once M >= ``MIN_CAPACITY``: the module docstring), whatever
    N and K; memory O(N * D) for the gathered candidates.

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
    packed = _pack(embeddings, candidates)
    k = centers.shape[0]
    n_centers: jax.Array | int
    if active is None:
        order, n_centers = jnp.arange(k), k
    else:
        order = jnp.argsort(~active, stable=True)
        n_centers = jnp.sum(active).astype(jnp.int32)
    moved, inertia = _on_capacity(
        packed, lambda rows, count: _lloyd(rows, count, centers[order], n_centers, max_iter, tol)
    )
    return jnp.zeros_like(centers).at[order].set(moved), inertia


def _nearest_distinct(rows: jax.Array, count: jax.Array, centers: jax.Array) -> jax.Array:
    """int32 [K]: for each center in order, the nearest of the first ``count`` of ``rows``
    [C, D] not taken by an earlier center (lowest row on ties, distances within float32
    rounding of each other counting as ties); -1 once none is left.

    Each center's nearest row comes from one blocked pass over all centers (O(K * C * D)
    as matrix products); a center whose nearest row an earlier center took searches the
    rows still free on its own (one more pass over [C, D]), which only such conflicts pay.
    """
    n = rows.shape[0]
    rows_sq = _points.sq_norms(rows)
    leading = jnp.arange(n) < count

    def nearest(block: jax.Array, allowed: jax.Array) -> jax.Array:
        """int32 [B]: the nearest allowed row (bool [C]) of each center in ``block``."""
        block_sq = _points.sq_norms(block)
        # Distances [B, C]: the row axis last, as the reductions run fastest.
        sq = _points.sq_distances(block, rows, block_sq, rows_sq)
        sq = jnp.where(allowed[None, :], sq, jnp.inf)
        return _lowest_nearest(sq, block_sq[:, None] + rows_sq[None, :])

    first = map_slices(
        lambda block, index: nearest(block, leading), centers, chunk_size=_DISTINCT_BLOCK
    )

    def nearest_free(t: jax.Array, available: jax.Array) -> jax.Array:
        return nearest(centers[t][None, :], available)[0]

    def step(t, state):
        available, picked = state
        own = first[t]
        index = jax.lax.cond(available[own], lambda: own, lambda: nearest_free(t, available))
        index = jnp.where(jnp.any(available), index, -1)
        available = available.at[jnp.where(index < 0, n, index)].set(False, mode="drop")
        return available, picked.at[t].set(index)

    initial = (leading, jnp.full((centers.shape[0],), -1, jnp.int32))
    return jax.lax.fori_loop(0, centers.shape[0], step, initial)[1]


def _lowest_nearest(sq: jax.Array, norms: jax.Array) -> jax.Array:
    """int32 [B]: per row of ``sq`` [B, C], the lowest column within float32 rounding of
    the row's minimum (``_points._ROUNDOFF`` times ``norms`` [B, C], the squared norms
    the distance was formed from): a tie that rounding splits stays a tie, so the pick does
    not depend on how the distances were blocked."""
    best = jnp.min(sq, axis=1, keepdims=True)
    near = sq <= best + _points._ROUNDOFF * norms
    columns = jnp.arange(sq.shape[1], dtype=jnp.int32)
    return jnp.min(jnp.where(near, columns, sq.shape[1]), axis=1).astype(jnp.int32)


def nearest_distinct(embeddings: jax.Array, candidates: jax.Array, centers: jax.Array) -> jax.Array:
    """For each center in order, the nearest candidate not taken by an earlier center.

    Cost O(K * C * D), C the capacity that holds the candidates (see :func:`lloyd`).

    Args:
        embeddings: float [N, D].
        candidates: bool [N].
        centers: float [K, D].

    Returns:
        int32 [K], distinct candidates (lowest index on ties); -1 once none is left.
    """
    packed = _pack(embeddings, candidates)
    return _unpack(
        packed, _on_capacity(packed, lambda rows, count: _nearest_distinct(rows, count, centers))
    )


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
    Cost per run O(max_iter * C * budget * D), C the capacity that holds the candidates
    (see :func:`lloyd`); the rest of the N points cost one gather.

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
    packed = _pack(embeddings, candidates)

    def on_rows(rows, count):
        leading = jnp.arange(rows.shape[0]) < count

        def one_run(run_key):
            uniforms = jax.random.uniform(run_key, (budget,))
            seeds = kmeans_plusplus(rows, leading, uniforms)
            # Unfilled seeds (-1: fewer candidates than clusters) start at an arbitrary point.
            return _lloyd(rows, count, rows[jnp.maximum(seeds, 0)], budget, max_iter, tol)

        all_centers, inertias = jax.lax.map(one_run, jax.random.split(key, n_init))
        return _nearest_distinct(rows, count, all_centers[jnp.argmin(inertias)])

    return _unpack(packed, _on_capacity(packed, on_rows, least=budget))


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
    ``n_init`` runs by inertia (the first on ties). Cost per run O(n_clusters * C * D) for
    the seeding plus O(max_iter * C * n_clusters * D), C the capacity that holds the
    members (see :func:`lloyd`): the static maximum costs nothing; memory O(N * D) for
    the gathered members.

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
    packed = _pack(embeddings, members)
    wanted = jnp.minimum(jnp.asarray(n_clusters, jnp.int32), max_clusters)
    n_active = jnp.maximum(jnp.minimum(wanted, packed.size), 1)

    def on_rows(rows, count):
        leading = jnp.arange(rows.shape[0]) < count

        def one_run(run_key):
            uniforms = jax.random.uniform(run_key, (max_clusters,))
            seeds = kmeans_plusplus(rows, leading, uniforms, picks=n_active)
            start = rows[jnp.maximum(seeds, 0)]
            return _lloyd(rows, count, start, n_active, max_iter, tol)

        all_centers, inertias = jax.lax.map(one_run, jax.random.split(key, n_init))
        return all_centers[jnp.argmin(inertias)]

    centers = _on_capacity(packed, on_rows, least=max_clusters)
    return _nearest(embeddings, centers, n_active)[0]

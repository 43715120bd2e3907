"""ProbCover (Yehuda, Dekel, Hacohen and Weinshall, NeurIPS 2022): greedy coverage of
delta-balls, delta chosen by ball purity."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal.model import Model
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    finite_points,
    make_strategy,
    no_score,
)
from jaxal.strategies._features import REPRESENTATIONS, pool_points

# The radii searched when delta=None: 0.01, 0.02, ..., 2.00, the range of distances on
# the unit sphere (L2-normalised features, as the paper uses).
DEFAULT_DELTAS = tuple(round(0.01 * i, 2) for i in range(1, 201))


def probcover(
    model: Model | None,
    budget: int,
    *,
    delta: float | None = None,
    deltas: Sequence[float] | None = None,
    alpha: float = 0.95,
    classes: int | None = None,
    representation: str = "embedding",
    normalize: bool = False,
    n_init: int = 3,
    max_iter: int = 100,
    tol: float = 1e-4,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = 256,
) -> Strategy:
    """ProbCover (Yehuda et al. 2022): greedy max coverage of delta-balls. A low-budget,
    cold-start strategy: it needs no labels (with none, nothing is covered yet) and no
    trained model (``representation="raw"`` with ``model=None``).

    The graph has an edge x -> x' when ||x - x'|| < delta (strict, self-loops included,
    as the official code). Points in the balls of labeled points are covered first; each
    pick is then the unlabeled point whose ball holds the most uncovered points, the
    lowest index on ties, and its ball becomes covered (``jaxal.selectors.probcover``).
    Once coverage saturates (no unlabeled point's ball holds an uncovered point) the
    remaining picks are uniform among the unlabeled points, drawn with ``key``; the
    official code returns index 0 there (a labeled or repeated point).

    delta: given, or with ``delta=None`` the paper's rule: the largest radius of the
    grid ``deltas`` whose ball purity is at least ``alpha``, where purity is the fraction
    of points whose delta-ball holds points of their own k-means cluster only, with
    k = ``classes`` (default: the model's number of classes, the width of its logits).
    The default grid is 0.01, 0.02, ..., 2.00 (``DEFAULT_DELTAS``), suited to
    L2-normalised features (``normalize=True``); pass ``deltas`` for other scales. If no
    radius reaches ``alpha`` the smallest is used. Purity never increases with delta, so
    this equals scanning the grid upwards until purity drops below ``alpha``
    (scikit-activeml's scan). The official code has no purity search (delta is an
    argument); scikit-activeml's default grid is 0.2, 0.4, ..., 2.0, it uses <= for
    edges and purity, and it fixes delta (and an N x N distance matrix) at its first
    query. Here delta is chosen on every call, from the pool of that call.

    Cost: O(N^2 * D) for the initial ball counts, O(N^2 * D) in all for taking covered
    points out of them (a point is covered once), O(budget * N * D) for the picks; with
    delta=None another O(N^2 * D) pass for the purity of every radius at once, plus
    k-means O(n_init * max_iter * N * classes * D). Memory O(N * chunk_size) (blocks of
    distances) and O(N * D): the N x N graph is never stored.

    Args:
        model: the :class:`jaxal.Model` (None with ``representation="raw"`` when
            ``delta`` or ``classes`` is given).
        budget: points per selection.
        delta: the ball radius (> 0), or None to choose it by purity.
        deltas: the grid of radii searched when ``delta`` is None (default
            ``DEFAULT_DELTAS``).
        alpha: the purity required, in (0, 1].
        classes: k of the pseudo-label k-means when ``delta`` is None.
        representation: ``"embedding"`` or ``"raw"``, as for ``typiclust``.
        normalize: divide every point by its L2 norm first (the paper's features are
            L2-normalised).
        n_init, max_iter, tol: the pseudo-label k-means: runs (the best by inertia is
            kept), Lloyd iterations per run, relative inertia tolerance
            (``jaxal.selectors.kmeans_clusters``).
        batch_size: points per forward pass.
        chunk_size: points per distance block.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget] in
        pick order; ``score`` is None.
    """
    _checks.one_of(representation, REPRESENTATIONS, "representation")
    budget, batch_size = check_common(
        model, budget, batch_size, needs_model=representation != "raw"
    )
    if delta is not None:
        delta = _checks.positive_float(delta, "delta")
        if deltas is not None:
            raise ValueError("pass delta or deltas, not both")
    grid = DEFAULT_DELTAS if deltas is None else tuple(float(d) for d in deltas)
    if not grid or any(not d > 0 for d in grid):
        raise ValueError(f"deltas must be a non-empty sequence of radii > 0, got {deltas!r}")
    grid = tuple(sorted(grid))
    alpha = _checks.positive_float(alpha, "alpha")
    if alpha > 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if classes is not None:
        classes = _checks.positive_int(classes, "classes")
    elif delta is None and model is None:
        raise ValueError("probcover with delta=None and no model needs classes= (the k of k-means)")
    n_init = _checks.positive_int(n_init, "n_init")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    tol = _checks.nonnegative_float(tol, "tol")
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")
    if not isinstance(normalize, bool):
        raise TypeError("normalize must be a bool")

    def radius(params, x, points, members, key):
        if delta is not None:
            return jnp.asarray(delta, points.dtype)
        k = classes
        if k is None:
            assert model is not None
            logits = jax.eval_shape(lambda p, v: model.apply(p, v, None)[0], params, x[:1])
            k = int(logits.shape[-1])
        k = min(k, points.shape[0])
        labels = selectors.kmeans_clusters(
            points, members, k, k, key, n_init=n_init, max_iter=max_iter, tol=tol
        )
        return selectors.purity_radius(
            points, members, labels, jnp.asarray(grid), alpha, chunk_size
        )

    def select(params, pool, key):
        candidates = candidates_for(pool, budget)
        points = pool_points(model, params, pool.x, representation, normalize, batch_size)
        _checks.finite(points, "embeddings")
        members, (points,) = finite_points(jnp.ones_like(candidates), points)
        cluster_key, pick_key = jax.random.split(key)
        chosen = radius(params, pool.x, points, members, cluster_key)
        return selectors.probcover(
            points,
            candidates & members,
            members,
            pool.labeled & members,
            chosen,
            budget,
            pick_key,
            chunk_size=chunk_size,
        ).indices

    hparams = {
        "delta": delta,
        "deltas": None if deltas is None else grid,
        "alpha": alpha,
        "classes": classes,
        "representation": representation,
        "normalize": normalize,
        "n_init": n_init,
        "max_iter": max_iter,
        "tol": tol,
        "batch_size": batch_size,
        "chunk_size": chunk_size,
    }
    return make_strategy("probcover", budget, hparams, select, no_score)

"""Random sampling and the representation-based strategies: CoreSet, BADGE, k-means."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal.model import GRADIENT_EMBEDDINGS, Model, forward, gradient_embedding, parameter_gradients
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    finite_points,
    make_strategy,
    no_score,
    renamed,
)


def random(model: Model | None, budget: int, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Strategy:
    """Uniform sampling without replacement among the unlabeled points.

    Args:
        model: unused (accepted for a uniform factory signature; may be None).
        budget: points per selection.
        batch_size: unused; accepted like every factory.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget],
        uniform without replacement among the unlabeled points; ``score`` is None.
    """
    budget, batch_size = check_common(model, budget, batch_size, needs_model=False)
    del model

    def select(params, pool, key):
        del params
        return selectors.random_subset(candidates_for(pool, budget), budget, key)

    return make_strategy("random", budget, {"batch_size": batch_size}, select, no_score)


def coreset(
    model: Model,
    budget: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int = 128,
) -> Strategy:
    """CoreSet (Sener & Savarese 2018): greedy k-center on the penultimate embeddings.

    Starts from the distances to the labeled points (gathered ``chunk_size`` at a time:
    O(N * L * D) work, O(N * chunk_size) memory), then repeatedly takes the unlabeled point
    furthest from everything chosen. With no labeled point the first pick is uniform.

    Args:
        model: the :class:`jaxal.Model`.
        budget: points per selection.
        batch_size: points per forward pass.
        chunk_size: labeled points per distance block (small blocks keep the [N, chunk]
            distances in cache, which is faster than fewer, larger blocks).

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget] in pick
        order (farthest first); ``score`` is None.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")

    def select(params, pool, key):
        candidates = candidates_for(pool, budget)
        _, embeddings = forward(model, params, pool.x, batch_size)
        _checks.finite(embeddings, "embeddings")
        # Non-finite points are neither picked nor counted as covering others.
        labeled, _ = finite_points(pool.labeled, embeddings)
        candidates, (embeddings,) = finite_points(candidates, embeddings)
        return selectors.k_center_greedy(embeddings, candidates, labeled, budget, key, chunk_size)

    hparams = {"batch_size": batch_size, "chunk_size": chunk_size}
    return make_strategy("coreset", budget, hparams, select, no_score)


def badge(
    model: Model,
    budget: int,
    *,
    gradient: str = "linear",
    params_filter: Callable[[str], bool] | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    embedding: str | None = None,
) -> Strategy:
    """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings at predicted labels.

    The first pick is the unlabeled point with the largest gradient norm; each next pick is
    drawn with probability proportional to the squared distance to the nearest pick (D^2
    sampling with ``key``). Picks are always distinct.

    ``gradient`` chooses the gradient: ``"linear"`` (the last layer's weights, DISTIL's
    default), ``"bias"``, ``"bias_linear"`` (both), computed in factored form
    (``jaxal.model.gradient_embedding``: O(N (C + D)) memory, never the [N, C * D]
    matrix); or ``"params"``: true per-example gradients by ``vmap(grad)`` of the
    parameter leaves that pass ``params_filter`` (memory O(N * P)), for models whose last
    layer is not a plain Dense.

    Args:
        model: the :class:`jaxal.Model`.
        budget: points per selection.
        gradient: ``"linear"``, ``"bias"``, ``"bias_linear"`` or ``"params"`` (the same
            name and values as GLISTER's, GradMatch's and the SIMILAR strategies').
        params_filter: with ``"params"`` only: a predicate on the leaf path
            (``"params/Dense_1/kernel"``) or a substring of it.
        batch_size: points per forward pass.
        embedding: the deprecated name of ``gradient``.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget] in pick
        order; ``score`` is None.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    gradient = renamed("badge", "gradient", "embedding", gradient, embedding, "linear")
    _checks.one_of(gradient, (*GRADIENT_EMBEDDINGS, "params"), "gradient")
    if (gradient == "params") != (params_filter is not None):
        raise ValueError("params_filter is required with gradient='params' and only there")

    def gradients(params, x, candidates):
        """(gradient embeddings, the candidates whose model outputs are finite)."""
        if gradient == "params":
            grads = parameter_gradients(model, params, x, batch_size, params_filter)
            _checks.finite(grads, "per-example gradients")
            candidates, (grads,) = finite_points(candidates, grads)
            return grads, candidates
        logits, features = forward(model, params, x, batch_size)
        _checks.finite(logits, "logits")
        _checks.finite(features, "embeddings")
        # The logits themselves decide: XLA may soften a NaN row inside the softmax.
        candidates, (logits, features) = finite_points(candidates, logits, features)
        return gradient_embedding(logits, features, gradient), candidates

    def select(params, pool, key):
        points, candidates = gradients(params, pool.x, candidates_for(pool, budget))
        uniforms = jax.random.uniform(key, (budget,))
        return selectors.kmeans_plusplus(points, candidates, uniforms, first="max_norm")

    hparams = {"gradient": gradient, "params_filter": params_filter, "batch_size": batch_size}
    return make_strategy("badge", budget, hparams, select, no_score)


def kmeans(
    model: Model,
    budget: int,
    *,
    representation: str = "embedding",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """k-means sampling: ``budget`` clusters of the unlabeled points, the one nearest each.

    k-means++ seeding, then at most ``max_iter`` Lloyd iterations (stopping once an
    iteration improves the inertia by less than ``tol`` of it), best of ``n_init`` runs by
    inertia; empty clusters keep their center and the picks are distinct
    (``jaxal.selectors.kmeans``). Cost O(n_init * iterations * N * budget * D).

    Args:
        model: the :class:`jaxal.Model` (unused with ``representation="raw"``).
        budget: points per selection = number of clusters.
        representation: ``"embedding"`` (penultimate features) or ``"raw"`` (inputs
            flattened to [N, prod(x.shape[1:])]).
        n_init: k-means runs (DISTIL: 10); max_iter: Lloyd iterations per run (DISTIL: 300).
        tol: stop when an iteration lowers the inertia by less than this fraction.
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget], the
        point nearest each center; ``score`` is None.
    """
    _checks.one_of(representation, ("embedding", "raw"), "representation")
    budget, batch_size = check_common(
        model, budget, batch_size, needs_model=representation != "raw"
    )
    n_init = _checks.positive_int(n_init, "n_init")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    tol = _checks.nonnegative_float(tol, "tol")

    def features(params: Any, x: jax.Array) -> jax.Array:
        if representation == "raw":
            return x.reshape(x.shape[0], -1).astype(jnp.float32)
        return forward(model, params, x, batch_size)[1]

    def select(params, pool, key):
        candidates = candidates_for(pool, budget)
        points = features(params, pool.x)
        _checks.finite(points, "embeddings")
        candidates, (points,) = finite_points(candidates, points)
        return selectors.kmeans(
            points, candidates, budget, key, n_init=n_init, max_iter=max_iter, tol=tol
        )

    hparams = {
        "representation": representation,
        "n_init": n_init,
        "max_iter": max_iter,
        "tol": tol,
        "batch_size": batch_size,
    }
    return make_strategy("kmeans", budget, hparams, select, no_score)

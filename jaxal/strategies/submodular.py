"""Submodular strategies: a set function maximized greedily over pool representations.

``submodular`` runs any function of ``jaxal.selectors.SUBMODULAR_FUNCTIONS`` over the
unlabeled pool; ``fass`` (Wei, Iyer & Bilmes 2015, as DISTIL) first keeps the
``top_n * budget`` most uncertain points and maximizes the function over those alone.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, scores, selectors
from jaxal.model import Model, forward, gradient_embedding, softmax
from jaxal.pool import Pool
from jaxal.selectors import STORED_KERNEL_MAX_POINTS, OuterProduct
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    finite_points,
    make_strategy,
)
from jaxal.strategies._base import no_score as _no_score

UNCERTAINTY = {
    "entropy": scores.entropy,
    "least_confidence": scores.least_confidence,
    "margin": scores.margin,
}
REPRESENTATIONS = ("embedding", "gradient", "raw")
# Functions read a similarity kernel, except feature_based, which reads the features.
_KERNEL_FREE = ("feature_based",)
# Functions that sum over the points they represent (the kernel's rows, a `ground` mask).
_TAKES_GROUND = ("facility_location", "graph_cut", "saturated_coverage")


def submodular(
    model: Model | None,
    budget: int,
    *,
    function: str = "facility_location",
    representation: str = "embedding",
    metric: str = "cosine",
    optimizer: str = "lazy",
    epsilon: float = 0.1,
    represented: int | None = None,
    max_dense: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **function_hparams: Any,
) -> Strategy:
    """Greedy maximization of a submodular function over the unlabeled points.

    The ground set and the candidates are the unlabeled points. With the naive or lazy
    optimizer and a pool of N <= ``max_dense`` points the similarity kernel is computed
    once and held (N^2 floats: 1 GB at N = 16,384), and a full gain pass costs O(N^2);
    with the stochastic optimizer or beyond ``max_dense``, it is computed
    on the fly (``jaxal.selectors.Similarity``): memory O(N) plus one block of at most
    2^22 entries, never an N x N matrix, and a full pass costs O(N^2 * F) for F features,
    the stochastic optimizer O(N^2 / budget * log(1/epsilon) * F) per pick (see
    ``jaxal.selectors.submodular_greedy``). With ``represented = R`` the points to
    represent shrink to R (always on the fly) and every N^2 above becomes N * R.

    Args:
        model: the :class:`jaxal.Model` (unused with ``representation="raw"``).
        budget: points per selection.
        function: a name of ``jaxal.selectors.SUBMODULAR_FUNCTIONS``.
        representation: ``"embedding"`` (penultimate features), ``"gradient"`` (last-layer
            gradient embedding at the predicted label, factored) or ``"raw"`` (inputs
            flattened).
        metric: ``"cosine"`` or ``"euclidean"`` (submodlib's definitions).
        optimizer: ``"naive"``, ``"lazy"`` or ``"stochastic"``.
        epsilon: the stochastic optimizer's epsilon.
        represented: facility location sums over the points it represents (the kernel's
            rows V); with an int R, V is a uniform random sample (from ``key``) of R
            unlabeled points instead of all of them: an unbiased estimate of the objective
            (up to the factor N / R), at R / N of the cost. Every unlabeled point stays a
            candidate. None (default): all unlabeled points.
        max_dense: the largest pool (N, labeled points included) whose kernel the naive
            and lazy optimizers hold in memory; 0 computes it on the fly always. Both give
            the same kernel entries. None: ``jaxal.selectors.STORED_KERNEL_MAX_POINTS``
            (16,384), the threshold every stored-or-on-the-fly choice of the library uses.
        batch_size: points per forward pass.
        function_hparams: the function's own (``lambda_`` for graph cut and
            log-determinant, ``alpha`` for saturated coverage, ``concave`` for feature
            based, whose features are the representation min-max scaled to [0, 1] per
            column, as DISTIL).

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget] in pick
        order; ``score`` is None.
    """
    _checks.one_of(representation, REPRESENTATIONS, "representation")
    budget, batch_size = check_common(
        model, budget, batch_size, needs_model=representation != "raw"
    )
    make_fn = _function_factory(function, metric, optimizer, function_hparams)
    epsilon = _checks.positive_float(epsilon, "epsilon")
    represented = _checks.optional_positive_int(represented, "represented")
    if max_dense is None:
        max_dense = STORED_KERNEL_MAX_POINTS
    max_dense = _checks.nonnegative_int(max_dense, "max_dense")
    # Stochastic greedy reads ~N log(1/epsilon) / budget columns per pick: computing them
    # on the fly beats building (and reading back) a held kernel.
    on_the_fly = function in _KERNEL_FREE or optimizer == "stochastic"
    if represented is not None and function != "facility_location":
        raise ValueError(f"represented applies to facility_location only, not {function}")

    def select(params: Any, pool: Pool, key: jax.Array) -> jax.Array:
        candidates = candidates_for(pool, budget)
        points, candidates = _representation(
            model, params, pool.x, representation, batch_size, candidates
        )
        if represented is None and pool.size <= max_dense and not on_the_fly:
            kernel = selectors.similarity_kernel(points, metric=metric)
            fn = make_fn(kernel, candidates, symmetric=True)
        elif represented is None:
            fn = make_fn(points, candidates, symmetric=False)
        else:
            key, sample_key = jax.random.split(key)
            sample = selectors.random_subset(candidates, min(represented, pool.size), sample_key)
            rows = selectors.gather(points, jnp.maximum(sample, 0))
            fn = make_fn(points, sample >= 0, symmetric=False, rows=rows)
        return selectors.submodular_greedy(
            fn, candidates, budget, key, optimizer=optimizer, epsilon=epsilon
        ).indices

    hparams = {
        "function": function,
        "representation": representation,
        "metric": metric,
        "optimizer": optimizer,
        "epsilon": epsilon,
        "represented": represented,
        "max_dense": max_dense,
        "batch_size": batch_size,
        **function_hparams,
    }
    return make_strategy("submodular", budget, hparams, select, _no_score)


def fass(
    model: Model,
    budget: int,
    *,
    top_n: int = 5,
    uncertainty: str = "entropy",
    function: str = "facility_location",
    metric: str = "cosine",
    optimizer: str = "lazy",
    batch_size: int = DEFAULT_BATCH_SIZE,
    **function_hparams: Any,
) -> Strategy:
    """FASS: an uncertainty filter, then a submodular function over the filtered points.

    Keeps the K = min(top_n * budget, N) unlabeled points with the highest ``uncertainty``
    score, builds the dense similarity kernel of their penultimate embeddings
    (K x K floats: 250,000 for budget 100, top_n 5) and greedily maximizes ``function``
    over them, as DISTIL's FASS (facility location, cosine). Cost: one forward pass, then
    O(K^2 * D) for the kernel and the greedy over K elements.

    Args:
        model: the :class:`jaxal.Model`.
        budget: points per selection.
        top_n: the filter keeps ``top_n * budget`` points (DISTIL: 5).
        uncertainty: ``"entropy"``, ``"least_confidence"`` or ``"margin"``.
        function, metric, optimizer, function_hparams: as :func:`submodular`.
        batch_size: points per forward pass.

    Returns:
        A :class:`Strategy` whose picks are always among the filtered points.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    top_n = _checks.positive_int(top_n, "top_n")
    _checks.one_of(uncertainty, tuple(UNCERTAINTY), "uncertainty")
    make_fn = _function_factory(function, metric, optimizer, function_hparams)
    measure = UNCERTAINTY[uncertainty]

    def select(params: Any, pool: Pool, key: jax.Array) -> jax.Array:
        candidates = candidates_for(pool, budget)
        logits, embeddings = forward(model, params, pool.x, batch_size)
        _checks.finite(logits, "logits")
        _checks.finite(embeddings, "embeddings")
        candidates, (logits, embeddings) = finite_points(candidates, logits, embeddings)
        uncertain = measure(softmax(logits))
        filtered = selectors.top_k(uncertain, candidates, min(top_n * budget, pool.size))
        kept = filtered >= 0
        local = embeddings[jnp.maximum(filtered, 0)]
        fn = make_fn(selectors.similarity_kernel(local, metric=metric), kept, symmetric=True)
        picked = selectors.submodular_greedy(fn, kept, budget, key, optimizer=optimizer).indices
        return jnp.where(picked >= 0, filtered[jnp.maximum(picked, 0)], -1)

    hparams = {
        "top_n": top_n,
        "uncertainty": uncertainty,
        "function": function,
        "metric": metric,
        "optimizer": optimizer,
        "batch_size": batch_size,
        **function_hparams,
    }
    return make_strategy("fass", budget, hparams, select, _no_score)


def _function_factory(function, metric, optimizer, function_hparams):
    """Validate the function's settings now; return ``make(points_or_kernel, ground)``.

    ``make`` takes points [N, F] (or an ``OuterProduct``; they become an on-the-fly
    ``Similarity``) or a dense kernel [N, N] (``symmetric=True``), and the bool ground
    set over the kernel's rows, and returns the ``SubmodularFn``; with ``rows`` (points
    [R, F] in the same representation) the kernel is the rectangular similarity of
    ``rows`` to the points, and ``ground`` is bool [R].
    """
    _checks.one_of(function, tuple(selectors.SUBMODULAR_FUNCTIONS), "function")
    _checks.one_of(metric, selectors.METRICS, "metric")
    _checks.one_of(optimizer, selectors.OPTIMIZERS, "optimizer")
    factory = selectors.SUBMODULAR_FUNCTIONS[function]
    takes_ground = function in _TAKES_GROUND

    def make(points_or_kernel, ground, *, symmetric, rows=None):
        if function in _KERNEL_FREE:
            features = points_or_kernel
            if isinstance(features, OuterProduct):
                features = features.materialize()
            return factory(_min_max_scaled(features), **function_hparams)
        if symmetric:
            kernel = points_or_kernel
        elif rows is None:
            kernel = selectors.Similarity(points_or_kernel, metric=metric)
        else:
            kernel = selectors.Similarity(rows, points_or_kernel, metric=metric)
        extra = {"ground": ground} if takes_ground else {}
        if function == "facility_location" and symmetric:
            extra["symmetric"] = True
        return factory(kernel, **extra, **function_hparams)

    # Fail fast on a missing or unknown function hyperparameter, on a tiny kernel.
    make(jnp.eye(2, dtype=jnp.float32), jnp.ones(2, bool), symmetric=True)
    return make


def _min_max_scaled(features: jax.Array) -> jax.Array:
    """float [N, F] scaled to [0, 1] per column (constant columns become 0)."""
    low = jnp.min(features, axis=0)
    span = jnp.max(features, axis=0) - low
    return jnp.where(span > 0, (features - low) / jnp.where(span > 0, span, 1.0), 0.0)


def _representation(model, params, x, representation, batch_size, candidates):
    """(points of the pool in ``representation``, the candidates whose points are finite;
    non-finite rows zeroed)."""
    if representation == "raw":
        points = x.reshape(x.shape[0], -1).astype(jnp.float32)
        _checks.finite(points, "x")
        candidates, (points,) = finite_points(candidates, points)
        return points, candidates
    logits, embeddings = forward(model, params, x, batch_size)
    _checks.finite(embeddings, "embeddings")
    if representation == "embedding":
        candidates, (embeddings,) = finite_points(candidates, embeddings)
        return embeddings, candidates
    _checks.finite(logits, "logits")
    candidates, (logits, embeddings) = finite_points(candidates, logits, embeddings)
    return gradient_embedding(logits, embeddings, "linear"), candidates

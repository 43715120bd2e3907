"""BAIT (Ash, Goel, Krishnamurthy & Kakade, "Gone Fishing: Neural Active Learning with
Fisher Embeddings", NeurIPS 2021): the batch whose last-layer Fisher information best
covers the pool's."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal.model import GRADIENT_EMBEDDINGS, Model, forward, gradient_embedding, softmax
from jaxal.pool import Pool
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    finite_points,
    make_strategy,
    no_score,
)


def bait(
    model: Model,
    budget: int,
    *,
    lambda_: float = 1.0,
    oversample: int = 2,
    gradient: str = "linear",
    chunk_size: int = 512,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """BAIT: greedy forward selection of ``oversample * budget`` points, then backward
    pruning to ``budget``, minimizing tr((lambda I + M)^-1 F).

    With p the softmax of a point's logits and h its embedding, the Fisher information of
    the last layer (a linear softmax head, weights only) at the point is
    I(x) = (diag(p) - p p^T) (x) h h^T, a [C D, C D] matrix of rank C - 1 that is never
    formed. F is the mean of I(x) over every point of the pool, labeled or not (the
    paper's I_U over U and the labeled set S); M sums I(x) over the labeled points and the
    picks. Forward step t adds the unlabeled point whose I(x) lowers
    tr((lambda I + M)^-1 F) most; then, while more than ``budget`` are picked, the pick
    whose removal raises it least is dropped. Every step is a rank-C Woodbury update
    (``jaxal.selectors.bait``).

    Weights: M = M_L + sum over the picks of I(x), the objective as the paper writes it,
    with M_L the labeled points' sum: every labeled point and every pick counts once. The
    reference code instead weights each pick B / (|L| + B) against 1 / (|L| + B) per
    labeled point (B = budget: a pick counts B times a labeled point, and lambda is
    relative to those averages); jaxal follows the paper. Like the reference code, the
    gradient is the weights' only (``gradient="bias_linear"`` adds the bias: h becomes
    [1, h]), classes are those of the model's logits, and BAIT is deterministic (``key``
    is unused).

    Cost, with E = C D (``gradient="linear"``), P = C (C + 1) / 2 and T = ``oversample *
    budget``: one forward pass; O(N P D^2) once for F, the labeled points' sum and every
    point's [C, C] projections; O(E^3) once to invert lambda I + M; then per forward pick
    O(N C^2 D + N C^3 + C E^2) (one [N, D] x [D, 2 C^2] product, then [C, C] updates and
    solves per point) and per backward step the same with T points for N: in all
    O(N C^2 D^2 + C^3 D^3 + oversample * budget * (N C^2 D + N C^3 + C^3 D^2)). Memory
    O(E^2 + N C^2 + chunk_size * P * D): at N = 10,000, C = 10, D = 128 a few [1280, 1280]
    matrices and [N, 10, 10] arrays. E^2 grows as (C D)^2: C = 100 with D = 512 needs
    10 GB per matrix, so reduce the embedding (or the classes) first.

    Needs the model's probabilities (they weight every I(x)), so a head trained on a
    labeled seed set, as in the paper; with no labeled point M_L = 0 and it still runs.

    Args:
        model: the :class:`jaxal.Model` (logits and the last layer's input).
        budget: points per selection.
        lambda_: the ridge lambda > 0 (reference code: 1; 1e-2 in its CIFAR runs).
        oversample: forward picks per kept point, an int >= 1 (the paper: 2; 1 skips the
            backward pass).
        gradient: ``"linear"`` (the weights, the paper's), ``"bias_linear"`` (weights and
            bias) or ``"bias"`` (the bias alone, E = C).
        chunk_size: points per block of the one-time O(N P D^2) sums.
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget], the
        kept picks in forward order; ``score`` is None.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    lambda_ = _checks.positive_float(lambda_, "lambda_")
    oversample = _checks.positive_int(oversample, "oversample")
    _checks.one_of(gradient, GRADIENT_EMBEDDINGS, "gradient")
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")

    def select(params: Any, pool: Pool, key: jax.Array) -> jax.Array:
        del key
        candidates = candidates_for(pool, budget)
        logits, embeddings = forward(model, params, pool.x, batch_size)
        _checks.finite(logits, "logits")
        _checks.finite(embeddings, "embeddings")
        finite, (logits, embeddings) = finite_points(jnp.ones_like(candidates), logits, embeddings)
        features = gradient_embedding(logits, embeddings, gradient).right
        return selectors.bait(
            softmax(logits),
            features,
            candidates & finite,
            pool.labeled & finite,
            finite,
            budget,
            lambda_=lambda_,
            oversample=oversample,
            chunk_size=chunk_size,
        ).indices

    hparams = {
        "lambda_": lambda_,
        "oversample": oversample,
        "gradient": gradient,
        "chunk_size": chunk_size,
        "batch_size": batch_size,
    }
    return make_strategy("bait", budget, hparams, select, no_score)

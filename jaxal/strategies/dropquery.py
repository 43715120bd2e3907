"""DropQuery (Gupte et al., "Revisiting Active Learning in the Era of Vision Foundation
Models", TMLR 2024): dropout disagreement picks the candidates, k-means spreads the batch."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal.model import Model, forward, mc_map
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
from jaxal.strategies._features import unit_rows


def dropquery(
    model: Model,
    budget: int,
    *,
    mc_samples: int = 3,
    dropout_rate: float = 0.75,
    candidates_per_pick: int = 25,
    normalize: bool = True,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """DropQuery: the points whose prediction flips under feature dropout, clustered.

    1. y_hat = argmax of the deterministic logits.
    2. M = ``mc_samples`` passes with dropout at ``dropout_rate`` on the *embedding*
       before ``model.head`` (inverted dropout: kept units scaled by 1 / (1 - rate), as
       the reference code's ``nn.Dropout``; ``jaxal.model.mc_map``). A model without a
       ``head`` runs its own stochastic forward pass instead (its own dropout layers and
       rates; ``dropout_rate`` then has no effect).
    3. mismatch(x) = how many of the M predictions differ from y_hat. The candidates are
       the unlabeled points with mismatch > t, from t = floor(M / 2) (a strict majority of
       the passes disagree, the paper's rule); while fewer than
       ``candidates_per_pick * budget`` points pass and t > 0, t is lowered by one (the
       reference code's widening, factor 25). ``candidates_per_pick=0`` keeps the strict
       majority (as scikit-activeml).
    4. k-means with ``budget`` clusters (k-means++ seeding, Lloyd's iterations:
       ``jaxal.selectors.kmeans``) over the candidates' embeddings, unit-normalized when
       ``normalize`` (the reference clusters L2-normalized head features); the candidate
       nearest each center, distinct.
    5. Fewer than ``budget`` candidates: all of them (step 4 takes each), then uniform
       random unlabeled non-candidates fill the rest (the reference code's fill;
       scikit-activeml instead takes the points of highest disagreement).

    Cold start: with no labeled point the head is untrained, so, as the reference code
    (its first round uses ``centroid_init``), every unlabeled point is a candidate: k-means
    over all of them, the point nearest each center.

    The sets have static shapes: candidates are a mask, the fill a top-k of uniform keys.
    ``key`` draws the dropout masks (per point from its global index: independent of
    ``batch_size``), the k-means++ seeds and the fill. Randomness differs from the
    reference (faiss k-means, numpy's global RNG), so the picks match it in distribution,
    not point for point.

    Cost: one forward pass plus M dropout passes (with a ``head``: one more forward pass
    and M head passes, O(N * D * C) each), then k-means O(n_init * max_iter * U * budget *
    D) over the U candidates (run at the smallest of N, N/2, N/4, ... down to 1,024 rows
    that holds them: ``jaxal.selectors.kmeans``). Memory O(N * M) for the predictions plus
    k-means' O(N * D). Needs a trained classifier once points are labeled (its logits and
    embedding); nothing is quadratic in N.

    Args:
        model: the :class:`jaxal.Model`; with a ``head`` the dropout acts on the
            embedding (the paper's setting: a linear head on frozen features).
        budget: points per selection = clusters.
        mc_samples: M dropout passes (the reference code's ``num_iter``, 3;
            scikit-activeml's code default is 5).
        dropout_rate: the head-input dropout rate in [0, 1) (reference: 0.75).
        candidates_per_pick: widen the candidate threshold until this many candidates per
            pick pass (reference: 25); 0: never widen.
        normalize: unit-normalize the embeddings that k-means clusters.
        n_init, max_iter, tol: as ``jaxal.selectors.kmeans`` (faiss in the reference code
            runs 1 seeding and 100 iterations).
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget]: the
        clustered picks first, then any fill; ``score`` is None.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    mc_samples = _checks.positive_int(mc_samples, "mc_samples")
    dropout_rate = _checks.nonnegative_float(dropout_rate, "dropout_rate")
    if dropout_rate >= 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    candidates_per_pick = _checks.nonnegative_int(candidates_per_pick, "candidates_per_pick")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
    n_init = _checks.positive_int(n_init, "n_init")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    tol = _checks.nonnegative_float(tol, "tol")
    dropped = model._replace(head_dropout=dropout_rate)

    def select(params: Any, pool: Pool, key: jax.Array) -> jax.Array:
        candidates = candidates_for(pool, budget)
        logits, embeddings = forward(model, params, pool.x, batch_size)
        _checks.finite(logits, "logits")
        _checks.finite(embeddings, "embeddings")
        candidates, (logits, embeddings) = finite_points(candidates, logits, embeddings)
        dropout_key, kmeans_key, fill_key = jax.random.split(key, 3)
        mismatch = dropout_mismatches(
            dropped, params, pool.x, logits, dropout_key, mc_samples, batch_size, pool.offset
        )
        uncertain = disagreeing(mismatch, candidates, mc_samples, candidates_per_pick * budget)
        uncertain = jnp.where(jnp.any(pool.labeled), uncertain, candidates)  # cold start
        points = embeddings.astype(jnp.float32)
        return selectors.kmeans_with_fill(
            unit_rows(points) if normalize else points,
            uncertain,
            candidates,
            budget,
            kmeans_key,
            fill_key,
            n_init=n_init,
            max_iter=max_iter,
            tol=tol,
        )

    hparams = {
        "mc_samples": mc_samples,
        "dropout_rate": dropout_rate,
        "candidates_per_pick": candidates_per_pick,
        "normalize": normalize,
        "n_init": n_init,
        "max_iter": max_iter,
        "tol": tol,
        "batch_size": batch_size,
    }
    return make_strategy("dropquery", budget, hparams, select, no_score)


def dropout_mismatches(
    model: Model,
    params: Any,
    x: jax.Array,
    logits: jax.Array,
    key: jax.Array,
    mc_samples: int,
    batch_size: int,
    offset: jax.Array | int = 0,
) -> jax.Array:
    """int32 [N]: how many of ``mc_samples`` dropout predictions differ from the argmax of
    ``logits`` [N, C] (``jaxal.model.mc_map`` with ``model.head_dropout`` on the head path)."""

    def predictions(sampled):  # logits [S, B, C] -> predicted classes [B, S]
        return jnp.argmax(sampled, axis=-1).astype(jnp.int32).T

    dropped = mc_map(
        model, params, x, key, mc_samples, batch_size, predictions, offset, logits=True
    )
    predicted = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jnp.sum(dropped != predicted[:, None], axis=1).astype(jnp.int32)


def disagreeing(
    mismatch: jax.Array, candidates: jax.Array, mc_samples: int, wanted: int
) -> jax.Array:
    """bool [N]: the candidates with mismatch > t, t the largest threshold in
    [0, floor(M / 2)] that at least ``wanted`` candidates pass (0 if none does): the
    reference code's loop lowering t from floor(M / 2) while too few pass."""
    thresholds = jnp.arange(mc_samples // 2 + 1, dtype=jnp.int32)
    passing = jnp.sum(candidates[None, :] & (mismatch[None, :] > thresholds[:, None]), axis=1)
    threshold = jnp.max(jnp.where(passing >= wanted, thresholds, 0))
    return candidates & (mismatch > threshold)

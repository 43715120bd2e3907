"""BatchBALD (Kirsch, van Amersfoort & Gal 2019): greedy joint mutual information."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal.model import Model, mc_map
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    make_strategy,
    no_score,
)
from jaxal.strategies.uncertainty import (
    mc_sample_count,
    require_varied_samples,
    sample_spread,
)


def batchbald(
    model: Model,
    budget: int,
    *,
    mc_samples: int = 20,
    max_configurations: int = selectors.BATCHBALD_MAX_CONFIGURATIONS,
    chunk_size: int = 256,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """BatchBALD: greedily grow the batch whose labels share the most information with
    the weights, I(y_1, ..., y_k; w), estimated from S MC-dropout samples.

    The first pick is BALD's (the top mutual information). Each later pick maximises the
    joint entropy of the batch's labels minus the new point's expected conditional
    entropy; the joint entropy is exact while the C^m label configurations of the batch fit
    in ``max_configurations`` rows and estimated from that many sampled configurations
    beyond (see :func:`jaxal.selectors.batchbald`). Unlike DISTIL, whose exact
    mode computes nothing, every step is real BatchBALD.

    The MC samples are consistent: sample s drops the same units for every point (one
    network per sample, ``jaxal.model.mc_map(..., consistent=True)``), since the joint
    p(y_1, ..., y_m | w) multiplies the points' probabilities under the same weights;
    ``bald`` draws per-point masks instead. ``select(params, pool, key)`` splits ``key`` in
    two: the first half drives the MC-dropout passes, the second the sampled
    configurations. Cost: S forward passes in chunks of ``batch_size`` (memory
    O(S * batch_size * C)), the probabilities [S, N, C] kept for the loop, then per pick
    O(N * M' * S * C) flops for the M' <= M = ``max_configurations`` rows that still
    carry information (none once the batch has identified the MC sample: I(Y; w) <=
    log S; the remaining picks then follow BALD), in chunks of ``chunk_size`` candidates
    (memory O(M * S + chunk_size * 64 * C)).

    Args:
        model: the :class:`jaxal.Model`; it needs dropout (or ``head``) for the S samples
            to differ (outside ``jit``, samples that agree for every point raise).
        budget: points per selection.
        mc_samples: S >= 2 MC-dropout samples (DISTIL's n_drop; default 20).
        max_configurations: M >= S, rows of the joint label table (DISTIL's n_samples,
            default 1000).
        chunk_size: candidates scored at a time in each greedy step.
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` named ``"batchbald"`` whose ``select`` returns
        int32 [budget] in pick order and whose ``score`` is None (no per-point score).
    """
    budget, batch_size = check_common(model, budget, batch_size)
    mc_samples = mc_sample_count(mc_samples, "batchbald")
    max_configurations = _checks.positive_int(max_configurations, "max_configurations")
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")
    if max_configurations < mc_samples:
        raise ValueError(
            f"max_configurations must be >= mc_samples ({mc_samples}), got {max_configurations}"
        )

    def select(params, pool, key):
        candidates = candidates_for(pool, budget)
        mc_key, sample_key = jax.random.split(key)
        probs, finite, spread = mc_map(
            model,
            params,
            pool.x,
            mc_key,
            mc_samples,
            batch_size,
            _per_point,
            pool.offset,
            consistent=True,  # sample s is one network for every point: a joint over points
            logits=True,
            in_place=True,  # [N, S, C]: one copy
        )
        _checks.finite_where(finite, "MC-dropout logits")
        require_varied_samples(spread, "batchbald")
        # Rows of non-finite logits (NaN probabilities) are no candidates; BatchBALD sums
        # nothing over the pool, so they need no zeroing (a second [N, S, C] array).
        candidates = candidates & finite
        return selectors.batchbald(
            jnp.swapaxes(probs, 0, 1),  # the selector's [S, N, C]; it works on [N, S, C]
            candidates,
            budget,
            sample_key,
            max_configurations=max_configurations,
            chunk_size=chunk_size,
        ).indices

    hparams = {
        "mc_samples": mc_samples,
        "max_configurations": max_configurations,
        "chunk_size": chunk_size,
        "batch_size": batch_size,
    }
    return make_strategy("batchbald", budget, hparams, select, no_score)


def _per_point(logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One chunk's MC logits [S, B, C] -> (probabilities [B, S, C], finite bool [B], the
    largest |logit - sample 0's logit| [B]): only the probabilities are kept for the
    whole pool, never a second [N, S, C] array of logits."""
    finite = jnp.all(jnp.isfinite(logits), axis=(0, 2))
    return jax.nn.softmax(jnp.swapaxes(logits, 0, 1), axis=-1), finite, sample_spread(logits)

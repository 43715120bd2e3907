"""EPIG (Bickford Smith, Kirsch, Farquhar, Gal, Foster & Rainforth, "Prediction-oriented
Bayesian Active Learning", AISTATS 2023): the expected information a label gives about
the predictions on target inputs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, scores, selectors
from jaxal.model import Model, mc_map
from jaxal.pool import Pool
from jaxal.strategies._base import DEFAULT_BATCH_SIZE, Strategy, check_common, scored_strategy
from jaxal.strategies.uncertainty import mc_sample_count, require_varied_samples, sample_spread

TARGET_INPUTS = ("target_x",)


def epig(
    model: Model,
    budget: int,
    *,
    mc_samples: int = 20,
    target_samples: int = 100,
    chunk_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """EPIG: the top ``budget`` by expected predictive information gain.

    EPIG(x) = E_{x* ~ p*}[I(y; y* | x, x*)], the mutual information between the label of x
    and the label of a target input x*, averaged over the targets
    (``jaxal.scores.expected_predictive_information_gain``): where BALD asks what a label
    tells about the parameters, EPIG asks what it tells about the predictions on the
    inputs that matter. The joint of y and y* comes from S *consistent* MC-dropout samples
    (``jaxal.model.mc_map(..., consistent=True)``): sample s is one network, the same for
    the pool and for every target, as the reference code's shared parameter samples (its
    pool and targets go through one forward call). Without that the joint would be wrong.

    Targets: ``select(params, pool, key, target_x=...)`` takes them as a traced input
    [M, ...] (a sample of the inputs the model will face, e.g. a test split's inputs;
    labels are never needed); without it, ``target_samples`` points drawn uniformly
    without replacement from the whole pool with the key (every pool point, labeled or
    not, is a draw from the input distribution). The reference code draws a fresh batch
    of 100 targets from a separate target split each round; baal's loop uses the labeled
    set. A target whose outputs are not finite is left out (under ``jit``; outside it,
    non-finite ``target_x`` raises).

    BALD is the limit: with the point itself as its only target, EPIG is I(y; y') of two
    draws from one network, which is BALD's I(y; theta) minus I(y; theta | y') and equals
    it when each sample predicts one class with certainty (then both are H(mean_s p_s)).

    Batches: this ranks by the per-point score, as the reference code with its default
    ``batch_size=1`` acquisition repeated; ``jaxal.strategies.stochastic(...,
    strategy="epig", mode="power")`` draws a batch in proportion to EPIG^beta (the
    reference's stochastic acquisition, its Gumbel noise from the key). The greedy joint
    EPIG of a batch is not offered: its joint over the batch's labels and a target's
    needs C^b configurations (or a sample of them, as BatchBALD) per target and candidate,
    beyond the O(chunk * M * C^2) memory here.

    Cost: S head passes (or S stochastic forward passes without a ``head``) over the pool
    and the M targets, then O(N * M * S * C^2) multiply-adds and N * M * C^2 logarithms,
    the whole cost at large M (10^11 and 5 * 10^9 at N = 50,000, M = 1,000, S = 20,
    C = 10: seconds on two CPU cores; the time is linear in M); memory O(N * S * C) for
    the samples plus O(chunk * M * C^2) for one chunk of the joints. Needs a model with
    dropout (or a ``head``) and a trained classifier: from an untrained model EPIG is
    close to 0 everywhere. ``jaxal.streaming.top_k`` refuses it: a point's score depends
    on the targets, which chunks streamed one by one cannot share.

    Args:
        model: the :class:`jaxal.Model`; outside ``jit``, MC samples whose logits are
            identical for every point raise a ValueError (EPIG would be 0 everywhere).
        budget: points per selection.
        mc_samples: S >= 2 consistent MC-dropout samples (the reference code uses 100;
            the cost grows linearly in S).
        target_samples: M, the targets drawn from the pool when no ``target_x`` is given
            (the reference's ``n_target_samples``, 100); at most the pool size is used.
        chunk_size: pool points per block of joints (see
            ``jaxal.scores.expected_predictive_information_gain``); None: a 2 MB block.
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` with ``inputs == ("target_x",)`` (optional)
        and a per-point ``score`` [N] (EPIG in nats, in [0, log C]; -inf for labeled
        points); ``select`` returns its top ``budget``, int32 [budget].
    """
    budget, batch_size = check_common(model, budget, batch_size)
    mc_samples = mc_sample_count(mc_samples, "epig")
    target_samples = _checks.positive_int(target_samples, "target_samples")
    chunk_size = _checks.optional_positive_int(chunk_size, "chunk_size")

    def raw_score(params: Any, pool: Pool, key: jax.Array, target_x: Any = None) -> jax.Array:
        dropout_key, target_key = jax.random.split(key)
        if target_x is None:
            targets = pool.x[pool_targets(pool.size, target_samples, target_key)]
        else:
            targets = checked_targets(pool, target_x)
        target_log_probs, _ = consistent_log_probs(
            model, params, targets, dropout_key, mc_samples, batch_size
        )
        log_probs, spread = consistent_log_probs(
            model, params, pool.x, dropout_key, mc_samples, batch_size
        )
        require_varied_samples(spread, "epig")
        return scores.expected_predictive_information_gain(
            log_probs, target_log_probs, chunk_size=chunk_size
        )

    hparams = {
        "mc_samples": mc_samples,
        "target_samples": target_samples,
        "chunk_size": chunk_size,
        "batch_size": batch_size,
    }
    return scored_strategy("epig", budget, hparams, raw_score, TARGET_INPUTS)


def pool_targets(pool_size: int, target_samples: int, key: jax.Array) -> jax.Array:
    """int32 [min(target_samples, pool_size)]: distinct pool indices drawn uniformly."""
    count = min(target_samples, pool_size)
    return selectors.random_subset(jnp.ones(pool_size, bool), count, key)


def checked_targets(pool: Pool, target_x: Any) -> jax.Array:
    """``target_x`` as an array [M >= 1, ...] shaped like the pool's inputs; outside
    ``jit`` non-finite values raise."""
    x = jnp.asarray(target_x)
    if x.ndim != pool.x.ndim or x.shape[1:] != pool.x.shape[1:] or x.shape[0] < 1:
        raise ValueError(
            f"target_x must be [M >= 1, {', '.join(map(str, pool.x.shape[1:]))}] like the "
            f"pool's inputs, got shape {x.shape}"
        )
    _checks.finite(x, "target_x")
    return x


def consistent_log_probs(
    model: Model, params: Any, x: jax.Array, key: jax.Array, mc_samples: int, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """(log-probabilities float [S, N, C], spread float [N]) of S consistent MC-dropout
    samples (sample s drops the same units for every input, whatever its index, so the
    pool and the targets see the same S networks); the spread is as BALD's (0: the
    samples agree). NaN rows for inputs whose logits are not finite."""

    def reduce(logits):  # [S, B, C] -> ([B, S, C], [B])
        return jnp.swapaxes(jax.nn.log_softmax(logits, axis=-1), 0, 1), sample_spread(logits)

    log_probs, spread = mc_map(
        model, params, x, key, mc_samples, batch_size, reduce, consistent=True, logits=True
    )
    return jnp.swapaxes(log_probs, 0, 1), spread

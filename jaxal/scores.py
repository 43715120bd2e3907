"""Pure array math: class probabilities -> per-point acquisition scores.

Every score is float32 [N] and follows one convention: higher means "pick first". Letters:
N points, C classes, S Monte-Carlo (dropout) samples.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, xlogy

from jaxal._chunks import map_chunks


def entropy(probs: jax.Array) -> jax.Array:
    """Predictive entropy -sum_c p_c log p_c, finite for saturated probabilities.

    Uses ``xlogy`` so that 0 * log 0 = 0 (DISTIL's ``p * log p`` gives NaN there).

    Args:
        probs: float [..., N, C], rows sum to 1.

    Returns:
        float [..., N], in [0, log C].
    """
    return -jnp.sum(xlogy(probs, probs), axis=-1)


def least_confidence(probs: jax.Array) -> jax.Array:
    """One minus the probability of the predicted class, 1 - max_c p_c.

    Args:
        probs: float [N, C], rows sum to 1.

    Returns:
        float [N], in [0, 1 - 1/C]. (DISTIL scores -max_c p_c: the same order.)
    """
    return 1.0 - jnp.max(probs, axis=-1)


def margin(probs: jax.Array) -> jax.Array:
    """Negated gap between the two most probable classes, p_(2) - p_(1).

    Args:
        probs: float [N, C], rows sum to 1, C >= 2.

    Returns:
        float [N], in [-1, 0]; the smallest margin scores highest.
    """
    # Two max passes instead of lax.top_k(probs, 2), which is much slower on CPU.
    first = jnp.argmax(probs, axis=-1, keepdims=True)
    is_first = jnp.arange(probs.shape[-1]) == first
    largest = jnp.max(probs, axis=-1)
    runner_up = jnp.max(jnp.where(is_first, -jnp.inf, probs), axis=-1)
    return runner_up - largest


def mutual_information(mc_probs: jax.Array) -> jax.Array:
    """BALD: mutual information between the label and the weights, from MC samples.

    I = H(mean_s p_s) - mean_s H(p_s), computed as mean_s KL(p_s || mean_s p_s), which has
    no cancellation between two large entropies, and clipped at 0. The log of the mean is
    :func:`log_mean`'s, finite wherever some p_s > 0 (a positive probability below S
    times the smallest normal float has a mean that XLA on CPU flushes to zero, and log 0
    there made the KL term infinite).

    Args:
        mc_probs: float [S, N, C], S stochastic forward passes, rows sum to 1.

    Returns:
        float [N], in [0, log C].
    """
    return _information(mc_probs, jnp.log(mc_probs))


def mutual_information_from_logits(mc_logits: jax.Array) -> jax.Array:
    """:func:`mutual_information` of softmax(``mc_logits``), with the log-probabilities
    taken from the logits (log p = z - logsumexp z: one logarithm per sample and point
    instead of one per class, and exact where a probability underflows).

    Args:
        mc_logits: float [S, N, C], the logits of S stochastic forward passes.

    Returns:
        float [N], in [0, log C].
    """
    shifted = mc_logits - jnp.max(mc_logits, axis=-1, keepdims=True)
    exps = jnp.exp(shifted)
    total = jnp.sum(exps, axis=-1, keepdims=True)
    return _information(exps / total, shifted - jnp.log(total))


def _information(probs: jax.Array, log_probs: jax.Array) -> jax.Array:
    """mean_s KL(p_s || mean_s p_s) [N], clipped at 0, from probs and their logs [S, N, C]."""
    log_ratio = log_probs - _log_mean(probs, log_probs)  # <= log S wherever p_s > 0
    divergence = jnp.mean(jnp.sum(jnp.where(probs == 0, 0.0, probs * log_ratio), axis=-1), 0)
    return jnp.where(divergence < 0, 0.0, divergence)  # NaN stays NaN (max would drop it)


def log_mean(mc_probs: jax.Array) -> jax.Array:
    """log mean_s p_s, finite wherever some p_s > 0.

    The mean of S probabilities, one of them tiny and the rest zero, can fall below the
    smallest normal float, where XLA on CPU flushes it to zero. When every mean is a
    normal float (or 0) this is the log of the mean; otherwise the log is taken in log
    space, logsumexp_s log p_s - log S, which keeps the value (about log p_s - log S).

    Args:
        mc_probs: float [S, ...], probabilities of S Monte-Carlo samples.

    Returns:
        float [...]: -inf exactly where every sample's probability is 0.
    """
    return _log_mean(mc_probs, jnp.log(mc_probs))


def _log_mean(probs: jax.Array, log_probs: jax.Array) -> jax.Array:
    """:func:`log_mean` from the probabilities [S, ...] and their logs: the log of the
    mean (one logarithm per entry of the mean) unless some mean is below the normal
    range, then the log-sum-exp over the samples (S exponentials per entry)."""
    total = jnp.sum(probs, axis=0)
    mean = total / probs.shape[0]
    # A mean of 0 is exact only where every sample is 0 (their sum is then 0 too).
    normal = jnp.all((mean >= jnp.finfo(mean.dtype).tiny) | (total == 0))

    def in_log_space():
        return logsumexp(log_probs, axis=0) - math.log(probs.shape[0])

    return jax.lax.cond(normal, lambda: jnp.log(mean), in_log_space)


def expected_predictive_information_gain(
    log_probs: jax.Array,
    target_log_probs: jax.Array,
    target_weights: jax.Array | None = None,
    *,
    chunk_size: int | None = None,
) -> jax.Array:
    """EPIG (Bickford Smith et al. 2023): the mutual information between a point's label
    and a target input's label, averaged over the targets, from S posterior samples.

    With J_cd = mean_s p_s(c | x) p_s(d | x*) the joint of the two labels (the samples
    must be *consistent*: sample s is one network for the point and for every target) and
    p_c, q_d its marginals,

        EPIG(x) = sum_t w_t sum_cd J_cd log(J_cd / (p_c q_d)) / sum_t w_t,

    the paper's KL form (equal to H(y) + H(y*) - H(y, y*)). It is evaluated as
    sum_cd p_c q_d R_cd log R_cd with R_cd = J_cd / (p_c q_d) = mean_s a_sc b_sd,
    a_sc = p_s(c | x) / p_c and b_sd = p_s(d | x*) / q_d. The ratios come from the
    log-probabilities (a log-mean-exp over the samples), so they lie in [0, S] and no
    logarithm is taken of a probability or a mean that underflowed: the score is finite
    on saturated models, whose probabilities reach float32's subnormals (flushed to zero
    by XLA on CPU), and a ratio below the smallest normal float counts as 0 (R log R -> 0).
    The target side (b, q) is computed once for all points; a chunk of points against
    all targets is one matrix product [chunk * C, S] x [S, M * C]. Absolute rounding error
    about 1e-7 in float32.

    Cost O(N * M * S * C^2) multiply-adds and N * M * C^2 logarithms (exact EPIG has
    no cheaper form: every entry of every joint enters a logarithm); memory O(chunk * M *
    C^2) for one chunk of points against every target, never [N, M, C, C].

    Args:
        log_probs: float [S, N, C], log p_s(c | x_n) of N points under S samples.
        target_log_probs: float [S, M, C], the same S samples on M target inputs.
        target_weights: float [M] >= 0, each target's weight (None: equal weights). A
            target whose log-probabilities are not finite gets weight 0.
        chunk_size: points per chunk; None: as many as keep a chunk's [chunk, C, M * C]
            ratios within 2^19 entries (2 MB, about a CPU core's L2 cache), at least 1.

    Returns:
        float [N], in [0, log C] (0 when no target has weight); NaN for points whose
        log-probabilities are not finite.
    """
    samples, n, classes = log_probs.shape
    m = target_log_probs.shape[1]
    if target_log_probs.shape != (samples, m, classes):
        raise ValueError(
            f"target_log_probs must have shape ({samples}, M, {classes}) like log_probs "
            f"{log_probs.shape}, got {target_log_probs.shape}"
        )
    weights = jnp.ones(m, jnp.float32) if target_weights is None else target_weights
    usable = jnp.all(jnp.isfinite(target_log_probs), axis=(0, 2)) & (weights > 0)
    weights = jnp.where(usable, weights, 0.0).astype(jnp.float32)
    uniform = jnp.float32(-math.log(classes))
    target_ratio, target_mass = _sample_ratios(
        jnp.where(usable[None, :, None], target_log_probs, uniform)
    )
    total = jnp.sum(weights)
    column_weights = weights[:, None] * target_mass / jnp.where(total > 0, total, 1.0)
    # b / S as one [S, M * C] matrix: a chunk's R is then one matrix product.
    target_side = (target_ratio / samples).reshape(samples, m * classes)
    column_weights = column_weights.reshape(m * classes)
    pool_ratio, pool_mass = _sample_ratios(log_probs)
    if chunk_size is None:
        chunk_size = max(1, 2**19 // (classes * m * classes))

    def one_chunk(ratio, mass, index):  # ratio [B, C, S], mass [B, C]
        del index
        r = jnp.matmul(ratio, target_side)  # [B, C, M * C], >= 0
        # r log r, 0 where r is 0 or subnormal (max: no log of 0, no 0 * -inf)
        terms = r * jnp.log(jnp.maximum(r, jnp.finfo(r.dtype).tiny))
        return jnp.sum(mass * jnp.matmul(terms, column_weights), axis=1)

    gain = map_chunks(
        one_chunk, jnp.transpose(pool_ratio, (1, 2, 0)), pool_mass, chunk_size=chunk_size
    )
    return jnp.where(gain < 0, 0.0, gain)  # rounding only; NaN stays NaN


def _sample_ratios(log_probs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(p_s / mean_s p_s: float [S, K, C] in [0, S], mean_s p_s: float [K, C]) from
    log-probabilities [S, K, C]: the ratio is exp(log p_s - log-mean-exp_s log p_s), never
    a division by a mean that underflowed."""
    log_probs = log_probs.astype(jnp.result_type(log_probs.dtype, jnp.float32))
    log_marginal = logsumexp(log_probs, axis=0) - math.log(log_probs.shape[0])
    return jnp.exp(log_probs - log_marginal), jnp.exp(log_marginal)

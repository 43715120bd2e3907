"""Pure array math: class probabilities -> per-point acquisition scores.

Every score is float32 [N] and follows one convention: higher means "pick first". Letters:
N points, C classes, S Monte-Carlo (dropout) samples.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp, xlogy


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
    taken in log space (:func:`log_mean`), never of the mean itself: a positive
    probability below S times the smallest normal float has a mean that XLA on CPU flushes
    to zero, and log 0 there made the KL term infinite.

    Args:
        mc_probs: float [S, N, C], S stochastic forward passes, rows sum to 1.

    Returns:
        float [N], in [0, log C].
    """
    log_mean_probs = log_mean(mc_probs)
    log_ratio = jnp.log(mc_probs) - log_mean_probs  # <= log S wherever p_s > 0
    divergence = jnp.mean(jnp.sum(jnp.where(mc_probs == 0, 0.0, mc_probs * log_ratio), axis=-1), 0)
    return jnp.where(divergence < 0, 0.0, divergence)  # NaN stays NaN (max would drop it)


def log_mean(mc_probs: jax.Array) -> jax.Array:
    """log mean_s p_s = logsumexp_s log p_s - log S, finite wherever some p_s > 0.

    The mean of S probabilities, one of them tiny and the rest zero, can fall below the
    smallest normal float, where XLA on CPU flushes it to zero; its log in log space keeps
    the value (about log p_s - log S).

    Args:
        mc_probs: float [S, ...], probabilities of S Monte-Carlo samples.

    Returns:
        float [...]: -inf exactly where every sample's probability is 0.
    """
    return logsumexp(jnp.log(mc_probs), axis=0) - math.log(mc_probs.shape[0])

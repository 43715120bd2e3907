"""Stochastic batch acquisition: sample a batch in proportion to a transformed score."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.selectors._top_k import top_k

STOCHASTIC_MODES = ("power", "softmax", "softrank")


def log_weights(scores: jax.Array, candidates: jax.Array, mode: str, beta: float) -> jax.Array:
    """Log sampling weights of Kirsch et al. 2023, restricted to the candidates.

    * ``"softmax"``: w_i = exp(beta * s_i);
    * ``"power"``: w_i = s_i ** beta, for non-negative scores (BALD, entropy); a score <= 0
      has weight 0 and is drawn only after every positive one;
    * ``"softrank"``: w_i = r_i ** -beta with r_i the 1-based rank of s_i among the
      candidates (highest first, ties to the lower index): uses only the order.

    Args:
        scores: float [N], higher = more useful.
        candidates: bool [N].
        mode: one of ``"power"``, ``"softmax"``, ``"softrank"``.
        beta: inverse temperature > 0; as beta grows the draw tends to the top-k.

    Returns:
        float32 [N]: log w_i for candidates (possibly -inf), -inf elsewhere.
    """
    scores = scores.astype(jnp.float32)
    if mode == "softmax":
        logs = beta * scores
    elif mode == "power":
        logs = beta * jnp.log(jnp.maximum(scores, 0.0))
    elif mode == "softrank":
        ranked = jnp.where(candidates, scores, -jnp.inf)
        order = jnp.argsort(-ranked, stable=True)
        ranks = jnp.empty_like(order).at[order].set(jnp.arange(1, scores.shape[0] + 1))
        logs = -beta * jnp.log(ranks.astype(jnp.float32))
    else:
        raise ValueError(f"mode must be one of {STOCHASTIC_MODES}, got {mode!r}")
    return jnp.where(candidates, logs, -jnp.inf)


def stochastic_top_k(
    scores: jax.Array,
    candidates: jax.Array,
    budget: int,
    key: jax.Array,
    *,
    mode: str = "power",
    beta: float = 1.0,
) -> jax.Array:
    """Draw ``budget`` candidates without replacement with probabilities proportional to w_i.

    Gumbel-top-k: the top ``budget`` of log w_i + Gumbel noise is a sample without
    replacement from the Plackett-Luce distribution of the weights (successive draws
    proportional to w_i among the points not yet drawn). O(N) work.

    Args:
        scores: float [N], higher = more useful.
        candidates: bool [N].
        budget: Python int, 1 <= budget <= N.
        key: PRNG key.
        mode, beta: see :func:`log_weights`.

    Returns:
        int32 [budget], distinct candidates in draw order; -1 where too few candidates
        with a finite score exist (a NaN or infinite score is never drawn).
    """
    usable = candidates & jnp.isfinite(scores)
    logs = log_weights(scores, usable, mode, beta)
    perturbed = logs + jax.random.gumbel(key, logs.shape, jnp.float32)
    # Weight 0 (log -inf) comes after every positive weight, ties to the lower index; a
    # weight beyond float32 ties with the largest.
    finite = jnp.finfo(jnp.float32)
    return top_k(jnp.clip(perturbed, finite.min, finite.max), usable, budget)

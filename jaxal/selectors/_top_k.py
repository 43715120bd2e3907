"""Top-k over scores restricted to a candidate mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def top_k(scores: jax.Array, candidates: jax.Array, budget: int) -> jax.Array:
    """The ``budget`` candidates with the highest scores, best first.

    Ties go to the lower index (a stable descending sort, as DISTIL). A candidate whose
    score is NaN or infinite is never picked: slots that only such points could fill
    are -1 (outside ``jit`` the strategies raise on non-finite scores before this).

    Args:
        scores: float [N].
        candidates: bool [N], the points that may be picked.
        budget: Python int, 1 <= budget <= N.

    Returns:
        int32 [budget]: distinct candidate indices with finite scores; slots beyond their
        number are -1.
    """
    n = scores.shape[0]
    if not 1 <= budget <= n:
        raise ValueError(f"budget must be in [1, {n}] (the pool size), got {budget}")
    candidates = candidates & jnp.isfinite(scores)
    _, indices = jax.lax.top_k(rank_keys(scores, candidates), budget)
    filled = jnp.arange(budget) < jnp.sum(candidates)
    return jnp.where(filled, indices, -1).astype(jnp.int32)


def rank_keys(scores: jax.Array, candidates: jax.Array) -> jax.Array:
    """float32 [N] sort keys: NaN and -inf become the lowest finite float, so that every
    candidate ranks above every non-candidate (-inf).

    Args:
        scores: float [N].
        candidates: bool [N].
    """
    scores = scores.astype(jnp.float32)
    lowest = jnp.finfo(jnp.float32).min
    ranked = jnp.where(jnp.isnan(scores), lowest, jnp.maximum(scores, lowest))
    return jnp.where(candidates, ranked, -jnp.inf)


def random_subset(candidates: jax.Array, budget: int, key: jax.Array) -> jax.Array:
    """``budget`` candidates drawn uniformly without replacement.

    Args:
        candidates: bool [N].
        budget: Python int, 1 <= budget <= N.
        key: PRNG key.

    Returns:
        int32 [budget], distinct candidates; -1 where too few candidates exist.
    """
    uniforms = jax.random.uniform(key, candidates.shape)
    return top_k(uniforms, candidates, budget)

"""The active-learning round: a stateless composition, jit once and call every round."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxal.pool import Pool
from jaxal.strategies import Strategy


def make_round(strategy: Strategy) -> Callable[..., tuple[Pool, jax.Array]]:
    """Return ``round(params, pool, key, **inputs) -> (pool, indices)`` for ``strategy``.

    The round selects ``strategy.budget`` points and marks them labeled (their ``y`` is
    untouched, -1 until ``pool.label(indices, labels)`` brings the labels). It is pure and
    unjitted; ``jax.jit(make_round(strategy))`` compiles once and runs every round, since
    the pool's shapes never change. Keyword ``inputs`` (``strategy.inputs``, e.g. SMI's
    query set) are passed on to ``strategy.select``, as traced arguments.

    Returns:
        The round function; its ``indices`` are int32 [budget].
    """

    def al_round(
        params: Any, pool: Pool, key: jax.Array, **inputs: jax.Array
    ) -> tuple[Pool, jax.Array]:
        indices = strategy.select(params, pool, key, **inputs)
        return pool.mark_labeled(indices), indices

    return al_round

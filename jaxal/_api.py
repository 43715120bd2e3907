"""``jaxal.select``: the one-line convenience over the registry."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax

from jaxal.model import Model
from jaxal.pool import Pool
from jaxal.strategies import Strategy, get

# Strategies built by recent calls, with their compiled programs: a repeated call with the
# same name, model, budget and hyperparameters compiles nothing. Bounded, least recently
# used first out.
RECENT_STRATEGIES = 8


def select(
    name: str,
    model: Model | None,
    params: Any,
    pool: Pool,
    key: jax.Array,
    budget: int,
    *,
    inputs: Mapping[str, Any] | None = None,
    **hparams: Any,
) -> jax.Array:
    """Select ``budget`` points with the strategy registered as ``name``.

    Equivalent to ``jaxal.strategies.<name>(model, budget, **hparams).select(params, pool,
    key, **inputs)``. The strategy is kept for the next call with the same ``name``,
    ``model`` (the same object), ``budget`` and hashable ``hparams`` (the last 8 such
    strategies), so a repeated call runs its compiled program without compiling again.

    Args:
        inputs: the strategy's extra arrays by name (``Strategy.inputs``, e.g.
            ``{"query_x": ..., "query_y": ...}`` for ``smi``); default none.

    Returns:
        int32 [budget], distinct unlabeled indices.

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones), or bad input.
    """
    return _strategy(name, model, budget, hparams).select(params, pool, key, **dict(inputs or {}))


def _strategy(name: str, model: Model | None, budget: int, hparams: dict[str, Any]) -> Strategy:
    settings = (name, model, budget, tuple(sorted(hparams.items())))
    try:
        hash(settings)
    except TypeError:  # an unhashable hyperparameter: build it for this call only
        return get(name)(model, budget, **hparams)
    return _recent(*settings)


@functools.lru_cache(maxsize=RECENT_STRATEGIES)
def _recent(
    name: str, model: Model | None, budget: int, hparams: tuple[tuple[str, Any], ...]
) -> Strategy:
    return get(name)(model, budget, **dict(hparams))

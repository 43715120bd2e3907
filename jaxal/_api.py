"""``jaxal.select``: the one-line convenience over the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax

from jaxal.model import Model
from jaxal.pool import Pool
from jaxal.strategies import get


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
    key, **inputs)``.

    Args:
        inputs: the strategy's extra arrays by name (``Strategy.inputs``, e.g.
            ``{"query_x": ..., "query_y": ...}`` for ``smi``); default none.

    Returns:
        int32 [budget], distinct unlabeled indices.

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones), or bad input.
    """
    return get(name)(model, budget, **hparams).select(params, pool, key, **dict(inputs or {}))

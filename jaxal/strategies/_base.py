"""The Strategy type and the pieces every factory shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal.pool import Pool
from jaxal.selectors import top_k

SelectFn = Callable[..., jax.Array]
ScoreFn = Callable[..., jax.Array | None]

DEFAULT_BATCH_SIZE = 4096


class Strategy(NamedTuple):
    """An active-learning strategy: a name, its hyperparameters and two pure functions.

    Attributes:
        name: the registry name, e.g. ``"badge"``.
        budget: the number of points ``select`` returns.
        hparams: every other hyperparameter, by name (also readable as attributes:
            ``strategy.mc_samples``).
        select: ``select(params, pool, key, **inputs) -> int32 [budget]``: distinct
            indices of unlabeled points, best first or in pick order. Called outside ``jit``
            it raises ValueError on bad input; under ``jit``, slots it cannot fill are -1.
        score: ``score(params, pool, key, **inputs) -> float32 [N] | None``: the
            acquisition score of every point (higher = pick first; -inf for labeled
            points), or None for strategies without a per-point score.
        inputs: the names of the extra keyword arrays ``select`` and ``score`` accept
            besides the pool (e.g. ``("query_x", "query_y")`` for SMI): data that changes
            between calls, so it travels as traced arguments, never as constants closed
            over by a jitted function. Empty for most strategies.
    """

    name: str
    budget: int
    hparams: Mapping[str, Any]
    select: SelectFn
    score: ScoreFn
    inputs: tuple[str, ...] = ()

    def __getattr__(self, item: str) -> Any:
        try:
            return self.hparams[item]
        except KeyError:
            raise AttributeError(f"strategy {self.name!r} has no attribute {item!r}") from None


def check_common(budget: object, batch_size: object) -> tuple[int, int]:
    """Validate the two hyperparameters every factory takes; return them as ints."""
    return _checks.positive_int(budget, "budget"), _checks.positive_int(batch_size, "batch_size")


def candidates_for(pool: Pool, budget: int) -> jax.Array:
    """bool [N]: the unlabeled points, after checking that ``budget`` of them can exist.

    Raises ValueError at trace time if ``budget`` exceeds the pool size, and outside jit if
    it exceeds the number of unlabeled points.
    """
    if not isinstance(pool, Pool):
        raise TypeError(f"pool must be a jaxal.Pool, got {type(pool).__name__}")
    if budget > pool.size:
        raise ValueError(f"budget={budget} is larger than the pool ({pool.size} points)")
    candidates = pool.unlabeled
    _checks.budget_fits(budget, candidates)
    return candidates


def no_score(params: Any, pool: Pool, key: jax.Array, **inputs: Any) -> None:
    """The ``score`` of strategies that have no per-point score."""
    del params, pool, key, inputs


def scored_strategy(
    name: str,
    budget: int,
    hparams: Mapping[str, Any],
    raw_score: Callable[[Any, Pool, jax.Array], jax.Array],
) -> Strategy:
    """A strategy that ranks by a score: ``select`` is the top ``budget`` of ``score``.

    Args:
        raw_score: ``(params, pool, key) -> float [N]`` over every point; non-finite
            values raise ValueError outside jit.
    """

    def score(params, pool, key):
        candidates = pool.unlabeled
        values = raw_score(params, pool, key).astype(jnp.float32)
        _checks.finite(values, f"{name} scores (computed from the model's outputs)")
        return jnp.where(candidates, values, -jnp.inf)

    def select(params, pool, key):
        candidates = candidates_for(pool, budget)
        return top_k(score(params, pool, key), candidates, budget)

    return Strategy(name, budget, dict(hparams), select, score)

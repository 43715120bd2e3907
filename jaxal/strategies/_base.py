"""The Strategy type and the pieces every factory shares."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal._eager import compiled_when_concrete
from jaxal._points import PointsT, finite_rows, zero_rows
from jaxal.model import Model
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
            it compiles once per input shape (the program is kept with the strategy) and
            raises ValueError on bad input; under ``jit``, slots it cannot fill are -1.
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


def make_strategy(
    name: str,
    budget: int,
    hparams: Mapping[str, Any],
    select: SelectFn,
    score: ScoreFn,
    inputs: tuple[str, ...] = (),
) -> Strategy:
    """A :class:`Strategy` whose ``select`` and ``score`` share one signature,
    ``(params, pool, key, **inputs)``, and first check their arguments: ``pool`` a
    :class:`jaxal.Pool`, ``key`` one PRNG key, and only the keyword inputs named in
    ``inputs`` (TypeError / ValueError naming the argument, at trace time)."""
    return Strategy(
        name,
        budget,
        dict(hparams),
        _checked(select, name, inputs),
        _checked(score, name, inputs),
        inputs,
    )


def _checked(fn: Callable[..., Any], name: str, accepted: tuple[str, ...]) -> Callable[..., Any]:
    """``fn`` with its arguments checked; outside ``jit`` it runs compiled once per shape
    (``jaxal._eager``)."""
    run = compiled_when_concrete(fn)

    @functools.wraps(fn)
    def call(params: Any, pool: Pool, key: jax.Array, **inputs: Any) -> Any:
        unknown = sorted(set(inputs) - set(accepted))
        if unknown:
            takes = ", ".join(accepted) if accepted else "none"
            raise TypeError(f"{name} got unexpected inputs {unknown}; the inputs it takes: {takes}")
        if not isinstance(pool, Pool):
            raise TypeError(
                f"pool must be a jaxal.Pool (jaxal.Pool.create(x, ...)), got {type(pool).__name__}"
            )
        _checks.prng_key(key, "key")
        return run(params, pool, key, **inputs)

    del call.__wrapped__  # its own signature, (params, pool, key, **inputs), is the public one
    return call


def renamed(factory: str, new: str, old: str, new_value: Any, old_value: Any, default: Any) -> Any:
    """The value of a renamed keyword: the old name still works, with a DeprecationWarning.

    Raises:
        ValueError: both names given (``new_value`` not its ``default``).
    """
    if old_value is None:
        return new_value
    if new_value != default:
        raise ValueError(f"{factory}: pass {new}= only ({old}= is its deprecated name)")
    warnings.warn(f"{factory}: {old}= is deprecated; use {new}=", DeprecationWarning, stacklevel=3)
    return old_value


def check_common(
    model: object, budget: object, batch_size: object, *, needs_model: bool = True
) -> tuple[int, int]:
    """Validate what every factory takes; return ``budget`` and ``batch_size`` as ints.

    Raises:
        TypeError: ``model`` is not a :class:`jaxal.Model` (a bare Flax module names
            ``jaxal.from_flax``), or is None where the strategy runs the model.
    """
    check_model(model, needs_model=needs_model)
    return _checks.positive_int(budget, "budget"), _checks.positive_int(batch_size, "batch_size")


def check_model(model: object, *, needs_model: bool = True) -> None:
    """Raise a TypeError unless ``model`` is a :class:`jaxal.Model` (or None where
    ``needs_model`` is False)."""
    if isinstance(model, Model) or (model is None and not needs_model):
        return
    if model is None:
        raise TypeError("model is None, but this strategy runs the model: pass a jaxal.Model")
    from flax import linen, nnx

    hint = ""
    if isinstance(model, linen.Module | nnx.Module):
        hint = " (wrap a Flax module with jaxal.from_flax(module))"
    raise TypeError(f"model must be a jaxal.Model{hint}, got {type(model).__name__}")


def finite_points(candidates: jax.Array, *points: PointsT) -> tuple[jax.Array, list[PointsT]]:
    """The contract for non-finite values under ``jit``: a point with a NaN or infinite
    entry in any of ``points`` is no candidate, and its rows become zeros so that sums and
    distances over the pool stay finite.

    Args:
        candidates: bool [N].
        points: arrays [N, ...] or ``OuterProduct`` factors, rows = the pool's points.

    Returns:
        (candidates & finite: bool [N], the points with non-finite rows zeroed).
    """
    finite = functools.reduce(jnp.logical_and, [finite_rows(p) for p in points])
    return candidates & finite, [zero_rows(p, finite) for p in points]


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
    raw_score: Callable[..., jax.Array],
    inputs: tuple[str, ...] = (),
) -> Strategy:
    """A strategy that ranks by a score: ``select`` is the top ``budget`` of ``score``.

    Args:
        raw_score: ``(params, pool, key, **inputs) -> float [N]`` over every point;
            non-finite values raise ValueError outside jit.
        inputs: the extra keyword arrays ``raw_score`` takes (``Strategy.inputs``).
    """

    def score(params, pool, key, **given):
        candidates = pool.unlabeled
        values = raw_score(params, pool, key, **given).astype(jnp.float32)
        _checks.finite(values, f"{name} scores (computed from the model's outputs)")
        return jnp.where(candidates, values, -jnp.inf)

    def select(params, pool, key, **given):
        candidates = candidates_for(pool, budget)
        return top_k(score(params, pool, key, **given), candidates, budget)

    return make_strategy(name, budget, hparams, select, score, inputs)

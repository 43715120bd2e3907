"""Strategies built over other strategies: stochastic batch acquisition and partitioning."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal.model import Model
from jaxal.pool import Pool
from jaxal.strategies._base import Strategy, candidates_for, make_strategy, no_score
from jaxal.strategies._catalog import BASE, lookup


def stochastic(
    base: Strategy | Model | None,
    budget: int | None = None,
    *,
    mode: str = "power",
    beta: float = 1.0,
    strategy: str = "bald",
    **base_hparams: Any,
) -> Strategy:
    """Stochastic batch acquisition (Kirsch et al. 2023) over any strategy with a score.

    Draws ``budget`` unlabeled points without replacement, each draw proportional to a
    transformed score (``jaxal.selectors.log_weights``: ``"power"`` s^beta, ``"softmax"``
    exp(beta s), ``"softrank"`` rank^-beta) instead of the deterministic top-k, which
    diversifies large batches at no cost. As beta grows it tends to the top-k.

    Either wrap a strategy, ``stochastic(jaxal.strategies.bald(model, 100), mode="power")``,
    or name one, ``stochastic(model, 100, strategy="bald", mc_samples=10)`` (the registry
    form used by ``jaxal.select("stochastic", ...)``).

    Args:
        base: a scored :class:`Strategy`, or the model to build ``strategy`` with.
        budget: points per selection; default the wrapped strategy's budget.
        mode: ``"power"`` (non-negative scores: BALD, entropy), ``"softmax"``,
            ``"softrank"``.
        beta: inverse temperature > 0.
        strategy, base_hparams: the strategy to build when ``base`` is a model (a registry
            name other than the wrappers themselves).

    Returns:
        A :class:`Strategy` named ``"stochastic"`` whose ``score`` is the wrapped score
        and whose ``inputs`` are the wrapped strategy's (passed on to its ``score``).

    Raises:
        TypeError: at trace time, if the wrapped strategy has no per-point score.
    """
    inner = _inner_strategy(base, budget, strategy, base_hparams)
    budget = inner.budget if budget is None else _checks.positive_int(budget, "budget")
    _checks.one_of(mode, selectors.STOCHASTIC_MODES, "mode")
    beta = _checks.positive_float(beta, "beta")

    def select(params, pool, key, **inputs):
        candidates = candidates_for(pool, budget)
        score_key, draw_key = jax.random.split(key)
        scores = inner.score(params, pool, score_key, **inputs)
        if scores is None:
            raise TypeError(f"stochastic needs a strategy with a score; {inner.name!r} has none")
        if mode == "power":
            _require_non_negative(scores, candidates, inner.name)
        return selectors.stochastic_top_k(
            scores, candidates, budget, draw_key, mode=mode, beta=beta
        )

    hparams = {**inner.hparams, "mode": mode, "beta": beta, "strategy": inner.name, "base": inner}
    return make_strategy("stochastic", budget, hparams, select, inner.score, inner.inputs)


def partition(
    base: Model | None,
    budget: int,
    *,
    strategy: str = "badge",
    parts: int = 2,
    shuffle: bool = False,
    **base_hparams: Any,
) -> Strategy:
    """DISTIL's PartitionStrategy: split the pool, split the budget, select in each part.

    Part i holds positions [s_{i-1}, s_i) with s_i = ceil(N (i + 1) / parts) (of the pool,
    or of a permutation of it drawn from the key when ``shuffle``: DISTIL's parts are
    contiguous, so a pool sorted by class gives class-biased parts). Part i's budget is
    c_i - c_{i-1} with c_i = ceil(budget s_i / N), so the budgets add up to ``budget``;
    they follow the part sizes, not the unlabeled counts, so every part needs that many
    unlabeled points (a part whose budget rounds to 0 is skipped). Use it to bound the
    memory and time of strategies that are quadratic in N: P parts cost 1 / P of the
    whole pool's N^2. When every part has the same size and budget (P divides N and the
    budget), the parts run as one ``lax.map`` (one compiled program for any P); otherwise
    each part is traced on its own.

    Args:
        base: the model, passed to the wrapped factory.
        budget: points per selection, >= parts.
        strategy: the registry name of the wrapped strategy (not a wrapper).
        parts: the number of parts, 1 <= parts <= budget.
        shuffle: draw a random partition from the key instead of contiguous ranges.
        base_hparams: the wrapped strategy's hyperparameters.

    Returns:
        A :class:`Strategy` named ``"partition"``; its indices are part by part, each in
        the wrapped strategy's order. Its ``inputs`` are the wrapped strategy's, passed on
        to every part (e.g. GLISTER's validation set).
    """
    budget = _checks.positive_int(budget, "budget")
    parts = _checks.positive_int(parts, "parts")
    if parts > budget:
        raise ValueError(f"parts={parts} must not exceed budget={budget}")
    factory = lookup(strategy, BASE)
    inputs = factory(base, 1, **base_hparams).inputs  # fails fast on bad hyperparameters

    def select(params, pool, key, **given):
        candidates_for(pool, budget)
        n = pool.size
        if parts > n:
            raise ValueError(f"parts={parts} must not exceed the pool size ({n})")
        order_key, select_key = jax.random.split(key)
        order = jax.random.permutation(order_key, n) if shuffle else jnp.arange(n)
        bounds = [math.ceil(n * (i + 1) / parts) for i in range(parts)]
        budgets = _split(budget, bounds)
        starts = [0, *bounds[:-1]]

        def select_part(i, positions, part_budget):
            sub_pool = Pool(
                pool.x[positions], pool.y[positions], pool.labeled[positions], pool.offset
            )
            sub = factory(base, part_budget, **base_hparams)
            local = sub.select(params, sub_pool, jax.random.fold_in(select_key, i), **given)
            return jnp.where(local >= 0, positions[jnp.maximum(local, 0)], -1)

        sizes = {stop - start for start, stop in zip(starts, bounds, strict=True)}
        if len(sizes) == 1 and len(set(budgets)) == 1:
            # Parts of one shape and budget: one program for all of them, in a lax.map.
            positions = order.astype(jnp.int32).reshape(parts, -1)
            picked = jax.lax.map(
                lambda part: select_part(part[0], part[1], budgets[0]),
                (jnp.arange(parts), positions),
            )
            return picked.reshape(-1)
        picked = [
            select_part(i, order[start:stop].astype(jnp.int32), part_budget)
            for i, (start, stop, part_budget) in enumerate(
                zip(starts, bounds, budgets, strict=True)
            )
            if part_budget > 0
        ]
        return jnp.concatenate(picked)

    hparams = {"strategy": strategy, "parts": parts, "shuffle": shuffle, **base_hparams}
    return make_strategy("partition", budget, hparams, select, no_score, inputs)


def _split(budget: int, bounds: list[int]) -> list[int]:
    """Per-part budgets c_i - c_{i-1}, c_i = ceil(budget * s_i / N), s_i = ``bounds``."""
    cumulative = [math.ceil(budget * stop / bounds[-1]) for stop in bounds]
    return [c - (cumulative[i - 1] if i else 0) for i, c in enumerate(cumulative)]


def _inner_strategy(base, budget, strategy, base_hparams) -> Strategy:
    if isinstance(base, Strategy):
        if base_hparams:
            raise ValueError(
                f"hyperparameters {sorted(base_hparams)} apply only when base is a model"
            )
        return base
    if budget is None:
        raise ValueError("budget is required when base is a model")
    return lookup(strategy, BASE)(base, budget, **base_hparams)


def _require_non_negative(scores: jax.Array, candidates: jax.Array, name: str) -> None:
    _checks.require(
        jnp.where(candidates, scores, 0.0),
        lambda xp, s: xp.all(s >= 0),
        f"mode='power' needs non-negative scores; {name!r} gives negative ones "
        "(use mode='softmax' or 'softrank')",
    )

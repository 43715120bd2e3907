"""One jitted greedy maximizer for every submodular function.

A set function over a ground set of N elements is a :class:`SubmodularFn`: four pure
functions over a small state pytree (the optax shape). :func:`submodular_greedy` runs one
``lax.fori_loop`` over the budget for any of them, with a candidate mask and three
optimizers:

* ``"naive"``: the exact greedy; every step evaluates the gain of all N elements.
* ``"lazy"``: the same picks (for a submodular function, ties included) with fewer
  evaluations (Minoux's accelerated greedy with static shapes). Earlier gains are upper
  bounds on later ones (diminishing returns); each step re-evaluates the ``lazy_batch``
  stale elements with the highest bounds, in a ``lax.while_loop``, until the highest bound
  is a fresh gain (that element is the exact greedy pick), and after ``lazy_rounds``
  unsettled rounds falls back to a full pass (``lax.cond``; under ``vmap`` both branches
  run).
* ``"stochastic"``: stochastic greedy (Mirzasoleiman et al. 2015, "Lazier than lazy
  greedy"): each step draws a uniform random sample of the remaining candidates and picks
  its best; with a sample of (N / budget) log(1 / epsilon) elements the result is within
  1 - 1/e - epsilon of the optimum in expectation for monotone functions. For a
  submodular function the sample is evaluated lazily, in decreasing order of the
  elements' last gains (elements never evaluated first: ``sample_chunk`` at a time; then
  ``lazy_batch`` elements with stale bounds at a time), until no stale bound left can
  reach the best fresh gain: the same pick as evaluating the whole sample, for a fraction
  of the cost once most elements carry a bound.

Ties go to the lowest index (submodlib's NaiveGreedy keeps the highest; apricot keeps the
lowest). NaN gains rank as the lowest finite value. Slots that no candidate can fill are
-1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal.selectors._selection import GreedyInfo, Selection
from jaxal.selectors._top_k import rank_keys

OPTIMIZERS = ("naive", "lazy", "stochastic")

State = Any

Insert = Callable[[State, jax.Array], State]
"""``insert(state, indices int32 [R]) -> state``: the state after adding every index at
once (see ``combinators.conditional_gain``)."""

_BOUND_SLACK = 1e-6
"""Relative band below the best fresh gain within which stochastic greedy still evaluates
an element with a stale bound (float32 rounding of the same column's gain)."""


class SubmodularFn(NamedTuple):
    """A set function over N elements as pure functions of a state pytree.

    The state stands for the current set S (initially empty). Build one with a factory
    such as :func:`facility_location` (inside the jitted function, so that its arrays are
    arguments, not constants); pass it to :func:`submodular_greedy`.

    Attributes:
        name: the function's name, e.g. ``"facility_location"``.
        size: N, the number of elements (the ground set); indices are 0 .. N - 1.
        hparams: the hyperparameters, by name.
        init: ``init(capacity) -> state`` for S = {}; ``capacity`` (a Python int) bounds
            the number of ``update`` calls (log-determinant stores one row per pick).
        gains: ``gains(state) -> float32 [N]``: f(S + e) - f(S) for every element e
            (values at members of S are meaningless).
        gains_at: ``gains_at(state, indices int32 [R]) -> float32 [R]``: the same for a
            subset only (lazy and stochastic greedy).
        update: ``update(state, index) -> state`` for S + {index} (an int32 scalar, not
            in S).
        submodular: True when gains never grow as S grows (for any data the function
            accepts), which lazy greedy needs; disparity-sum and -min are not.
    """

    name: str
    size: int
    hparams: Mapping[str, Any]
    init: Callable[[int], State]
    gains: Callable[[State], jax.Array]
    gains_at: Callable[[State, jax.Array], jax.Array]
    update: Callable[[State, jax.Array], State]
    submodular: bool = True


def submodular_greedy(
    fn: SubmodularFn,
    candidates: jax.Array,
    budget: int,
    key: jax.Array | None = None,
    *,
    optimizer: str = "naive",
    epsilon: float = 0.1,
    lazy_batch: int = 64,
    lazy_rounds: int = 16,
    sample_size: int | None = None,
    sample_chunk: int | None = None,
) -> Selection:
    """Greedy maximization of ``fn`` over the candidates: ``budget`` picks, one loop.

    Each step adds the candidate with the largest marginal gain f(S + e) - f(S) (lowest
    index on ties), even when that gain is negative: the greedy never stops early.

    Cost per step, with G the cost of one element's gain (e.g. O(M) for a dense facility
    location, O(M * F) computed on the fly) and U that of ``fn.update``:

    * naive: N * G + U;
    * lazy: r * (``lazy_batch`` * G + O(N log lazy_batch)) + U for the r <=
      ``lazy_rounds`` rounds a step needs (often 1), plus N * G for a step that does not
      settle, plus one full pass before the loop;
    * stochastic: r * G + O(N log R) + U with R = ``sample_size`` and r <= R the sampled
      elements it evaluates (whole slices: ``sample_chunk`` elements while never-evaluated
      ones remain, then ``lazy_batch``; r = R for a function that is not submodular).

    Memory: the function's state plus O(N) (plus O(N) bounds for lazy and stochastic).

    Args:
        fn: the set function.
        candidates: bool [N], the elements that may be picked.
        budget: Python int, 1 <= budget <= N.
        key: PRNG key; required by ``"stochastic"`` (step t uses ``fold_in(key, t)``),
            ignored otherwise.
        optimizer: ``"naive"``, ``"lazy"`` or ``"stochastic"``. ``"lazy"`` needs
            ``fn.submodular``: for other functions stale gains are not upper bounds
            (submodlib's LazyGreedy then degenerates to index order).
        epsilon: stochastic greedy's epsilon in (0, 1).
        lazy_batch: elements re-evaluated per lazy round (clipped to N); under
            ``"stochastic"``, sampled elements with a stale bound re-evaluated at once
            (clipped to the sample size).
        lazy_rounds: lazy rounds per step before a full pass.
        sample_size: elements evaluated per stochastic step; default the paper's
            ceil(C / budget * ln(1 / epsilon)) for the C candidates (at most C; as
            submodlib, which rounds down): a static buffer of ceil(N / budget *
            ln(1 / epsilon)) elements holds each step's draw, of which that many are used.
        sample_chunk: never-evaluated sampled elements evaluated at once by
            ``"stochastic"`` (clipped to the sample size); default a third of the sample,
            rounded up. Larger slices use the CPU better, smaller ones skip more.

    Returns:
        ``Selection(indices, GreedyInfo(gains))``: indices int32 [budget] in pick order,
        distinct candidates, -1 once none is left; gains float32 [budget], the gain of each
        pick (0 for -1 slots).
    """
    if not isinstance(fn, SubmodularFn):
        raise TypeError(f"fn must be a SubmodularFn, got {type(fn).__name__}")
    budget = _checks.positive_int(budget, "budget")
    if budget > fn.size:
        raise ValueError(f"budget must be in [1, {fn.size}] (the ground-set size), got {budget}")
    candidates = jnp.asarray(candidates)
    if candidates.shape != (fn.size,) or candidates.dtype != jnp.bool_:
        raise ValueError(
            f"candidates must be bool [{fn.size}] (the ground-set size), got "
            f"{candidates.dtype} {candidates.shape}"
        )
    plan = _plan(
        fn, candidates, budget, key, optimizer, epsilon, lazy_batch, lazy_rounds,
        sample_size, sample_chunk,
    )  # fmt: skip
    choose = {"naive": _choose_naive, "lazy": _choose_lazy, "stochastic": _choose_stochastic}[
        optimizer
    ]

    def step(t, carry):
        state, available, bounds, picked, gains = carry
        any_left = jnp.any(available)
        index, gain, bounds = choose(fn, plan, t, state, available, bounds)
        index = jnp.where(any_left, index, -1).astype(jnp.int32)
        safe = jnp.maximum(index, 0)
        state = jax.lax.cond(any_left, lambda s: fn.update(s, safe), lambda s: s, state)
        available = available.at[jnp.where(any_left, index, fn.size)].set(False, mode="drop")
        picked = picked.at[t].set(index)
        gains = gains.at[t].set(jnp.where(any_left, gain, 0.0))
        return state, available, bounds, picked, gains

    state = fn.init(budget)
    initial = (
        state,
        candidates,
        _initial_bounds(fn, optimizer, state, candidates),
        jnp.full((budget,), -1, jnp.int32),
        jnp.zeros((budget,), jnp.float32),
    )
    _, _, _, picked, gains = jax.lax.fori_loop(0, budget, step, initial)
    return Selection(picked, GreedyInfo(gains))


class _Plan(NamedTuple):
    """The settings of one greedy run, checked and clipped to the ground set.

    Attributes:
        lazy_batch: stale elements re-evaluated per lazy round.
        lazy_rounds: lazy rounds per step before a full pass.
        stale_chunk: stochastic greedy's slice of elements with a stale bound.
        sample_size: the static buffer of a stochastic step's sample (None otherwise).
        sample_used: int32 scalar, how much of that buffer a step uses.
        sample_chunk: stochastic greedy's slice of never-evaluated elements.
        key: stochastic greedy's PRNG key.
    """

    lazy_batch: int
    lazy_rounds: int
    stale_chunk: int
    sample_size: int | None = None
    sample_used: jax.Array | None = None
    sample_chunk: int | None = None
    key: jax.Array | None = None


def _plan(
    fn: SubmodularFn,
    candidates: jax.Array,
    budget: int,
    key: jax.Array | None,
    optimizer: str,
    epsilon: float,
    lazy_batch: int,
    lazy_rounds: int,
    sample_size: int | None,
    sample_chunk: int | None,
) -> _Plan:
    n = fn.size
    _checks.one_of(optimizer, OPTIMIZERS, "optimizer")
    if optimizer == "lazy" and not fn.submodular:
        raise ValueError(
            f"optimizer='lazy' needs a submodular function; {fn.name} is not "
            "(use 'naive' or 'stochastic')"
        )
    lazy_batch = min(_checks.positive_int(lazy_batch, "lazy_batch"), n)
    lazy_rounds = _checks.positive_int(lazy_rounds, "lazy_rounds")
    if optimizer != "stochastic":
        return _Plan(lazy_batch, lazy_rounds, lazy_batch)
    if key is None:
        raise ValueError("optimizer='stochastic' needs a PRNG key")
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    per_candidate = math.log(1.0 / epsilon) / budget  # the paper's n / k log(1 / eps)
    if sample_size is None:  # a static buffer; the candidates' share is used
        sample_size = min(math.ceil(n * per_candidate), n)
        sample_used = jnp.ceil(jnp.sum(candidates) * per_candidate).astype(jnp.int32)
        sample_used = jnp.clip(sample_used, 1, sample_size)
    else:
        sample_size = min(_checks.positive_int(sample_size, "sample_size"), n)
        sample_used = jnp.int32(sample_size)
    if sample_chunk is None:
        sample_chunk = -(-sample_size // 3)
    sample_chunk = min(_checks.positive_int(sample_chunk, "sample_chunk"), sample_size)
    stale_chunk = min(lazy_batch, sample_size)
    return _Plan(lazy_batch, lazy_rounds, stale_chunk, sample_size, sample_used, sample_chunk, key)


def _initial_bounds(
    fn: SubmodularFn, optimizer: str, state: State, candidates: jax.Array
) -> jax.Array:
    """float32 [N]: upper bounds on the first gains. Lazy: the exact gains at S = {};
    stochastic: +inf (no bound before an element's first evaluation); naive: unused."""
    if optimizer == "lazy":
        return _rank(fn.gains(state).astype(jnp.float32), candidates)
    if optimizer == "stochastic":
        return jnp.full((fn.size,), jnp.inf, jnp.float32)
    return jnp.zeros((fn.size,), jnp.float32)


Choice = tuple[jax.Array, jax.Array, jax.Array]
"""(index int32 scalar, its raw gain float32 scalar, the bounds float32 [N] after the step)."""


def _full_pass(fn: SubmodularFn, state: State, available: jax.Array) -> Choice:
    """Every gain evaluated: the argmax (lowest index on ties), its gain, the ranked gains."""
    raw = fn.gains(state).astype(jnp.float32)
    ranked = _rank(raw, available)
    index = jnp.argmax(ranked).astype(jnp.int32)  # first maximum = lowest index
    return index, raw[index], ranked


def _choose_naive(fn, plan, t, state, available, bounds) -> Choice:
    """The exact greedy step: one full pass."""
    del plan, t
    index, gain, _ = _full_pass(fn, state, available)
    return index, gain, bounds


def _choose_lazy(fn, plan, t, state, available, bounds) -> Choice:
    """Minoux's accelerated step: re-evaluate the stale elements with the highest bounds
    until the top bound is fresh, or fall back to a full pass."""
    del t
    n = fn.size

    def top_of(bounds):  # first maximum = lowest index among the highest bounds
        return jnp.argmax(jnp.where(available, bounds, -jnp.inf)).astype(jnp.int32)

    def unsettled(carry):
        bounds, _, fresh, rounds = carry
        stale = available & ~fresh
        return ~fresh[top_of(bounds)] & jnp.any(stale) & (rounds < plan.lazy_rounds)

    def refresh(carry):
        bounds, raw, fresh, rounds = carry
        stale = jnp.where(available & ~fresh, bounds, -jnp.inf)
        _, indices = jax.lax.top_k(stale, plan.lazy_batch)
        values = fn.gains_at(state, indices).astype(jnp.float32)
        return (
            bounds.at[indices].set(_rank(values, available[indices])),
            raw.at[indices].set(values),
            fresh.at[indices].set(True),
            rounds + 1,
        )

    initial = (bounds, jnp.zeros((n,), jnp.float32), jnp.zeros((n,), bool), 0)
    bounds, raw, fresh, _ = jax.lax.while_loop(unsettled, refresh, initial)
    top = top_of(bounds)

    # Fresh bounds are exact gains, stale ones upper bounds (diminishing returns): a
    # fresh top is the exact greedy pick, ties included.
    def take(_):
        return top, raw[top], bounds

    def fall_back(_):
        index, gain, ranked = _full_pass(fn, state, available)
        return index, gain, jnp.where(available, ranked, bounds)

    return jax.lax.cond(fresh[top] | ~jnp.any(available), take, fall_back, None)


def _choose_stochastic(fn, plan, t, state, available, bounds) -> Choice:
    """Stochastic greedy's step: the best of a uniform sample of the available elements,
    evaluated lazily in decreasing order of their bounds."""
    n = fn.size
    sample_size, sample_used = plan.sample_size, plan.sample_used
    assert plan.key is not None and sample_size is not None and plan.sample_chunk is not None
    uniforms = jax.random.uniform(jax.random.fold_in(plan.key, t), (n,))
    _, sample = jax.lax.top_k(jnp.where(available, uniforms, -1.0), sample_size)
    # The first sample_used in uniform order are the step's sample (the rest of the
    # buffer last); highest bound first (never evaluated: +inf), then lowest index.
    member = jnp.arange(sample_size) < sample_used
    order = jnp.lexsort((sample, jnp.where(member, -bounds[sample], jnp.inf)))
    sample, member = sample[order].astype(jnp.int32), member[order]
    sorted_bounds = jnp.where(member, bounds[sample], -jnp.inf)
    never_evaluated = jnp.sum(sorted_bounds == jnp.inf)

    def unsettled(carry):
        position, best_rank, best_index, _, _ = carry
        at = jnp.minimum(position, sample_size - 1)
        next_bound, next_index = sorted_bounds[at], sample[at]
        # A stale bound may sit a rounding error below the gain it bounds: within
        # that band the element is evaluated, as is an exact tie at a lower index.
        reach = best_rank - _BOUND_SLACK * jnp.abs(best_rank)
        can_win = (next_bound > reach) | ((next_bound == reach) & (next_index < best_index))
        return (position < sample_size) & can_win

    def evaluate_slice(size, carry):
        position, best_rank, best_index, best_raw, bounds = carry
        # The last slice ends at the sample's end, overlapping the one before.
        start = jnp.maximum(jnp.minimum(position, sample_used - size), 0)
        indices = jax.lax.dynamic_slice_in_dim(sample, start, size)
        raw = fn.gains_at(state, indices).astype(jnp.float32)
        ranked = _rank(raw, available[indices])
        sampled = jnp.where(jax.lax.dynamic_slice_in_dim(member, start, size), ranked, -jnp.inf)
        top = jnp.max(sampled)
        at = jnp.argmin(jnp.where(sampled == top, indices, n))
        index = indices[at]
        better = (top > best_rank) | ((top == best_rank) & (index < best_index))
        if fn.submodular:  # fresh gains bound every later one
            bounds = bounds.at[indices].set(ranked)
        return (
            start + size,
            jnp.where(better, top, best_rank),
            jnp.where(better, index, best_index),
            jnp.where(better, raw[at], best_raw),
            bounds,
        )

    def evaluate(carry):
        if plan.sample_chunk == plan.stale_chunk:
            return evaluate_slice(plan.sample_chunk, carry)
        return jax.lax.cond(
            carry[0] < never_evaluated,
            functools.partial(evaluate_slice, plan.sample_chunk),
            functools.partial(evaluate_slice, plan.stale_chunk),
            carry,
        )

    initial = (0, jnp.float32(-jnp.inf), jnp.int32(n), jnp.float32(0.0), bounds)
    _, _, index, gain, bounds = jax.lax.while_loop(unsettled, evaluate, initial)
    return index, gain, bounds


def _rank(gains: jax.Array, available: jax.Array) -> jax.Array:
    """Gains as sortable keys: NaN and -inf -> the lowest finite float; -inf if unavailable."""
    return rank_keys(gains, available)

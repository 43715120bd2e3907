"""A strategy called outside jit compiles once per input shape, keeps its value checks, and
gives the jitted picks; ``jaxal.select`` reuses its strategy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
import jaxal.train
from jaxal import _checks
from jaxal.strategies._base import candidates_for, make_strategy, no_score


def counting_strategy(budget, traces):
    """top-``budget`` of the first feature, with a value check inside a vmap; ``traces``
    counts how often ``select`` is traced."""

    def select(params, pool, key):
        del params, key
        traces.append(1)
        candidates = candidates_for(pool, budget)
        jax.vmap(lambda row: _checks.require(row, lambda xp, r: xp.all(r < 100), "row >= 100"))(
            pool.x
        )  # a check inside a nested trace
        return jaxal.selectors.top_k(pool.x[:, 0], candidates, budget)

    return make_strategy("counting", budget, {}, select, no_score)


def test_second_call_compiles_nothing_and_equals_jit():
    traces: list[int] = []
    strategy = counting_strategy(3, traces)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(10, 2)), jnp.float32)
    pool = jaxal.Pool.create(x, labeled=jnp.asarray([0, 1]))
    first = strategy.select(None, pool, jax.random.key(0))
    second = strategy.select(None, pool, jax.random.key(1))
    assert len(traces) == 1
    jitted = jax.jit(strategy.select)(None, pool, jax.random.key(0))  # the user's jit
    assert len(traces) == 2
    np.testing.assert_array_equal(np.asarray(first), np.asarray(jitted))
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    want = np.argsort(-np.where(np.arange(10) >= 2, np.asarray(x[:, 0]), -np.inf))[:3]
    np.testing.assert_array_equal(np.asarray(first), want)
    # A new shape compiles once more.
    strategy.select(None, jaxal.Pool.create(x[:8], labeled=jnp.asarray([0])), jax.random.key(0))
    assert len(traces) == 3


def test_value_checks_still_raise_outside_jit_and_not_under_jit():
    traces: list[int] = []
    strategy = counting_strategy(3, traces)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 2)), jnp.float32)
    few = jaxal.Pool.create(x, labeled=jnp.arange(4))
    with pytest.raises(
        ValueError, match=r"budget=3 is larger than the number of unlabeled .*\(2\)"
    ):
        strategy.select(None, few, jax.random.key(0))
    picks = np.asarray(jax.jit(strategy.select)(None, few, jax.random.key(0)))
    assert sorted(picks.tolist()) == [-1, 4, 5]
    bad = jaxal.Pool.create(x.at[5, 1].set(1000.0), labeled=jnp.asarray([0]))
    with pytest.raises(ValueError, match="row >= 100"):  # the check inside a vmap
        strategy.select(None, bad, jax.random.key(0))
    # The same compiled program serves a good pool again after a failed check.
    good = jaxal.Pool.create(x, labeled=jnp.asarray([0]))
    assert len(np.asarray(strategy.select(None, good, jax.random.key(0)))) == 3


def test_registered_strategies_raise_their_clear_errors():
    module = jaxal.train.MLP(num_classes=3, hidden=8)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(12, 4)), jnp.float32)
    params = module.init(jax.random.key(0), x[:2], train=False)
    model = jaxal.from_flax(module)
    pool = jaxal.Pool.create(x, labeled=jnp.arange(10))
    for name in ("entropy", "coreset", "badge"):
        with pytest.raises(ValueError, match="larger than the number of unlabeled points"):
            jaxal.strategies.get(name)(model, 3).select(params, pool, jax.random.key(0))


def test_one_line_select_reuses_its_strategy(monkeypatch):
    built: list[str] = []
    real_get = jaxal.strategies.get

    def counting_get(name):
        factory = real_get(name)

        def build(*args, **kwargs):
            built.append(name)
            return factory(*args, **kwargs)

        return build

    monkeypatch.setattr("jaxal._api.get", counting_get)
    jaxal._api._recent.cache_clear()
    x = jnp.asarray(np.random.default_rng(3).normal(size=(15, 3)), jnp.float32)
    pool = jaxal.Pool.create(x, labeled=jnp.asarray([0]))
    first = jaxal.select("random", None, None, pool, jax.random.key(0), 4)
    again = jaxal.select("random", None, None, pool, jax.random.key(0), 4)
    assert built == ["random"]
    np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
    jaxal.select("random", None, None, pool, jax.random.key(0), 5)
    assert built == ["random", "random"]
    jaxal._api._recent.cache_clear()

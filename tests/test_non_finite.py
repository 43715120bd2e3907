"""Non-finite values under jit: never preferred over finite ones, -1 where only they remain.

Outside jit a NaN parameter or input raises a ValueError; under jit nothing can raise, so
every strategy keeps the contract another way: a point whose score or embedding is NaN or
infinite is never picked while a finite point is left, and slots that only such points
could fill are -1 (never a repeated or labeled index).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from tests.test_extreme_models import SWEEP, N, _base, _inputs, sweep_strategy

BUDGET = 4
NAN_ROW = 9
# Strategies that never read the model's outputs: NaN parameters do not concern them.
MODEL_FREE = {"random"}


def _pool(x):
    """A pool with the first 5 points labeled, built without Pool.create's finite check
    (as a pool assembled under jit would be)."""
    labeled = jnp.arange(N) < 5
    return jaxal.Pool(
        x=x, y=jnp.where(labeled, 0, -1).astype(jnp.int32), labeled=labeled, offset=jnp.int32(0)
    )


@pytest.mark.parametrize("name", sorted(SWEEP))
def test_non_finite_under_jit(name):
    _, params, x = _base()
    strategy, jitted = sweep_strategy(name, BUDGET)  # batch_size=10, SWEEP[name]
    inputs = _inputs(strategy, x.dtype)
    select = jitted.select
    key = jax.random.key(2)

    nan_params = jax.tree.map(lambda w: jnp.full_like(w, jnp.nan), params)
    picked = np.asarray(select(nan_params, _pool(x), key, **inputs))
    if name in MODEL_FREE:
        assert len(set(picked.tolist())) == BUDGET and picked.min() >= 5
    else:
        np.testing.assert_array_equal(picked, -1)

    nan_row = _pool(x.at[NAN_ROW].set(jnp.nan))
    picked = np.asarray(select(params, nan_row, key, **inputs))
    assert len(set(picked.tolist())) == BUDGET, picked
    assert picked.min() >= 5 and picked.max() < N, picked
    if name not in MODEL_FREE:
        assert NAN_ROW not in picked.tolist()


@pytest.mark.parametrize("name", sorted(set(SWEEP) - MODEL_FREE))
def test_non_finite_outside_jit_raises(name):
    _, params, x = _base()
    strategy, _ = sweep_strategy(name, BUDGET)
    nan_params = jax.tree.map(lambda w: jnp.full_like(w, jnp.nan), params)
    with pytest.raises(ValueError, match="finite"):
        strategy.select(nan_params, _pool(x), jax.random.key(2), **_inputs(strategy, x.dtype))


def test_top_k_never_picks_a_non_finite_score():
    scores = jnp.array([jnp.nan, 3.0, jnp.inf, -jnp.inf, 1.0, 2.0])
    candidates = jnp.array([True, True, True, True, True, False])
    picked = np.asarray(jaxal.selectors.top_k(scores, candidates, 4))
    np.testing.assert_array_equal(picked, [1, 4, -1, -1])


@pytest.mark.parametrize("mode", ["power", "softmax", "softrank"])
def test_stochastic_top_k_never_draws_a_non_finite_score(mode):
    scores = jnp.array([jnp.nan, 0.5, jnp.inf, 0.0, 1.0, -jnp.inf])
    picked = np.asarray(
        jaxal.selectors.stochastic_top_k(scores, jnp.ones(6, bool), 4, jax.random.key(0), mode=mode)
    )
    # Finite scores 0.5, 0.0 and 1.0 are drawn (power: weight 0 last), then -1.
    assert sorted(picked[:3].tolist()) == [1, 3, 4] and picked[3] == -1
    if mode == "power":
        assert picked[2] == 3

"""from_flax: the states an nnx module's apply accepts, and clear errors for wrong params."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxal


class _Net(nnx.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear; returns (logits, hidden)."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(5, 8, rngs=rngs)
        self.norm = nnx.BatchNorm(8, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        hidden = nnx.relu(self.norm(self.dense(x)))
        return self.out(self.dropout(hidden)), hidden


def _net(seed=0):
    net = _Net(nnx.Rngs(seed, dropout=seed + 1))
    # Running statistics far from (0, 1), so that a pass that ignored them would differ.
    net.norm.mean[...] = net.norm.mean[...] - 3.0
    net.norm.var[...] = net.norm.var[...] * 5.0
    return net


@pytest.fixture
def x():
    return jax.random.normal(jax.random.key(3), (6, 5))


def _param_state(net):
    _, params, _ = nnx.split(net, nnx.Param, ...)
    return params


def test_param_state_alone_gives_the_full_state_eval_pass(x):
    net = _net()
    model = jaxal.from_flax(net)
    full = model.apply(nnx.state(net), x, None)
    for params in (_param_state(net), nnx.to_pure_dict(_param_state(net))):
        got = model.apply(params, x, None)
        for a, b in zip(got, full, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    pure_full = model.apply(nnx.to_pure_dict(nnx.state(net)), x, None)
    np.testing.assert_allclose(pure_full[0], full[0], rtol=1e-6)


def test_param_state_alone_is_the_one_used(x):
    """New parameter values (as after training) are read from params, not the module."""
    net = _net()
    model = jaxal.from_flax(net)
    trained = jax.tree.map(lambda w: 1.5 * w, _param_state(net))
    full = nnx.state(net)
    full = nnx.merge_state(full, trained)
    got = model.apply(trained, x, None)[0]
    np.testing.assert_allclose(got, model.apply(full, x, None)[0], rtol=1e-6)
    assert not np.allclose(got, model.apply(_param_state(net), x, None)[0])


def test_mc_dropout_pass_with_param_state_alone(x):
    net = _net()
    model = jaxal.from_flax(net)
    params = _param_state(net)
    apply = jax.jit(model.apply)
    first = apply(params, x, jax.random.key(1))[0]
    np.testing.assert_allclose(first, model.apply(nnx.state(net), x, jax.random.key(1))[0])
    np.testing.assert_allclose(first, apply(params, x, jax.random.key(1))[0])
    assert not np.allclose(first, apply(params, x, jax.random.key(2))[0])
    assert not np.allclose(first, model.apply(params, x, None)[0])
    # The module's own state is untouched by the calls.
    np.testing.assert_allclose(net.norm.mean[...], _net().norm.mean[...])


def test_strategy_runs_on_param_state_alone():
    net = _net()
    model = jaxal.from_flax(net)
    pool = jaxal.Pool.create(jax.random.normal(jax.random.key(4), (30, 5)), labeled=jnp.arange(5))
    strategy = jaxal.strategies.bald(model, 4)
    picked = np.asarray(jax.jit(strategy.select)(_param_state(net), pool, jax.random.key(5)))
    same = np.asarray(jax.jit(strategy.select)(nnx.state(net), pool, jax.random.key(5)))
    np.testing.assert_array_equal(picked, same)
    assert len(set(picked.tolist())) == 4 and picked.min() >= 5


@pytest.mark.parametrize(
    "wrong",
    [
        lambda net: nnx.split(net, nnx.BatchStat, ...)[1],
        lambda net: nnx.state(net)["dense"],
        lambda net: nnx.state(nnx.Linear(5, 3, rngs=nnx.Rngs(0))),
        lambda net: {"params": nnx.to_pure_dict(_param_state(net))},
    ],
)
def test_wrong_state_raises_clearly(wrong, x):
    net = _net()
    model = jaxal.from_flax(net)
    match = r"params must be nnx.state\(module\) or the nnx.Param state from nnx.split"
    with pytest.raises(ValueError, match=match) as info:
        model.apply(wrong(net), x, None)
    assert "leaves" in str(info.value) and "top-level keys" in str(info.value)
    with pytest.raises(ValueError, match=match):
        jax.jit(model.apply)(wrong(net), x, jax.random.key(0))


def test_nnx_params_none_raises_clearly(x):
    model = jaxal.from_flax(_net())
    with pytest.raises(ValueError, match=r"params is None: pass nnx.state\(module\)"):
        model.apply(None, x, None)


class _LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        hidden = nn.relu(nn.Dense(8)(x))
        return nn.Dense(3)(nn.Dropout(0.5, deterministic=not train)(hidden)), hidden


@pytest.mark.parametrize("rng", [None, jax.random.key(0)])
def test_linen_params_none_raises_clearly(rng, x):
    model = jaxal.from_flax(_LinenNet())
    match = r"params is None: pass the module's variables from module.init\(...\)"
    with pytest.raises(ValueError, match=match):
        model.apply(None, x, rng)

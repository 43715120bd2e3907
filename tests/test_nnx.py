"""Flax nnx end to end: jaxal.train.trainer trains an nnx module, the strategies select
from the trained state through jaxal.from_flax, eagerly and under jit alike."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxal
from jaxal import train
from tests.conftest import BLOB_CLASSES as C
from tests.conftest import BLOB_FEATURES as D
from tests.conftest import BLOB_POINTS as N

LABELED = 12
BUDGET = 6


class _Net(nnx.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear; returns (logits [B, C], hidden)."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(D, 32, rngs=rngs)
        self.norm = nnx.BatchNorm(32, rngs=rngs)
        self.dropout = nnx.Dropout(0.3, rngs=rngs)
        self.out = nnx.Linear(32, C, rngs=rngs)

    def __call__(self, x):
        hidden = nnx.relu(self.norm(self.dense(x)))
        return self.out(self.dropout(hidden)), hidden


class _NoRngsDropout(nnx.Module):
    """A Dropout built without rngs (the caller would pass them): the trainer keys it."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(D, 8, rngs=rngs)
        self.dropout = nnx.Dropout(0.5)
        self.out = nnx.Linear(8, C, rngs=rngs)

    def __call__(self, x):
        hidden = nnx.relu(self.dense(x))
        return self.out(self.dropout(hidden)), hidden


def _assert_trees_equal(a, b):
    """Equal leaves, PRNG keys compared by their key data."""

    def same(u, v):
        if jnp.issubdtype(u.dtype, jax.dtypes.prng_key):
            u, v = jax.random.key_data(u), jax.random.key_data(v)
        np.testing.assert_array_equal(u, v)

    jax.tree.map(same, a, b)


@pytest.fixture(scope="module")
def net():
    return _Net(nnx.Rngs(0, dropout=1))


@pytest.fixture(scope="module")
def nnx_trainer(net):
    return train.trainer(net, steps=60, batch_size=16)


@pytest.fixture(scope="module")
def mask():
    return jnp.zeros(N, bool).at[:LABELED].set(True)


@pytest.fixture(scope="module")
def trained(blobs, nnx_trainer, mask):
    """(start TrainState, TrainState after 60 steps on the first 12 points)."""
    x, y = blobs
    start = nnx_trainer.init(jax.random.key(0), x)
    return start, jax.jit(nnx_trainer.fit)(start, x, y, mask, jax.random.key(1))


def test_trainer_learns_an_nnx_module(blobs, net, nnx_trainer, trained):
    x, y = blobs
    start, after = trained
    accuracy = jax.jit(nnx_trainer.accuracy)
    # Chance is 1/3; the 52 points it never saw are classified too.
    held_out = float(accuracy(after.params, x[LABELED:], y[LABELED:]))
    assert held_out >= 0.9
    assert held_out > float(accuracy(start.params, x[LABELED:], y[LABELED:]))
    # The params are the module's whole state, as nnx.state(module) shapes it.
    assert jax.tree.structure(after.params) == jax.tree.structure(nnx.state(net))
    assert not np.allclose(
        after.params["dense"]["kernel"][...], start.params["dense"]["kernel"][...]
    )


def test_nnx_training_is_a_function_of_its_key(blobs, nnx_trainer, trained, mask):
    x, y = blobs
    start, after = trained
    fit = jax.jit(nnx_trainer.fit)
    _assert_trees_equal(after, fit(start, x, y, mask, jax.random.key(1)))
    other = fit(start, x, y, mask, jax.random.key(2))
    assert not np.allclose(other.params["out"]["kernel"][...], after.params["out"]["kernel"][...])
    # train() is init + fit from the same key split.
    init_key, fit_key = jax.random.split(jax.random.key(3))
    _assert_trees_equal(
        jax.jit(nnx_trainer.train)(x, y, mask, jax.random.key(3)),
        fit(nnx_trainer.init(init_key, x), x, y, mask, fit_key).params,
    )


def test_nnx_batch_stats_train_rng_state_stays_and_module_is_untouched(net, trained):
    start, after = trained
    mean = after.params["norm"]["mean"][...]
    assert not np.allclose(mean, start.params["norm"]["mean"][...])
    _assert_trees_equal(
        nnx.state(start.params, nnx.RngState), nnx.state(after.params, nnx.RngState)
    )
    np.testing.assert_array_equal(net.norm.mean[...], np.zeros(32, np.float32))
    _assert_trees_equal(nnx.state(net), start.params)


def test_nnx_only_labeled_points_with_known_labels_count(blobs, nnx_trainer, trained, mask):
    x, y = blobs
    start, after = trained
    fit = jax.jit(nnx_trainer.fit)
    unknown = jnp.concatenate([y[:LABELED], jnp.full(N - LABELED, -1, jnp.int32)])
    _assert_trees_equal(after, fit(start, x, unknown, jnp.ones(N, bool), jax.random.key(1)))
    _assert_trees_equal(start, fit(start, x, y, jnp.zeros(N, bool), jax.random.key(1)))


def test_nnx_predict_is_from_flax_eval_and_nnx_update_round_trips(blobs, net, nnx_trainer, trained):
    x, _ = blobs
    _, after = trained
    logits = nnx_trainer.predict(after.params, x)
    # predict runs the network chunk by chunk: float32 products blocked differently from
    # one pass over all rows round differently (a few ulps), so the comparison is to 1e-6.
    whole = jaxal.from_flax(net).apply(after.params, x, None)[0]
    np.testing.assert_allclose(logits, whole, rtol=1e-6, atol=1e-6)
    copy = nnx.clone(net)
    nnx.update(copy, after.params)
    copy.eval()
    np.testing.assert_allclose(copy(x)[0], logits, rtol=1e-5, atol=1e-5)


def test_dropout_without_rngs_is_keyed_by_the_trainer(blobs, mask):
    x, y = blobs
    trainer = train.trainer(_NoRngsDropout(nnx.Rngs(0)), steps=40, batch_size=None)
    fit = jax.jit(trainer.train)
    params = fit(x, y, mask, jax.random.key(0))
    assert float(trainer.accuracy(params, x, y)) >= 0.9
    # Dropout is on in training: the full-batch steps differ only in the dropout key.
    other = fit(x, y, mask, jax.random.key(1))
    assert not np.allclose(params["out"]["kernel"][...], other["out"]["kernel"][...])


@pytest.mark.parametrize("name", ["entropy", "margin", "badge", "coreset", "bald"])
def test_strategies_select_from_the_trained_nnx_state(blobs, net, trained, mask, name):
    x, _ = blobs
    _, after = trained
    strategy = jaxal.strategies.get(name)(jaxal.from_flax(net), budget=BUDGET)
    pool = jaxal.Pool.create(x, labeled=mask)
    eager = np.asarray(strategy.select(after.params, pool, jax.random.key(5)))
    jitted = np.asarray(jax.jit(strategy.select)(after.params, pool, jax.random.key(5)))
    np.testing.assert_array_equal(eager, jitted)
    assert eager.shape == (BUDGET,) and len(set(eager.tolist())) == BUDGET
    assert not np.asarray(mask)[eager].any() and eager.min() >= 0 and eager.max() < N


def test_trainer_rejects_what_is_not_a_flax_module():
    with pytest.raises(TypeError, match="flax.linen or flax.nnx Module"):
        train.trainer(lambda x: x)  # type: ignore[arg-type]

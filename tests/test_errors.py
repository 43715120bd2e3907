"""Bad input gets a clear error naming the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from tests.test_contract import INPUTS, model_for


@pytest.mark.parametrize("name", sorted(jaxal.strategies.REGISTRY))
def test_budget_must_be_a_positive_int(name, model):
    factory = jaxal.strategies.get(name)
    with pytest.raises(ValueError, match="budget"):
        factory(model, 0)
    with pytest.raises(TypeError, match="budget"):
        factory(model, 2.5)
    with pytest.raises(ValueError, match="batch_size"):
        factory(model, 3, batch_size=0)


@pytest.mark.parametrize("name", sorted(jaxal.strategies.REGISTRY))
def test_budget_larger_than_pool_raises_even_under_jit(name, model, params):
    pool = jaxal.Pool.create(jnp.ones((5, 6)))
    strategy = jaxal.strategies.get(name)(model_for(name, model), 6)
    inputs = {input_name: INPUTS[input_name] for input_name in strategy.inputs}
    with pytest.raises(ValueError, match="budget"):
        jax.jit(strategy.select)(params, pool, jax.random.key(0), **inputs)


def test_budget_larger_than_unlabeled_names_budget(model, params, pool, key):
    unlabeled = int((~pool.labeled).sum())
    with pytest.raises(ValueError, match=rf"budget={unlabeled + 1}.*\({unlabeled}\)"):
        jaxal.strategies.entropy(model, unlabeled + 1).select(params, pool, key)


def test_unknown_strategy_lists_known_names(model, params, pool, key):
    with pytest.raises(
        ValueError, match="Did you mean 'entropy'.*Known strategies: alfamix, badge"
    ):
        jaxal.select("entropi", model, params, pool, key, 3)
    with pytest.raises(ValueError, match="unknown strategy"):
        jaxal.strategies.get("nope")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("entropy", {"mc_samples": 0}, "mc_samples"),
        ("bald", {"mc_samples": None}, "mc_samples"),
        ("badge", {"gradient": "weights"}, "gradient"),
        ("badge", {"gradient": "params"}, "params_filter"),
        ("badge", {"params_filter": "Dense"}, "params_filter"),
        ("kmeans", {"representation": "pixels"}, "representation"),
        ("kmeans", {"n_init": 0}, "n_init"),
        ("kmeans", {"tol": -1.0}, "tol"),
        ("coreset", {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_hyperparameters(name, kwargs, match, model):
    with pytest.raises((ValueError, TypeError), match=match):
        jaxal.strategies.get(name)(model, 3, **kwargs)


def _nan_model(where):
    def apply(params, x, rng):
        del params, rng
        logits = jnp.stack([x[:, 0], -x[:, 0]], axis=1)
        embedding = x
        if where == "logits":
            logits = logits.at[0, 0].set(jnp.nan)
        else:
            embedding = embedding.at[0, 0].set(jnp.nan)
        return logits, embedding

    return jaxal.Model(apply=apply)


@pytest.mark.parametrize(
    ("name", "where", "match"),
    [
        ("entropy", "logits", "finite"),
        ("margin", "logits", "finite"),
        ("least_confidence", "logits", "finite"),
        ("bald", "logits", "finite"),
        ("coreset", "embedding", "embeddings must be finite"),
        ("kmeans", "embedding", "embeddings must be finite"),
        ("badge", "embedding", "embeddings must be finite"),
        ("badge", "logits", "logits must be finite"),
    ],
)
def test_non_finite_model_outputs_raise(name, where, match):
    pool = jaxal.Pool.create(np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32))
    strategy = jaxal.strategies.get(name)(_nan_model(where), 2)
    with pytest.raises(ValueError, match=match):
        strategy.select(None, pool, jax.random.key(0))


def test_pool_argument_type_is_checked(model, params, key):
    with pytest.raises(TypeError, match="pool"):
        jaxal.strategies.entropy(model, 2).select(params, jnp.ones((5, 6)), key)


@pytest.mark.parametrize(
    ("key", "error", "match"),
    [
        (0, TypeError, r"key must be a PRNG key such as jax.random.key\(0\); got (int|an array)"),
        (None, TypeError, "key must be a PRNG key.*got NoneType"),
        (np.int32(3), TypeError, "key must be a PRNG key"),
        (jnp.zeros(2, jnp.float32), TypeError, "key must be a PRNG key"),
        (
            jax.random.split(jax.random.key(0), 3),
            ValueError,
            r"one PRNG key; got a batch of \(3,\)",
        ),
        (jax.random.split(jax.random.PRNGKey(0), 3), ValueError, "one PRNG key; got a batch"),
    ],
)
@pytest.mark.parametrize("name", ["entropy", "coreset"])
def test_key_must_be_one_prng_key(name, key, error, match, model, params, pool):
    strategy = jaxal.strategies.get(name)(model, 2)
    for fn in (strategy.select, strategy.score):
        with pytest.raises(error, match=match):
            fn(params, pool, key)
    with pytest.raises(error, match=match):
        jax.jit(strategy.select)(params, pool, key)


def test_legacy_raw_keys_are_accepted(model, params, pool):
    strategy = jaxal.strategies.entropy(model, 2)
    raw = np.asarray(strategy.select(params, pool, jax.random.PRNGKey(0)))
    typed = np.asarray(strategy.select(params, pool, jax.random.key(0)))
    np.testing.assert_array_equal(raw, typed)


@pytest.mark.parametrize("name", sorted(jaxal.strategies.REGISTRY))
def test_a_bare_flax_module_names_from_flax(name, mlp):
    if name == "random":  # random never runs the model: any model, even None, is accepted
        return
    with pytest.raises(TypeError, match=r"jaxal.Model \(wrap a Flax module with jaxal.from_flax"):
        jaxal.strategies.get(name)(mlp[0], 3)
    with pytest.raises(TypeError, match="model is None"):
        jaxal.strategies.get(name)(None, 3)


def test_model_may_be_none_where_it_is_never_run(pool, key):
    for strategy in (
        jaxal.strategies.random(None, 3),
        jaxal.strategies.kmeans(None, 3, representation="raw", max_iter=2),
        jaxal.strategies.submodular(None, 3, representation="raw"),
    ):
        indices = np.asarray(strategy.select(None, pool, key))
        assert len(set(indices.tolist())) == 3 and not np.asarray(pool.labeled)[indices].any()


@pytest.mark.parametrize("name", ["bald", "batchbald"])
def test_one_mc_sample_is_refused(name, model):
    with pytest.raises(ValueError, match="mc_samples >= 2"):
        jaxal.strategies.get(name)(model, 3, mc_samples=1)
    with pytest.raises(ValueError, match="mc_samples >= 2"):
        jaxal.strategies.stochastic(model, 3, strategy=name, mc_samples=1)


def _no_dropout_model():
    def apply(params, x, rng):
        del rng  # the stochastic pass is the deterministic one: nothing can differ
        hidden = jnp.tanh(x @ params["w"])
        return hidden @ params["v"], hidden

    return jaxal.Model(apply=apply)


@pytest.mark.parametrize("name", ["bald", "batchbald"])
def test_samples_that_cannot_differ_are_refused_outside_jit(name, pool, key):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)}
    params["v"] = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    strategy = jaxal.strategies.get(name)(_no_dropout_model(), 3, mc_samples=4)
    with pytest.raises(ValueError, match="MC-dropout samples are identical for every point"):
        strategy.select(params, pool, key)
    # Under jit nothing can raise; the picks still keep the contract.
    indices = np.asarray(jax.jit(strategy.select)(params, pool, key))
    assert len(set(indices.tolist())) == 3 and not np.asarray(pool.labeled)[indices].any()


def test_saturated_dropout_model_is_not_mistaken_for_no_dropout(mlp, pool, key):
    # Logits of 1e6: every MC softmax is the same one-hot, but the logits differ, so the
    # model does have dropout and BALD runs (scores 0 are legitimate there).
    module, params, _ = mlp
    params = jax.tree.map(lambda w: w * 300.0, params)
    indices = np.asarray(
        jaxal.strategies.bald(jaxal.from_flax(module), 3).select(params, pool, key)
    )
    assert len(set(indices.tolist())) == 3

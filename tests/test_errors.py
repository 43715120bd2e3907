"""Bad input gets a clear error naming the argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from tests.test_contract import INPUTS


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
    strategy = jaxal.strategies.get(name)(model, 6)
    inputs = {input_name: INPUTS[input_name] for input_name in strategy.inputs}
    with pytest.raises(ValueError, match="budget"):
        jax.jit(strategy.select)(params, pool, jax.random.key(0), **inputs)


def test_budget_larger_than_unlabeled_names_budget(model, params, pool, key):
    unlabeled = int((~pool.labeled).sum())
    with pytest.raises(ValueError, match=rf"budget={unlabeled + 1}.*\({unlabeled}\)"):
        jaxal.strategies.entropy(model, unlabeled + 1).select(params, pool, key)


def test_unknown_strategy_lists_known_names(model, params, pool, key):
    with pytest.raises(ValueError, match="Did you mean 'entropy'.*Known strategies: badge"):
        jaxal.select("entropi", model, params, pool, key, 3)
    with pytest.raises(ValueError, match="unknown strategy"):
        jaxal.strategies.get("nope")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("entropy", {"mc_samples": 0}, "mc_samples"),
        ("bald", {"mc_samples": None}, "mc_samples"),
        ("badge", {"embedding": "weights"}, "embedding"),
        ("badge", {"embedding": "params"}, "params_filter"),
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

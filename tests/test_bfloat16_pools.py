"""Pools stored in bfloat16: every distance, kernel and center is computed in float32, so a
strategy picks exactly what it picks from a float32 pool holding the same values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.selectors import _points

N, D, C, LABELED, BUDGET = 240, 12, 4, 30, 6


def embedding_pools():
    """(bfloat16 [N, D], float32 [N, D] of the same values, labels int [N]): four blobs."""
    rng = np.random.default_rng(7)
    y = np.arange(N) % C
    centers = rng.normal(size=(C, D)) * 2.0
    x = centers[y] + rng.normal(size=(N, D))
    stored = jnp.asarray(x, jnp.bfloat16)
    return stored, stored.astype(jnp.float32), jnp.asarray(y, jnp.int32)


# (registry name, hyperparameters): the strategies that read the embeddings themselves.
EMBEDDING_STRATEGIES = [
    ("coreset", {}),
    ("badge", {}),
    ("kmeans", {}),
    ("kmeans", {"max_iter": 1}),
    ("fass", {}),
    ("submodular", {}),
    ("submodular", {"optimizer": "stochastic", "represented": 60}),
    ("typiclust", {}),
    ("probcover", {}),
    ("probcover", {"normalize": True}),
    ("maxherding", {}),
    ("alfamix", {}),
    ("dropquery", {}),
    ("cluster_margin", {}),
    ("partition", {"strategy": "coreset", "parts": 3, "shuffle": True}),
    ("entropy", {}),
    ("bald", {}),
]


@pytest.mark.parametrize(("name", "hparams"), EMBEDDING_STRATEGIES, ids=str)
def test_bfloat16_pool_picks_what_float32_of_the_same_values_picks(name, hparams):
    stored, widened, y = embedding_pools()
    labeled = np.zeros(N, bool)
    labeled[np.random.default_rng(3).choice(N, LABELED, replace=False)] = True
    model = jaxal.linear_probe()
    params = jaxal.fit_linear_probe(widened, y, jnp.asarray(labeled), C)
    strategy = jaxal.strategies.get(name)(model, BUDGET, **hparams)
    picks = []
    for x in (stored, widened):
        pool = jaxal.Pool.create(x, y=jnp.where(labeled, y, -1), labeled=labeled)
        picks.append(np.asarray(jax.jit(strategy.select)(params, pool, jax.random.key(5))))
    np.testing.assert_array_equal(picks[0], picks[1])
    assert len(set(picks[0].tolist())) == BUDGET and not labeled[picks[0]].any()


def test_bfloat16_distances_match_float64():
    stored, _, _ = embedding_pools()
    values = np.asarray(stored.astype(jnp.float32), np.float64)
    want = np.sum((values[:, None, :] - values[None, :20, :]) ** 2, axis=-1)
    got = _points.sq_distances(stored, stored[:20])
    assert got.dtype == jnp.float32
    # bfloat16 arithmetic would be off by about 2^-8 of the norms; float32 is exact to 1e-5.
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-4)

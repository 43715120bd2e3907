"""Streaming selection over chunks equals selection over the whole pool in memory."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import streaming
from tests.conftest import N_POINTS


@pytest.fixture
def labeled(pool):
    return np.asarray(pool.labeled)


@pytest.mark.parametrize(
    ("name", "hparams", "which"),
    [
        ("entropy", {}, "apply"),
        ("margin", {"mc_samples": 3}, "head"),
        ("bald", {"mc_samples": 3}, "apply"),
        ("least_confidence", {}, "head"),
    ],
)
@pytest.mark.parametrize("chunk_size", [25, 1000])
def test_streaming_top_k_equals_in_memory(
    name, hparams, which, chunk_size, model, head_model, params, pool, labeled, key
):
    chosen = model if which == "apply" else head_model
    strategy = jaxal.strategies.get(name)(chosen, 9, batch_size=10, **hparams)
    expected = np.asarray(strategy.select(params, pool, key))
    x = np.asarray(pool.x)
    got = streaming.top_k(strategy, params, x, key, labeled=labeled, chunk_size=chunk_size)
    np.testing.assert_array_equal(got, expected)


def test_streaming_from_memmap_and_iterator(model, params, pool, labeled, key, tmp_path):
    x = np.asarray(pool.x)
    stored = np.lib.format.open_memmap(tmp_path / "pool.npy", "w+", np.float32, x.shape)
    stored[:] = x
    stored.flush()
    on_disk = np.load(tmp_path / "pool.npy", mmap_mode="r")
    strategy = jaxal.strategies.entropy(model, 6)
    expected = np.asarray(strategy.select(params, pool, key))
    from_disk = streaming.top_k(strategy, params, on_disk, key, labeled=labeled, chunk_size=40)
    chunks = (x[s : s + 40] for s in range(0, N_POINTS, 40))
    from_iter = streaming.top_k(strategy, params, chunks, key, labeled=labeled, chunk_size=40)
    np.testing.assert_array_equal(from_disk, expected)
    np.testing.assert_array_equal(from_iter, expected)


def test_streaming_fills_minus_one_when_too_few_unlabeled(model, params, pool, key):
    labeled = np.arange(N_POINTS) >= 3
    strategy = jaxal.strategies.entropy(model, 5)
    got = streaming.top_k(strategy, params, np.asarray(pool.x), key, labeled=labeled, chunk_size=16)
    assert sorted(got[:3].tolist()) == [0, 1, 2] and np.all(got[3:] == -1)


def test_streaming_k_center_equals_coreset(model, params, pool, labeled, key):
    expected = np.asarray(jaxal.strategies.coreset(model, 7).select(params, pool, key))
    got = streaming.k_center_greedy(
        model, params, np.asarray(pool.x), 7, key, labeled=labeled, chunk_size=30
    )
    np.testing.assert_array_equal(got, expected)


def test_streaming_embeddings_match_forward(model, params, pool):
    _, expected = jaxal.model.forward(model, params, pool.x, 1000)
    got = streaming.embeddings(model, params, np.asarray(pool.x), chunk_size=35)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_streaming_errors(model, params, pool, key):
    x = np.asarray(pool.x)
    with pytest.raises(TypeError, match="scored"):
        streaming.top_k(jaxal.strategies.coreset(model, 3), params, x, key)
    with pytest.raises(ValueError, match="chunk_size"):
        streaming.top_k(jaxal.strategies.entropy(model, 3), params, [x], key, chunk_size=10)
    with pytest.raises(ValueError, match="budget"):
        labeled = np.ones(N_POINTS, bool)
        streaming.k_center_greedy(model, params, x, 3, key, labeled=labeled)
    nan_x = x.copy()
    nan_x[5, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        streaming.top_k(jaxal.strategies.entropy(model, 3), params, nan_x, key)


def test_streaming_never_picks_a_non_finite_score(params, pool, labeled, key):
    # A model whose logits are NaN for one input: that point is never picked, as in
    # selectors.top_k under jit (the streamed scores are computed under jit).
    def apply(p, x, rng):
        del p, rng
        logits = x[:, :4] * jnp.where(x[:, :1] > 0.5, jnp.nan, 1.0)
        return logits, x

    x = np.asarray(pool.x)
    finite = x[:, 0] <= 0.5
    usable = int(np.sum(finite & ~labeled))
    strategy = jaxal.strategies.entropy(jaxal.Model(apply=apply), usable + 2)
    got = streaming.top_k(strategy, params, x, key, labeled=labeled, chunk_size=25)
    assert np.all(got[usable:] == -1) and len(set(got[:usable].tolist())) == usable
    assert np.all(finite[got[:usable]]) and not np.any(labeled[got[:usable]])
    in_memory = np.asarray(jax.jit(strategy.select)(params, pool, key))
    np.testing.assert_array_equal(got, in_memory)

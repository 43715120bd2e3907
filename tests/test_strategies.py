"""Each strategy end to end against a NumPy float64 reference of the same model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.model import dropout_keep_mask
from tests import reference
from tests.conftest import N_HIDDEN, N_POINTS, numpy_mlp, softmax

MEASURES = {
    "entropy": reference.entropy,
    "margin": reference.margin,
    "least_confidence": reference.least_confidence,
}


def _reference_mc_probs(params, x, key, samples):
    """float64 [S, N, C]: the head path's MC probabilities with jaxal's masks."""
    _, hidden = numpy_mlp(params, x)
    kernel = np.asarray(params["params"]["Dense_1"]["kernel"], np.float64)
    bias = np.asarray(params["params"]["Dense_1"]["bias"], np.float64)
    out = []
    for sample_key in jax.random.split(key, samples):
        seed = jax.random.bits(sample_key, (), jnp.uint32)
        keep = np.asarray(dropout_keep_mask(seed, jnp.arange(N_POINTS), N_HIDDEN, 0.5))
        out.append(softmax((hidden * keep * 2.0) @ kernel + bias))
    return np.stack(out)


def _check_scores_and_selection(strategy, params, pool, key, expected_scores):
    unlabeled = ~np.asarray(pool.labeled)
    got = np.asarray(strategy.score(params, pool, key))
    np.testing.assert_allclose(got[unlabeled], expected_scores[unlabeled], rtol=2e-4, atol=2e-6)
    masked = np.where(unlabeled, expected_scores, -np.inf)
    expected = np.argsort(-masked, kind="stable")[: strategy.budget]
    np.testing.assert_array_equal(np.asarray(strategy.select(params, pool, key)), expected)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_uncertainty_matches_reference(name, model, params, pool, key):
    logits, _ = numpy_mlp(params, pool.x)
    expected = MEASURES[name](softmax(logits))
    strategy = jaxal.strategies.get(name)(model, 9, batch_size=25)
    _check_scores_and_selection(strategy, params, pool, key, expected)


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_mc_uncertainty_matches_reference(name, head_model, params, pool, key):
    mc_probs = _reference_mc_probs(params, pool.x, key, 6)
    expected = MEASURES[name](mc_probs.mean(0))
    strategy = jaxal.strategies.get(name)(head_model, 9, mc_samples=6, batch_size=25)
    _check_scores_and_selection(strategy, params, pool, key, expected)


def test_bald_matches_reference(head_model, params, pool, key):
    expected = reference.mutual_information(_reference_mc_probs(params, pool.x, key, 8))
    strategy = jaxal.strategies.bald(head_model, 9, mc_samples=8, batch_size=25)
    _check_scores_and_selection(strategy, params, pool, key, expected)


def test_saturated_softmax_entropy_is_finite():
    def apply(params, x, rng):
        del params, rng
        return 1e4 * x, x  # saturated: probabilities are exactly one-hot in float32

    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    pool = jaxal.Pool.create(x)
    strategy = jaxal.strategies.entropy(jaxal.Model(apply=apply), 5)
    scores = np.asarray(strategy.score(None, pool, jax.random.key(0)))
    # One-hot up to float32 rounding: p = 1 - 2^-24 gives -p log p = 6e-8.
    assert np.all(np.isfinite(scores)) and np.all(np.abs(scores) < 1e-6)


@pytest.mark.parametrize("labeled_count", [0, 12])
def test_coreset_matches_reference(labeled_count, model, params, mlp, key):
    x = mlp[2]
    labeled = np.zeros(N_POINTS, bool)
    labeled[np.random.default_rng(1).choice(N_POINTS, labeled_count, replace=False)] = True
    pool = jaxal.Pool.create(x, labeled=labeled)
    strategy = jaxal.strategies.coreset(model, 8, batch_size=30, chunk_size=5)
    got = np.asarray(strategy.select(params, pool, key))
    _, hidden = numpy_mlp(params, x)
    first = int(got[0]) if labeled_count == 0 else None
    expected = reference.k_center_greedy(hidden, ~labeled, labeled, 8, first=first)
    np.testing.assert_array_equal(got, expected)
    if labeled_count == 0:  # the first pick is a uniform draw: other keys pick elsewhere
        firsts = {int(strategy.select(params, pool, k)[0]) for k in jax.random.split(key, 8)}
        assert len(firsts) > 1


@pytest.mark.parametrize("kind", ["linear", "bias", "bias_linear"])
def test_badge_matches_reference_on_materialized_gradients(kind, model, params, pool, key):
    logits, hidden = numpy_mlp(params, pool.x)
    grad_logits = softmax(logits)
    grad_logits[np.arange(N_POINTS), logits.argmax(1)] -= 1.0
    outer = np.einsum("nc,nd->ncd", grad_logits, hidden).reshape(N_POINTS, -1)
    embedding = {
        "linear": outer,
        "bias": grad_logits,
        "bias_linear": np.concatenate([grad_logits, outer], axis=1),
    }[kind]
    budget = 10
    uniforms = np.asarray(jax.random.uniform(key, (budget,)), np.float64)
    expected = reference.kmeans_plusplus(
        embedding, ~np.asarray(pool.labeled), uniforms, first="max_norm"
    )
    got = jaxal.strategies.badge(model, budget, gradient=kind).select(params, pool, key)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_badge_params_embedding_matches_linear_bias(model, params, pool, key):
    """Per-example gradients of the last Dense layer = the factored bias_linear embedding."""
    via_grad = jaxal.strategies.badge(model, 10, gradient="params", params_filter="Dense_1")
    factored = jaxal.strategies.badge(model, 10, gradient="bias_linear")
    np.testing.assert_array_equal(
        np.asarray(via_grad.select(params, pool, key)),
        np.asarray(factored.select(params, pool, key)),
    )


def test_kmeans_raw_matches_selector(params, pool, key):
    strategy = jaxal.strategies.kmeans(None, 6, representation="raw", max_iter=20)
    expected = jaxal.selectors.kmeans(
        pool.x.reshape(N_POINTS, -1), ~pool.labeled, 6, key, max_iter=20
    )
    np.testing.assert_array_equal(
        np.asarray(strategy.select(params, pool, key)), np.asarray(expected)
    )


def test_kmeans_picks_one_point_per_cluster():
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    x = np.concatenate([c + rng.normal(scale=0.3, size=(15, 2)) for c in centers])
    pool = jaxal.Pool.create(x.astype(np.float32))
    strategy = jaxal.strategies.kmeans(None, 4, representation="raw", n_init=3)
    picked = np.asarray(strategy.select(None, pool, jax.random.key(0)))
    assert sorted((picked // 15).tolist()) == [0, 1, 2, 3]


def test_random_is_uniform_over_unlabeled(pool):
    strategy = jaxal.strategies.random(None, 5)
    select = jax.jit(strategy.select)
    counts = np.zeros(N_POINTS)
    for k in jax.random.split(jax.random.key(0), 400):
        counts[np.asarray(select(None, pool, k))] += 1
    unlabeled = ~np.asarray(pool.labeled)
    assert counts[~unlabeled].sum() == 0
    expected = 400 * 5 / unlabeled.sum()
    chi_square = ((counts[unlabeled] - expected) ** 2 / expected).sum()
    assert chi_square < 2 * unlabeled.sum()  # dof = 83; this bound is far in the tail

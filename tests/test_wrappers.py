"""Stochastic batch acquisition and partitioning, against their stated distributions."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxal
from jaxal.selectors import log_weights, stochastic_top_k
from jaxal.strategies.wrappers import _split


def _reference_log_weights(scores, mode, beta):
    scores = np.asarray(scores, np.float64)
    if mode == "softmax":
        return beta * scores
    if mode == "power":
        with np.errstate(divide="ignore"):
            return beta * np.log(np.maximum(scores, 0))
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return -beta * np.log(ranks)


@pytest.mark.parametrize("mode", ["power", "softmax", "softrank"])
@pytest.mark.parametrize("seed", [0, 1])
def test_log_weights_match_reference(mode, seed):
    scores = np.random.default_rng(seed).uniform(0, 2, size=17).astype(np.float32)
    candidates = np.ones(17, bool)
    got = np.asarray(log_weights(jnp.asarray(scores), jnp.asarray(candidates), mode, 1.7))
    np.testing.assert_allclose(got, _reference_log_weights(scores, mode, 1.7), rtol=1e-5)
    candidates[[2, 5]] = False
    masked = np.asarray(log_weights(jnp.asarray(scores), jnp.asarray(candidates), mode, 1.7))
    assert np.all(np.isneginf(masked[[2, 5]]))
    if mode == "softrank":  # ranks are among the candidates only
        expected = _reference_log_weights(scores[candidates], mode, 1.7)
        np.testing.assert_allclose(masked[candidates], expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["power", "softmax", "softrank"])
def test_single_draw_follows_the_weights(mode):
    scores = jnp.array([0.1, 0.5, 0.9, 0.3, 0.0, 0.7])
    candidates = jnp.array([True, True, True, True, True, False])
    draw = jax.jit(lambda k: stochastic_top_k(scores, candidates, 1, k, mode=mode, beta=1.5))
    picks = np.array([int(draw(k)[0]) for k in jax.random.split(jax.random.key(0), 3000)])
    weights = np.exp(_reference_log_weights(np.asarray(scores), mode, 1.5))
    weights[~np.asarray(candidates)] = 0
    if mode == "softrank":  # ranks among candidates: recompute without the excluded point
        weights[:5] = np.exp(_reference_log_weights(np.asarray(scores)[:5], mode, 1.5))
    expected = weights / weights.sum()
    counts = np.bincount(picks, minlength=6)
    assert counts[5] == 0
    positive = expected > 0
    assert np.all(counts[~positive] == 0)
    result = stats.chisquare(counts[positive], 3000 * expected[positive])
    assert result.pvalue > 1e-4


def test_ordered_pairs_follow_plackett_luce():
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    scores = jnp.asarray(weights, jnp.float32)
    candidates = jnp.ones(4, bool)
    draw = jax.jit(lambda k: stochastic_top_k(scores, candidates, 2, k, mode="power"))
    pairs = [tuple(np.asarray(draw(k)).tolist()) for k in jax.random.split(jax.random.key(1), 4000)]
    cells = [(i, j) for i in range(4) for j in range(4) if i != j]
    total = weights.sum()
    expected = np.array([weights[i] / total * weights[j] / (total - weights[i]) for i, j in cells])
    counts = np.array([pairs.count(cell) for cell in cells])
    assert counts.sum() == 4000
    assert stats.chisquare(counts, 4000 * expected).pvalue > 1e-4


@pytest.mark.parametrize("mode", ["power", "softmax", "softrank"])
def test_large_beta_reduces_to_top_k(mode, model, params, pool, key):
    base = jaxal.strategies.entropy(model, 9)
    sharp = jaxal.strategies.stochastic(base, mode=mode, beta=1e6)
    np.testing.assert_array_equal(
        np.asarray(sharp.select(params, pool, key)), np.asarray(base.select(params, pool, key))
    )
    assert sharp.name == "stochastic" and sharp.mode == mode and sharp.budget == 9


def test_small_beta_diversifies(model, params, pool):
    soft = jaxal.strategies.stochastic(model, 9, strategy="entropy", mode="power", beta=0.5)
    select = jax.jit(soft.select)
    keys = jax.random.split(jax.random.key(3), 5)
    draws = {tuple(np.asarray(select(params, pool, k)).tolist()) for k in keys}
    assert len(draws) == 5


def test_power_mode_rejects_negative_scores(model, params, pool, key):
    strategy = jaxal.strategies.stochastic(jaxal.strategies.margin(model, 3), mode="power")
    with pytest.raises(ValueError, match="non-negative"):
        strategy.select(params, pool, key)


def test_stochastic_needs_a_scored_strategy(model, params, pool, key):
    strategy = jaxal.strategies.stochastic(jaxal.strategies.coreset(model, 3))
    with pytest.raises(TypeError, match="score"):
        strategy.select(params, pool, key)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"mode": "gumbel"}, "mode"), ({"beta": 0.0}, "beta"), ({"mc_samples": 3}, "base")],
)
def test_stochastic_bad_arguments(kwargs, match, model):
    with pytest.raises(ValueError, match=match):
        jaxal.strategies.stochastic(jaxal.strategies.entropy(model, 3), **kwargs)


@pytest.mark.parametrize(("n", "parts", "budget"), [(15000, 10, 100), (96, 3, 7), (3, 2, 2)])
def test_budget_split_matches_distil_formula(n, parts, budget):
    bounds = [math.ceil(n * ((i + 1) / parts)) for i in range(parts)]
    cumulative = [math.ceil(budget * (s / n)) for s in bounds]
    expected = np.diff([0, *cumulative])
    assert _split(budget, bounds) == expected.tolist()
    assert sum(_split(budget, bounds)) == budget


def test_contiguous_partition_is_top_k_per_part(model, params, pool, key):
    strategy = jaxal.strategies.partition(model, 7, strategy="entropy", parts=3)
    got = np.asarray(strategy.select(params, pool, key))
    scores = np.asarray(jaxal.strategies.entropy(model, 7).score(params, pool, key))
    expected = []
    for (start, stop), part_budget in zip([(0, 32), (32, 64), (64, 96)], [3, 2, 2], strict=True):
        order = start + np.argsort(-scores[start:stop], kind="stable")
        expected.extend(order[:part_budget])
    np.testing.assert_array_equal(got, expected)


def test_equal_parts_are_top_k_per_part(model, params, pool, key):
    # 96 points, 4 parts of 24, 2 picks each: the parts share one program (lax.map).
    strategy = jaxal.strategies.partition(model, 8, strategy="entropy", parts=4)
    got = np.asarray(strategy.select(params, pool, key))
    scores = np.asarray(jaxal.strategies.entropy(model, 8).score(params, pool, key))
    expected = []
    for start in range(0, 96, 24):
        expected.extend(start + np.argsort(-scores[start : start + 24], kind="stable")[:2])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shuffle", [False, True])
def test_equal_parts_select_as_each_part_alone(model, params, pool, key, shuffle):
    strategy = jaxal.strategies.partition(model, 8, strategy="coreset", parts=4, shuffle=shuffle)
    got = np.asarray(jax.jit(strategy.select)(params, pool, key))
    order_key, select_key = jax.random.split(key)
    order = np.asarray(jax.random.permutation(order_key, 96)) if shuffle else np.arange(96)
    part_strategy = jaxal.strategies.coreset(model, 2)
    expected = []
    for i in range(4):
        positions = order[24 * i : 24 * (i + 1)]
        sub_pool = jaxal.Pool(
            pool.x[positions], pool.y[positions], pool.labeled[positions], pool.offset
        )
        local = np.asarray(
            part_strategy.select(params, sub_pool, jax.random.fold_in(select_key, i))
        )
        expected.extend(positions[local])
    np.testing.assert_array_equal(got, expected)
    assert len(set(got)) == 8 and not np.asarray(pool.labeled)[got].any()


def test_one_part_equals_the_wrapped_strategy(model, params, pool, key):
    whole = jaxal.strategies.partition(model, 7, strategy="badge", parts=1)
    direct = jaxal.strategies.badge(model, 7)
    split_key = jax.random.split(key)[1]
    np.testing.assert_array_equal(
        np.asarray(whole.select(params, pool, key)),
        np.asarray(direct.select(params, pool, jax.random.fold_in(split_key, 0))),
    )


def test_shuffled_parts_depend_on_the_key(model, params, pool):
    strategy = jaxal.strategies.partition(model, 8, strategy="entropy", parts=4, shuffle=True)
    select = jax.jit(strategy.select)
    draws = {
        tuple(np.asarray(select(params, pool, k))) for k in jax.random.split(jax.random.key(0), 4)
    }
    assert len(draws) > 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"parts": 8}, "parts"),
        ({"strategy": "nope"}, "unknown strategy"),
        ({"mc_samples": 0}, "mc"),
    ],
)
def test_partition_bad_arguments(kwargs, match, model):
    with pytest.raises(ValueError, match=match):
        jaxal.strategies.partition(model, 7, **{"strategy": "entropy", **kwargs})

"""GradMatch: the selectors, NNLS and the strategy against NumPy float64 and SciPy."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import jaxal
from jaxal import selectors
from jaxal.selectors import OuterProduct
from tests.conftest import N_CLASSES, N_FEATURES, numpy_mlp, softmax

# --------------------------------------------------------------------------------------
# References (section 3.8), on the materialized gradient matrix A = [N, d].
# --------------------------------------------------------------------------------------


def fixed_weight_reference(points, candidates, target, budget):
    """DISTIL's fixed_weight_greedy_parallel: argmin_j ||A_j + (sum_S A - t)|| over the
    unpicked candidates, first minimum; picks in pick order."""
    points = np.asarray(points, np.float64)
    target = np.asarray(target, np.float64)
    total, available, picks = np.zeros_like(target), np.asarray(candidates, bool).copy(), []
    for _ in range(budget):
        norms = np.linalg.norm(points + (total - target)[None, :], axis=1)
        best = int(np.argmin(np.where(available, norms, np.inf)))
        picks.append(best)
        available[best] = False
        total = total + points[best]
    return np.array(picks)


def omp_reference(points, candidates, target, budget, reg, tol=1e-4):
    """Non-negative OMP (DISTIL's orthogonalmp_reg_parallel, positive=True) with
    scipy.optimize.nnls at every step; (picks, weights) of the picks with weight > 0."""
    points = np.asarray(points, np.float64)
    target = np.asarray(target, np.float64)
    resid, picks, weights = target.copy(), [], np.zeros(0)
    for _ in range(budget):
        if np.linalg.norm(resid) < tol * np.linalg.norm(target):
            break
        projections = np.where(candidates, points @ resid, -np.inf)
        index = int(np.argmax(projections))
        if index in picks:
            break
        picks.append(index)
        chosen = points[picks]
        system = chosen @ chosen.T + reg * np.eye(len(picks))
        weights, _ = scipy.optimize.nnls(system, chosen @ target)
        resid = target - chosen.T @ weights
    kept = weights > 0
    return np.array(picks)[kept], weights[kept]


def random_points(seed, n=50, c=4, width=7, factored=True):
    rng = np.random.default_rng(seed)
    a = softmax(rng.normal(size=(n, c)) * 2) - np.eye(c)[rng.integers(0, c, n)]
    u = np.concatenate([np.ones((n, 1)), np.abs(rng.normal(size=(n, width - 1)))], axis=1)
    candidates = rng.random(n) > 0.2
    if not factored:
        dense = rng.normal(size=(n, c * width))
        return dense, dense, candidates
    points = OuterProduct(jnp.asarray(a, jnp.float32), jnp.asarray(u, jnp.float32))
    return points, np.asarray(points.materialize(), np.float64), candidates


def as_vector(points, flat):
    """A flat target in the points' space: [C, R] for an OuterProduct."""
    if isinstance(points, OuterProduct):
        return jnp.asarray(flat.reshape(points.left.shape[1], -1), jnp.float32)
    return jnp.asarray(flat, jnp.float32)


@functools.partial(jax.jit, static_argnames=("budget",))
def _fixed(points, candidates, target, budget):
    return selectors.gradmatch(points, candidates, target, budget)


@functools.partial(jax.jit, static_argnames=("budget",))
def _omp(points, candidates, target, key, budget, reg):
    return selectors.gradmatch_omp(points, candidates, target, budget, key, reg=reg)


# --------------------------------------------------------------------------------------
# Fixed-weight greedy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "factored", "scale"), [(0, True, 0.2), (1, True, 1.0), (2, False, 0.5)]
)
def test_fixed_weight_matches_numpy(seed, factored, scale):
    points, dense, candidates = random_points(seed, factored=factored)
    target = scale * dense[candidates].sum(axis=0)
    budget = 8
    got = np.asarray(_fixed(points, jnp.asarray(candidates), as_vector(points, target), budget))
    np.testing.assert_array_equal(got, fixed_weight_reference(dense, candidates, target, budget))


def test_fixed_weight_unfillable_slots_are_minus_one():
    points, _, _ = random_points(3)
    candidates = jnp.arange(50) < 3
    got = np.asarray(_fixed(points, candidates, jnp.zeros((4, 7)), 5))
    assert sorted(got[:3].tolist()) == [0, 1, 2] and np.all(got[3:] == -1)


# --------------------------------------------------------------------------------------
# NNLS and OMP
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("m", "n"), [(12, 8), (20, 14)])
def test_nnls_matches_scipy(m, n):
    rng = np.random.default_rng(m * n)
    solve = jax.jit(selectors.nnls)
    for _ in range(4):
        a = rng.normal(size=(m, n))
        b = rng.normal(size=m)
        expected, _ = scipy.optimize.nnls(a, b)
        got = np.asarray(solve(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)))
        np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_array_equal(got > 0, expected > 0)


def test_nnls_warm_start_and_valid_columns():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(10, 6)), rng.normal(size=10)
    valid = np.array([True, True, False, True, True, False])
    expected = np.zeros(6)
    expected[valid], _ = scipy.optimize.nnls(a[:, valid], b)
    solve = jax.jit(selectors.nnls)
    for start in (np.zeros(6), np.abs(rng.normal(size=6)), expected):
        got = solve(
            jnp.asarray(a, jnp.float32),
            jnp.asarray(b, jnp.float32),
            x0=jnp.asarray(start, jnp.float32),
            valid=jnp.asarray(valid),
        )
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("seed", "factored", "reg"), [(0, True, 0.0), (1, True, 0.5), (2, False, 0.0)]
)
def test_omp_matches_numpy_and_scipy(seed, factored, reg):
    points, dense, candidates = random_points(seed, factored=factored)
    target = dense[candidates].sum(axis=0)
    budget = 8
    indices, weights = _omp(
        points, jnp.asarray(candidates), as_vector(points, target), jax.random.key(0), budget, reg
    )
    indices, weights = np.asarray(indices), np.asarray(weights)
    picks, expected = omp_reference(dense, candidates, target, budget, reg)
    kept = len(picks)
    assert kept > 0
    np.testing.assert_array_equal(indices[:kept], picks)
    np.testing.assert_allclose(weights[:kept], expected, rtol=2e-3, atol=1e-4 * expected.max())
    # The rest: uniform fills with weight 1, distinct, candidates, never a kept pick.
    assert len(set(indices.tolist())) == budget and np.all(candidates[indices])
    np.testing.assert_array_equal(weights[kept:], 1.0)


def test_omp_fills_zero_weight_picks_at_random():
    # A target opposite to every point: the first pick gets weight 0 and repeats, so the
    # whole budget is drawn at random.
    points, dense, candidates = random_points(4, factored=False)
    target = -np.abs(dense).sum(axis=0)
    points = jnp.asarray(np.abs(dense), jnp.float32)
    cand = jnp.asarray(candidates)
    indices, weights = _omp(
        points, cand, jnp.asarray(target, jnp.float32), jax.random.key(0), 6, 0.0
    )
    indices = np.asarray(indices)
    assert len(set(indices.tolist())) == 6 and np.all(candidates[indices])
    np.testing.assert_array_equal(np.asarray(weights), 1.0)
    again, _ = _omp(points, cand, jnp.asarray(target, jnp.float32), jax.random.key(0), 6, 0.0)
    other, _ = _omp(points, cand, jnp.asarray(target, jnp.float32), jax.random.key(1), 6, 0.0)
    np.testing.assert_array_equal(np.asarray(again), indices)
    assert set(np.asarray(other).tolist()) != set(indices.tolist())


def test_omp_unfillable_slots_are_minus_one():
    points, dense, _ = random_points(5)
    candidates = np.arange(50) < 3
    target = as_vector(points, dense[:3].sum(axis=0))
    indices, weights = _omp(points, jnp.asarray(candidates), target, jax.random.key(0), 8, 0.0)
    indices, weights = np.asarray(indices), np.asarray(weights)
    assert sorted(indices[:3].tolist()) == [0, 1, 2] and np.all(indices[3:] == -1)
    assert np.all(weights[:3] > 0) and np.all(weights[3:] == 0)


# --------------------------------------------------------------------------------------
# The strategy end to end on the tiny model
# --------------------------------------------------------------------------------------


def _right(hidden, kind):
    ones = np.ones((len(hidden), 1))
    return {"linear": hidden, "bias": ones, "bias_linear": np.concatenate([ones, hidden], 1)}[kind]


def _grads(logits, hidden, kind, labels=None):
    probs = softmax(logits)
    labels = probs.argmax(axis=1) if labels is None else np.asarray(labels)
    a = probs - np.eye(probs.shape[1])[labels]
    u = _right(hidden, kind)
    return np.stack([np.outer(x, y).ravel() for x, y in zip(a, u, strict=True)])


def strategy_reference(params, pool, budget, kind, weighted, scale, reg=0.0, validation=None):
    points = _grads(*numpy_mlp(params, pool.x), kind)
    unlabeled = ~np.asarray(pool.labeled)
    if validation is None:
        target, count = points[unlabeled].sum(axis=0), unlabeled.sum()
    else:
        target = _grads(*numpy_mlp(params, validation[0]), kind, validation[1]).sum(axis=0)
        count = len(validation[1])
    if weighted:
        return omp_reference(points, unlabeled, target, budget, reg)[0]
    factor = budget if scale == "budget" else unlabeled.sum()
    return fixed_weight_reference(points, unlabeled, factor / count * target, budget)


def validation_set(seed, size=10):
    x = jax.random.normal(jax.random.key(seed), (size, N_FEATURES))
    y = jax.random.randint(jax.random.key(seed + 1), (size,), 0, N_CLASSES)
    return x, y


@pytest.mark.parametrize(
    ("kind", "weighted", "scale", "use_validation"),
    [
        ("bias_linear", False, "budget", False),
        ("linear", False, "pool", True),
        ("bias_linear", True, "budget", True),
    ],
)
def test_strategy_matches_numpy(kind, weighted, scale, use_validation, model, params, pool):
    budget = 5
    strategy = jaxal.strategies.gradmatch(
        model, budget, gradient=kind, weighted=weighted, target_scale=scale, batch_size=40
    )
    inputs = {}
    if use_validation:
        vx, vy = validation_set(3)
        inputs = {"validation_x": vx, "validation_y": vy}
    got = np.asarray(jax.jit(strategy.select)(params, pool, jax.random.key(0), **inputs))
    validation = (inputs["validation_x"], inputs["validation_y"]) if inputs else None
    expected = strategy_reference(params, pool, budget, kind, weighted, scale, 0.0, validation)
    np.testing.assert_array_equal(got[: len(expected)], expected)
    assert len(set(got.tolist())) == budget and not np.asarray(pool.labeled)[got].any()


def test_validation_inputs_are_traced(model, params, pool, key):
    budget = 4
    strategy = jaxal.strategies.gradmatch(model, budget, batch_size=40)
    al_round = jax.jit(chex.assert_max_traces(jaxal.make_round(strategy), n=1))
    results = []
    for seed in (11, 21):
        vx, vy = validation_set(seed)
        _, indices = al_round(params, pool, key, validation_x=vx, validation_y=vy)
        expected = strategy_reference(
            params, pool, budget, "bias_linear", False, "budget", validation=(vx, vy)
        )
        np.testing.assert_array_equal(np.asarray(indices), expected)
        results.append(np.asarray(indices))
    chex.clear_trace_counter()
    assert not np.array_equal(results[0], results[1]), "the second validation set was ignored"


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hparams", "error", "match"),
    [
        ({"gradient": "weights"}, ValueError, "gradient"),
        ({"weighted": 1}, TypeError, "weighted"),
        ({"omp_reg": -1.0}, ValueError, "omp_reg"),
        ({"omp_tol": float("nan")}, ValueError, "omp_tol"),
        ({"target_scale": "distil"}, ValueError, "target_scale"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_bad_hyperparameters(hparams, error, match, model):
    with pytest.raises(error, match=match):
        jaxal.strategies.gradmatch(model, 3, **hparams)


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        ({"validation_x": jnp.zeros((4, N_FEATURES))}, ValueError, "together"),
        ({"validation_y": jnp.zeros(4, jnp.int32)}, ValueError, "together"),
        (
            {"validation_x": jnp.zeros((4, 2)), "validation_y": jnp.zeros(4, int)},
            ValueError,
            "validation_x must have shape",
        ),
        (
            {"validation_x": jnp.zeros((4, N_FEATURES)), "validation_y": jnp.zeros(5, int)},
            ValueError,
            "validation_y must have shape",
        ),
        (
            {"validation_x": jnp.zeros((2, N_FEATURES)), "validation_y": jnp.array([-1, 0])},
            ValueError,
            "validation_y must lie in",
        ),
    ],
)
def test_bad_inputs(inputs, error, match, model, params, pool, key):
    strategy = jaxal.strategies.gradmatch(model, 3, weighted=True, batch_size=40)
    with pytest.raises(error, match=match):
        strategy.select(params, pool, key, **inputs)


def test_selectors_reject_bad_arrays():
    points, _, candidates = random_points(6)
    cand = jnp.asarray(candidates)
    with pytest.raises(ValueError, match="target must have shape"):
        selectors.gradmatch(points, cand, jnp.zeros(28), 3)
    with pytest.raises(ValueError, match="candidates"):
        selectors.gradmatch(points, cand[:10], jnp.zeros((4, 7)), 3)
    with pytest.raises(ValueError, match="budget"):
        selectors.gradmatch_omp(points, cand, jnp.zeros((4, 7)), 51, jax.random.key(0))
    with pytest.raises(ValueError, match="points"):
        selectors.gradmatch(jnp.zeros((5, 2, 2)), cand[:5], jnp.zeros(2), 3)
    with pytest.raises(ValueError, match="nnls"):
        selectors.nnls(jnp.zeros((3, 2)), jnp.zeros(2))

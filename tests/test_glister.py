"""GLISTER: the selector and the strategy against a plain NumPy float64 reference."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import selectors
from jaxal.selectors import OuterProduct
from tests.conftest import N_CLASSES, N_FEATURES, numpy_mlp, softmax

# --------------------------------------------------------------------------------------
# The reference: DISTIL's algorithm (section 3.7) on materialized gradients, with one
# normalization (the mean over the validation set at every step) and exactly `budget`
# picks for "random".
# --------------------------------------------------------------------------------------


def glister_reference(a, u, candidates, logits, right, labels, budget, lr, start, reg, lam):
    """(greedy picks, their gains) in float64; G[e] = a_e (x) u_e flattened class-major."""
    a, u, right = (np.asarray(v, np.float64) for v in (a, u, right))
    c, width = a.shape[1], u.shape[1]
    grads = np.stack([np.outer(x, y).ravel() for x, y in zip(a, u, strict=True)])
    out = np.asarray(logits, np.float64).copy()
    if start is not None:
        out -= lr * right @ np.asarray(start, np.float64).T
    onehot = np.eye(c)[np.asarray(labels)]
    greedy = budget - math.floor(lam * budget + 1e-9) if reg == "random" else budget
    dist = np.sum((grads[:, None, :] - grads[None, :, :]) ** 2, axis=-1)
    cand = np.asarray(candidates, bool)
    nearest = np.full(len(a), dist[np.ix_(cand, cand)].max())
    available, picks, gains_taken = cand.copy(), [], []
    for _ in range(greedy):
        if not available.any():
            break
        residual = softmax(out) - onehot
        val_grads = np.stack([np.outer(x, y).ravel() for x, y in zip(residual, right, strict=True)])
        gains = grads @ val_grads.mean(axis=0)
        if reg == "facility_location":
            gains = gains + lam * np.sum(
                np.where(cand[None, :], np.maximum(nearest[None, :] - dist, 0.0), 0.0), axis=1
            )
        if reg == "diversity" and picks:
            gains = gains - lam * np.exp(-dist[:, picks] / 2).sum(axis=1)
        best = int(np.argmax(np.where(available, gains, -np.inf)))
        picks.append(best)
        gains_taken.append(gains[best])
        available[best] = False
        step = grads[best].reshape(c, width)
        out -= lr * right @ step.T
        nearest = np.minimum(nearest, dist[best])
    return np.array(picks), np.array(gains_taken)


def random_problem(seed, n=40, v=30, c=4, width=6):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)) * 2
    a = softmax(logits) - np.eye(c)[rng.integers(0, c, n)]
    u = np.concatenate([np.ones((n, 1)), np.abs(rng.normal(size=(n, width - 1)))], axis=1)
    right = np.concatenate([np.ones((v, 1)), np.abs(rng.normal(size=(v, width - 1)))], axis=1)
    return {
        "a": a,
        "u": u,
        "candidates": rng.random(n) > 0.25,
        "logits": rng.normal(size=(v, c)) * 2,
        "right": right,
        "labels": rng.integers(0, c, v),
        "start": rng.normal(size=(c, width)),
    }


@functools.partial(jax.jit, static_argnames=("budget", "reg", "lam", "exact_rows"))
def _glister(a, u, candidates, logits, right, labels, start, key, lr, budget, reg, lam, exact_rows):
    picks, info = selectors.glister(
        OuterProduct(a, u),
        candidates,
        logits,
        right,
        labels,
        budget,
        key,
        lr=lr,
        start_gradient=start,
        regularizer=reg,
        lam=lam,
        exact_rows=exact_rows,
    )
    return picks, info.gains


def run_selector(p, budget, lr, reg="none", lam=0.0, exact_rows=1024, key=0):
    """The selector, jitted (compiled once per configuration), on float32 copies."""
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    arrays = (p["a"], p["u"], p["candidates"], p["logits"], p["right"], p["labels"], p["start"])
    a, u, candidates, logits, right, labels, start = arrays
    return _glister(
        f32(a),
        f32(u),
        jnp.asarray(candidates),
        f32(logits),
        f32(right),
        jnp.asarray(labels),
        f32(start),
        jax.random.key(key),
        lr,
        budget=budget,
        reg=reg,
        lam=lam,
        exact_rows=exact_rows,
    )


@pytest.mark.parametrize(
    ("seed", "shape", "lr", "reg", "lam", "exact_rows"),
    [
        (0, (40, 30, 4, 6), 0.3, "none", 0.0, 1024),
        (1, (40, 30, 4, 6), 0.3, "none", 0.0, 3),  # bounded: few exact rows, full passes
        (2, (40, 30, 4, 1), 0.5, "none", 0.0, 1024),  # "bias": R = 1
        (3, (40, 30, 4, 6), 0.2, "diversity", 0.5, 4),
        (4, (40, 30, 4, 6), 0.2, "facility_location", 0.05, 1024),
    ],
)
def test_selector_matches_numpy(seed, shape, lr, reg, lam, exact_rows):
    n, v, c, width = shape
    p = random_problem(seed, n, v, c, width)
    budget = 9
    picks, gains = run_selector(p, budget, lr, reg, lam, exact_rows)
    ref_picks, ref_gains = glister_reference(
        p["a"],
        p["u"],
        p["candidates"],
        p["logits"],
        p["right"],
        p["labels"],
        budget,
        lr,
        p["start"],
        reg,
        lam,
    )
    greedy = len(ref_picks)
    np.testing.assert_array_equal(np.asarray(picks)[:greedy], ref_picks)
    np.testing.assert_allclose(np.asarray(gains)[:greedy], ref_gains, rtol=2e-4, atol=1e-5)
    assert np.all(np.isnan(np.asarray(gains)[greedy:]))


@pytest.mark.parametrize("lam", [0.25, 0.3])
def test_random_regularizer_returns_exactly_budget(lam):
    # DISTIL returns budget + 1 points whenever (1 - lam) * budget is fractional (lam 0.25,
    # budget 10 gives 11) and, by float rounding, for lam 0.3, budget 10 as well.
    budget = 10
    p = random_problem(6)
    picks = np.asarray(run_selector(p, budget, 0.3, "random", lam)[0])
    assert picks.shape == (budget,) and len(set(picks.tolist())) == budget
    assert np.all(p["candidates"][picks])
    greedy = selectors._glister.greedy_count(budget, "random", lam)
    assert greedy == math.ceil(round((1 - lam) * budget, 9))
    ref, _ = glister_reference(
        p["a"],
        p["u"],
        p["candidates"],
        p["logits"],
        p["right"],
        p["labels"],
        budget,
        0.3,
        p["start"],
        "random",
        lam,
    )
    np.testing.assert_array_equal(picks[:greedy], ref)
    # Another key: the same greedy part, other random picks; the same key: the same picks.
    other = np.asarray(run_selector(p, budget, 0.3, "random", lam, key=1)[0])
    np.testing.assert_array_equal(other[:greedy], picks[:greedy])
    assert set(other[greedy:].tolist()) != set(picks[greedy:].tolist())
    again = np.asarray(run_selector(p, budget, 0.3, "random", lam)[0])
    np.testing.assert_array_equal(again, picks)


@pytest.mark.parametrize("exact_rows", [1024, 2])
def test_selector_distinct_when_gradient_norms_underflow(exact_rows):
    # Points of a saturated model have gradients a (x) u with |a| ~ 1e-20: |a|^2 underflows
    # in float32 (XLA on CPU flushes it to 0), which once left their gain bounds without
    # rounding slack. Greedy then found no contender and returned one index again and again.
    p = random_problem(8, n=40)
    tiny = np.arange(40) >= 8
    p["a"] = np.where(tiny[:, None], p["a"] * 1e-20, p["a"])
    p["candidates"] = np.ones(40, bool)
    budget = 20
    picks, gains = run_selector(p, budget, 0.3, exact_rows=exact_rows)
    picks = np.asarray(picks)
    assert len(set(picks.tolist())) == budget and picks.min() >= 0
    ref_picks, ref_gains = glister_reference(
        p["a"], p["u"], p["candidates"], p["logits"], p["right"], p["labels"],
        budget, 0.3, p["start"], "none", 0.0,
    )  # fmt: skip
    np.testing.assert_array_equal(picks, ref_picks)
    np.testing.assert_allclose(np.asarray(gains), ref_gains, rtol=1e-3)


def test_selector_never_takes_a_nan_gain():
    # Validation logits of NaN make every gain NaN: no pick is better than another.
    p = random_problem(9)
    p["logits"][:] = np.nan
    picks = np.asarray(run_selector(p, 5, 0.3)[0])
    np.testing.assert_array_equal(picks, -1)


def test_selector_unfillable_slots_are_minus_one():
    p = random_problem(7)
    p["candidates"] = np.arange(40) < 3
    picks = np.asarray(run_selector(p, 10, 0.3, "random", 0.3)[0])
    assert sorted(picks[:3].tolist()) == [0, 1, 2] and np.all(picks[3:] == -1)


# --------------------------------------------------------------------------------------
# The strategy end to end on the tiny model
# --------------------------------------------------------------------------------------


def _right(hidden, kind):
    ones = np.ones((len(hidden), 1))
    return {"linear": hidden, "bias": ones, "bias_linear": np.concatenate([ones, hidden], 1)}[kind]


def strategy_reference(params, pool, budget, lr, kind, reg="none", lam=0.0, validation=None):
    logits, hidden = numpy_mlp(params, pool.x)
    probs = softmax(logits)
    predicted = probs.argmax(axis=1)
    labeled, y = np.asarray(pool.labeled), np.asarray(pool.y)
    labels = np.where(labeled & (y >= 0), y, predicted)
    eye = np.eye(probs.shape[1])
    u = _right(hidden, kind)
    at_labels = probs - eye[labels]
    start = at_labels[labeled].T @ u[labeled]
    if validation is None:
        val_logits, val_right, val_labels = logits, u, labels
    else:
        val_logits, val_hidden = numpy_mlp(params, validation[0])
        val_right, val_labels = _right(val_hidden, kind), np.asarray(validation[1])
    picks, _ = glister_reference(
        probs - eye[predicted],
        u,
        ~labeled,
        val_logits,
        val_right,
        val_labels,
        budget,
        lr,
        start,
        reg,
        lam,
    )
    return picks


def validation_set(seed, size=10):
    x = jax.random.normal(jax.random.key(seed), (size, N_FEATURES))
    y = jax.random.randint(jax.random.key(seed + 1), (size,), 0, N_CLASSES)
    return x, y


@pytest.fixture(scope="module")
def pool_with_labels(pool):
    """The shared pool with half of its labeled points' labels known."""
    labeled = np.flatnonzero(np.asarray(pool.labeled))[:6]
    return pool.label(jnp.asarray(labeled), jnp.asarray(labeled % N_CLASSES))


@pytest.mark.parametrize(
    ("kind", "reg", "lam", "use_validation"),
    [
        ("bias_linear", "none", None, False),
        ("linear", "none", None, True),
        ("bias_linear", "diversity", 0.5, False),
        ("bias", "facility_location", 0.1, True),
    ],
)
def test_strategy_matches_numpy(kind, reg, lam, use_validation, model, params, pool_with_labels):
    budget, lr = 5, 0.05
    strategy = jaxal.strategies.glister(
        model, budget, lr=lr, gradient=kind, regularizer=reg, lambda_=lam, batch_size=40
    )
    inputs = {}
    if use_validation:
        vx, vy = validation_set(3)
        inputs = {"validation_x": vx, "validation_y": vy}
    select = jax.jit(strategy.select)
    got = np.asarray(select(params, pool_with_labels, jax.random.key(0), **inputs))
    validation = (inputs["validation_x"], inputs["validation_y"]) if inputs else None
    expected = strategy_reference(
        params, pool_with_labels, budget, lr, kind, reg, lam or 0.0, validation
    )
    np.testing.assert_array_equal(got, expected)


def test_validation_inputs_are_traced(model, params, pool, key):
    budget, lr = 4, 0.5
    strategy = jaxal.strategies.glister(model, budget, lr=lr, batch_size=40)
    al_round = jax.jit(chex.assert_max_traces(jaxal.make_round(strategy), n=1))
    results = []
    for seed in (11, 21):
        vx, vy = validation_set(seed)
        _, indices = al_round(params, pool, key, validation_x=vx, validation_y=vy)
        expected = strategy_reference(params, pool, budget, lr, "bias_linear", validation=(vx, vy))
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
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": "fast"}, TypeError, "lr"),
        ({"regularizer": "Rand", "lambda_": 0.5}, ValueError, "regularizer"),
        ({"regularizer": "diversity"}, ValueError, "lambda_ is required"),
        ({"lambda_": 0.5}, ValueError, "lambda_ applies only"),
        ({"regularizer": "random", "lambda_": 1.0}, ValueError, "lam"),
        ({"regularizer": "random", "lambda_": 0.0}, ValueError, "lam"),
        ({"regularizer": "facility_location", "lambda_": -1.0}, ValueError, "lam"),
        ({"gradient": "weights"}, ValueError, "gradient"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_bad_hyperparameters(hparams, error, match, model):
    with pytest.raises(error, match=match):
        jaxal.strategies.glister(model, 3, **hparams)


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        ({"validation_x": jnp.zeros((4, N_FEATURES))}, ValueError, "together"),
        ({"validation_y": jnp.zeros(4, jnp.int32)}, ValueError, "together"),
        (
            {"validation_x": jnp.zeros((4, N_FEATURES + 1)), "validation_y": jnp.zeros(4, int)},
            ValueError,
            "validation_x must have shape",
        ),
        (
            {"validation_x": jnp.zeros((4, N_FEATURES)), "validation_y": jnp.zeros(3, int)},
            ValueError,
            "validation_y must have shape",
        ),
        (
            {"validation_x": jnp.zeros((2, N_FEATURES)), "validation_y": jnp.array([0, N_CLASSES])},
            ValueError,
            "validation_y must lie in",
        ),
        (
            {"validation_x": jnp.zeros((2, N_FEATURES)), "validation_y": jnp.array([0.0, 1.0])},
            TypeError,
            "integer",
        ),
        (
            {"validation_x": jnp.zeros((0, N_FEATURES)), "validation_y": jnp.zeros(0, int)},
            ValueError,
            "at least one",
        ),
    ],
)
def test_bad_inputs(inputs, error, match, model, params, pool, key):
    strategy = jaxal.strategies.glister(model, 3, batch_size=40)
    with pytest.raises(error, match=match):
        strategy.select(params, pool, key, **inputs)


def test_bad_pool_labels(model, params, pool, key):
    labeled = np.flatnonzero(np.asarray(pool.labeled))[:1]
    bad = pool.label(jnp.asarray(labeled), jnp.array([N_CLASSES]))
    with pytest.raises(ValueError, match="pool.y"):
        jaxal.strategies.glister(model, 3, batch_size=40).select(params, bad, key)


def test_selector_rejects_bad_arrays():
    p = random_problem(8)
    args = (
        jnp.asarray(p["candidates"]),
        jnp.asarray(p["logits"], jnp.float32),
        jnp.asarray(p["right"], jnp.float32),
        jnp.asarray(p["labels"]),
        3,
        jax.random.key(0),
    )
    points = OuterProduct(jnp.asarray(p["a"], jnp.float32), jnp.asarray(p["u"], jnp.float32))
    with pytest.raises(TypeError, match="OuterProduct"):
        selectors.glister(points.materialize(), *args, lr=0.1)
    with pytest.raises(ValueError, match="validation_right"):
        selectors.glister(points, args[0], args[1], args[2][:, :2], *args[3:], lr=0.1)
    with pytest.raises(ValueError, match="validation_labels must lie"):
        selectors.glister(points, *args[:3], args[3] + 10, *args[4:], lr=0.1)
    with pytest.raises(ValueError, match="start_gradient"):
        selectors.glister(points, *args, lr=0.1, start_gradient=jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="budget"):
        selectors.glister(points, *args[:4], 1000, args[5], lr=0.1)
    with pytest.raises(ValueError, match="exact_rows"):
        selectors.glister(points, *args, lr=0.1, exact_rows=0)

"""DeepFool and BIM (jaxal.attacks) and their strategies against NumPy float64 loops."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import attacks
from jaxal.strategies import adversarial
from tests.conftest import softmax

# --------------------------------------------------------------------------------------
# NumPy float64 references. `jacobian(v) -> (logits [C], d logits / d v [C, D])` on a flat
# input v [D]; the loops follow DISTIL's (with its 1e-4 and overshoot for DeepFool).
# --------------------------------------------------------------------------------------


def reference_deepfool(jacobian, x, max_iter, overshoot, num_classes=None):
    x = np.asarray(x, np.float64).ravel()
    logits, _ = jacobian(x)
    order = np.argsort(-logits, kind="stable")[: num_classes or logits.size]
    label = order[0]
    r_tot = np.zeros_like(x)
    steps = 0
    while np.argmax(logits) == label and steps < max_iter:
        _, jac = jacobian(x + (1 + overshoot) * r_tot)
        pert, best = np.inf, None
        for k in order[1:]:
            w = jac[k] - jac[label]
            norm = np.linalg.norm(w)
            value = abs(logits[k] - logits[label]) / norm if norm > 0 else np.inf
            if value < pert:
                pert, best = value, w / norm
        if best is None:
            break
        r_tot = r_tot + (pert + 1e-4) * best
        logits, _ = jacobian(x + (1 + overshoot) * r_tot)
        steps += 1
    flipped = np.argmax(logits) != label
    return np.sum(((1 + overshoot) * r_tot) ** 2), flipped, steps


def reference_bim(jacobian, x, eps, max_iter):
    """Textbook cross-entropy gradient (softmax - onehot), as DISTIL's loss.backward()."""
    x = np.asarray(x, np.float64).ravel()
    logits, _ = jacobian(x)
    label = np.argmax(logits)
    eta = np.zeros_like(x)
    steps = 0
    while True:
        logits, jac = jacobian(x + eta)
        if np.argmax(logits) != label or steps >= max_iter:
            break
        d_logits = softmax(logits)
        d_logits[label] -= 1.0
        grad = jac.T @ d_logits
        if not grad.any():
            break
        eta = eta + eps * np.sign(grad)
        steps += 1
    return np.sum(eta**2), np.argmax(logits) != label, steps


def reference_all(attack, jacobian, x, **kwargs):
    out = [attack(jacobian, point, **kwargs) for point in np.asarray(x, np.float64)]
    sq, flipped, steps = (np.array(column) for column in zip(*out, strict=True))
    return sq, flipped.astype(bool), steps


def reference_order(sq, flipped, candidates, budget):
    """Flipped candidates by ascending ||r||^2, then the others by ||r||^2; ties by index."""
    indices = np.flatnonzero(candidates)
    keys = sorted(indices, key=lambda i: (not flipped[i], sq[i], i))
    return np.array(keys[:budget])


# --------------------------------------------------------------------------------------
# Models: linear (logits = x @ W + b, embedding = x) on any input rank, and conftest's MLP.
# --------------------------------------------------------------------------------------


def linear_model():
    def apply(params, x, rng):
        del rng
        flat = x.reshape(x.shape[0], -1)
        return flat @ params["w"] + params["b"], flat

    return jaxal.Model(apply=apply)


def linear_params(rng, features, classes):
    return {
        "w": rng.normal(size=(features, classes)).astype(np.float32),
        "b": rng.normal(size=classes).astype(np.float32),
    }


def linear_jacobian(params):
    w = np.asarray(params["w"], np.float64)
    b = np.asarray(params["b"], np.float64)
    return lambda v: (v @ w + b, w.T)


def mlp_jacobian(params):
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
    w0, b0 = p["Dense_0"]["kernel"], p["Dense_0"]["bias"]
    w1, b1 = p["Dense_1"]["kernel"], p["Dense_1"]["bias"]

    def jacobian(v):
        pre = v @ w0 + b0
        logits = np.maximum(pre, 0) @ w1 + b1
        return logits, (w1.T * (pre > 0)) @ w0.T

    return jacobian


def run_attack(attack, model, params, x, batch_size=16, **kwargs):
    fn = functools.partial(attack, **kwargs)
    out = attacks.perturbation_scores(fn, model, params, jnp.asarray(x), batch_size)
    return tuple(np.asarray(a) for a in out)


# --------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------


def test_deepfool_binary_linear_is_exact_in_one_step():
    rng = np.random.default_rng(0)
    params = linear_params(rng, 5, 2)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    sq, flipped, steps = run_attack(attacks.deepfool, linear_model(), params, x, overshoot=0.1)
    logits = x.astype(np.float64) @ params["w"] + params["b"]
    w = np.asarray(params["w"][:, 1] - params["w"][:, 0], np.float64)
    distance = np.abs(logits[:, 1] - logits[:, 0]) / np.linalg.norm(w)
    np.testing.assert_allclose(sq, (1.1 * (distance + 1e-4)) ** 2, rtol=1e-4)
    assert flipped.all() and (steps == 1).all()


@pytest.mark.parametrize("num_classes", [None, 3])
def test_deepfool_multiclass_linear_matches_reference(num_classes):
    rng = np.random.default_rng(1)
    params = linear_params(rng, 7, 5)
    x = rng.normal(size=(48, 7)).astype(np.float32)
    got = run_attack(
        attacks.deepfool, linear_model(), params, x, batch_size=16, num_classes=num_classes
    )
    expected = reference_all(
        reference_deepfool,
        linear_jacobian(params),
        x,
        max_iter=50,
        overshoot=0.02,
        num_classes=num_classes,
    )
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    assert got[1].all() and (expected[2] == 1).all()  # exact in one step on an affine model


def test_deepfool_mlp_matches_reference(model, params, pool):
    got = run_attack(attacks.deepfool, model, params, pool.x, batch_size=32)
    expected = reference_all(
        reference_deepfool, mlp_jacobian(params), pool.x, max_iter=50, overshoot=0.02
    )
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-3)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2])
    assert expected[2].max() > 1  # curvature: some points take several steps


@pytest.mark.parametrize("eps", [0.05, 0.125])
def test_bim_mlp_matches_reference(eps, model, params, pool):
    got = run_attack(attacks.bim, model, params, pool.x, batch_size=32, eps=eps)
    expected = reference_all(reference_bim, mlp_jacobian(params), pool.x, eps=eps, max_iter=1000)
    np.testing.assert_array_equal(got[2], expected[2])
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    assert expected[2].max() > 3  # several sign steps


def test_bim_cap_and_inactive_points():
    rng = np.random.default_rng(2)
    params = linear_params(rng, 4, 3)
    x = jnp.asarray(rng.normal(size=(10, 4)).astype(np.float32))
    active = jnp.arange(10) % 3 != 0
    fn = functools.partial(attacks.bim, eps=1e-3, max_iter=4)
    sq, flipped, steps = attacks.perturbation_scores(fn, linear_model(), params, x, 4, active)
    expected = reference_all(reference_bim, linear_jacobian(params), x, eps=1e-3, max_iter=4)
    active = np.asarray(active)
    np.testing.assert_array_equal(np.asarray(steps), np.where(active, expected[2], 0))
    np.testing.assert_array_equal(np.asarray(flipped), active & expected[1])
    np.testing.assert_allclose(np.asarray(sq), np.where(active, expected[0], 0), rtol=1e-5)
    assert (np.asarray(steps)[active] == 4).all()  # eps is tiny: every active point hits the cap


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------


def _dead_zone_model():
    """2 classes, logits = [1 - relu(x0), relu(x0)]: zero input gradient where x0 < 0."""

    def apply(params, x, rng):
        del params, rng
        h = jax.nn.relu(x.reshape(x.shape[0], -1)[:, :1])
        return jnp.concatenate([1.0 - h, h], axis=1), h

    return jaxal.Model(apply=apply)


@pytest.mark.parametrize("name", ["deepfool", "bim"])
def test_points_that_never_flip_rank_last(name):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    x[:, 0] = rng.uniform(-1.0, 1.0, size=32)
    labeled = np.zeros(32, bool)
    labeled[[1, 4, 9]] = True
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    stuck = x[:, 0] < 0
    unlabeled = ~labeled
    # the per-point attack: no movement, no flip, no step counted for zero gradients
    attack = attacks.deepfool if name == "deepfool" else attacks.bim
    sq, flipped, steps = run_attack(attack, _dead_zone_model(), None, x)
    assert (sq[stuck] == 0).all() and not flipped[stuck].any() and (steps[stuck] == 0).all()
    assert flipped[~stuck].all()
    # the score: finite, every stuck point below every flipped one, stuck ones by ||r||^2
    score = np.asarray(adversarial.flip_rank_score(jnp.asarray(sq), flipped, unlabeled))
    assert np.isfinite(score).all()
    assert score[unlabeled & stuck].max() < score[unlabeled & ~stuck].min()
    strategy = getattr(adversarial, name)(_dead_zone_model(), 20, batch_size=8)
    picked = np.asarray(strategy.select(None, pool, jax.random.key(0)))
    flippable = int((unlabeled & ~stuck).sum())
    assert not stuck[picked[:flippable]].any() and stuck[picked[flippable:]].all()
    np.testing.assert_array_equal(picked, reference_order(sq, flipped, unlabeled, 20))


def _strategy_case(name, mlp_params):
    """(strategy factory kwargs, model, params, reference per-point results) for a pool."""
    rng = np.random.default_rng(4)
    if name == "deepfool":
        params = linear_params(rng, 12, 4)
        x = rng.normal(size=(48, 2, 3, 2)).astype(np.float32)
        jacobian = linear_jacobian(params)
        flat = x.reshape(48, -1)
        expected = reference_all(reference_deepfool, jacobian, flat, max_iter=50, overshoot=0.02)
        return {}, linear_model(), params, x, expected
    x = rng.normal(size=(48, 6)).astype(np.float32)
    expected = reference_all(reference_bim, mlp_jacobian(mlp_params), x, eps=0.125, max_iter=1000)
    return {"eps": 0.125}, None, mlp_params, x, expected


@pytest.mark.parametrize("name", ["deepfool", "bim"])
def test_strategy_matches_reference(name, model, params):
    kwargs, case_model, case_params, x, (sq, flipped, _) = _strategy_case(name, params)
    case_model = case_model or model
    labeled = np.zeros(len(x), bool)
    labeled[np.random.default_rng(5).choice(len(x), 10, replace=False)] = True
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    factory = getattr(adversarial, name)
    strategy = factory(case_model, 12, batch_size=16, **kwargs)
    key = jax.random.key(0)
    got = np.asarray(strategy.select(case_params, pool, key))
    np.testing.assert_array_equal(got, reference_order(sq, flipped, ~labeled, 12))
    np.testing.assert_array_equal(np.asarray(jax.jit(strategy.select)(case_params, pool, key)), got)
    score = np.asarray(strategy.score(case_params, pool, key))
    assert np.isneginf(score[labeled]).all()
    np.testing.assert_allclose(score[~labeled & flipped], -sq[~labeled & flipped], rtol=1e-4)


def test_bim_on_4d_inputs_matches_the_flat_reference():
    # (DeepFool on 4-D inputs: test_strategy_matches_reference[deepfool].)
    rng = np.random.default_rng(6)
    params = linear_params(rng, 12, 3)
    x = rng.normal(size=(24, 2, 3, 2)).astype(np.float32)  # 24 = 2 chunks of 12
    sq, flipped, _ = reference_all(
        reference_bim, linear_jacobian(params), x.reshape(24, -1), eps=0.125, max_iter=1000
    )
    strategy = adversarial.bim(linear_model(), 5, eps=0.125, batch_size=12)
    score = np.asarray(strategy.score(params, jaxal.Pool.create(jnp.asarray(x)), jax.random.key(0)))
    np.testing.assert_allclose(score[flipped], -sq[flipped], rtol=1e-6)
    everyone = np.ones(24, bool)
    expected = reference_order(sq, flipped, everyone, 24)
    np.testing.assert_array_equal(np.argsort(-score, kind="stable"), expected)


@pytest.mark.parametrize(
    ("factory", "kwargs", "error", "match"),
    [
        (adversarial.deepfool, {"max_iter": 0}, ValueError, "max_iter"),
        (adversarial.deepfool, {"max_iter": 2.5}, TypeError, "max_iter"),
        (adversarial.deepfool, {"overshoot": -0.1}, ValueError, "overshoot"),
        (adversarial.deepfool, {"overshoot": float("nan")}, ValueError, "overshoot"),
        (adversarial.deepfool, {"overshoot": "0.1"}, TypeError, "overshoot"),
        (adversarial.deepfool, {"num_classes": 1}, ValueError, "num_classes"),
        (adversarial.deepfool, {"batch_size": 0}, ValueError, "batch_size"),
        (adversarial.bim, {"eps": 0.0}, ValueError, "eps"),
        (adversarial.bim, {"eps": float("inf")}, ValueError, "eps"),
        (adversarial.bim, {"eps": True}, TypeError, "eps"),
        (adversarial.bim, {"max_iter": -3}, ValueError, "max_iter"),
    ],
)
def test_bad_hyperparameters(factory, kwargs, error, match):
    with pytest.raises(error, match=match):
        factory(linear_model(), 3, **kwargs)


def test_single_class_model_raises():
    def apply(params, x, rng):
        return x[:, :1], x

    pool = jaxal.Pool.create(jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="C >= 2"):
        adversarial.bim(jaxal.Model(apply=apply), 2).select(None, pool, jax.random.key(0))

"""ALFA-Mix against a NumPy float64 reference of the paper's closed form (and of the
reference code's variant of it), end to end through the strategy."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.strategies.alfamix import cap_schedule, class_anchors, mixing_candidates
from tests.test_herding import labeled_mask, linear_model

D, C = 8, 4


def softmax64(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def anchors_reference(z, labels, members, classes):
    """The mean embedding of each class's members; the mean of all members for a class
    without any."""
    overall = z[members].mean(0)
    return np.stack(
        [
            z[members & (labels == c)].mean(0) if (members & (labels == c)).any() else overall
            for c in range(classes)
        ]
    )


def candidates_reference(z, w, b, labeled, y, caps, budget, guard=0.0):
    """The candidates (bool [N]) of the closed form, float64: per pass (cap) and anchor,
    alpha = eps ||z* - z|| / ||g|| * g / (z* - z + guard) with eps = cap / sqrt(D) and g
    the cross-entropy gradient at the predicted class; the mix alpha z* + (1 - alpha) z is
    a flip if its predicted class differs. Passes stop once more than ``budget`` unlabeled
    points flipped. ``guard`` = 1e-8 is the reference code's divisor, 0 the paper's.
    Also returns the points whose mixes come within 1e-3 of a tie (float32 may differ)."""
    z, w, b = (np.asarray(a, np.float64) for a in (z, w, b))
    logits = z @ w + b
    predicted = logits.argmax(1)
    labels = np.where(y >= 0, y, predicted)
    anchors = anchors_reference(z, labels, labeled, w.shape[1])
    # d CE / d logits = p - onehot(predicted), its predicted entry written as minus the
    # others' sum (1 - p_predicted rounds to 0 once the others are below 1e-16)
    others = np.where(np.eye(w.shape[1])[predicted] > 0, 0.0, softmax64(logits))
    gradient = (others - np.eye(w.shape[1])[predicted] * others.sum(1, keepdims=True)) @ w.T
    unlabeled = ~labeled  # a labeled point alone in its class sits on its anchor (0 / 0)
    z, gradient, predicted = z[unlabeled], gradient[unlabeled], predicted[unlabeled]
    found = np.zeros(len(z), bool)
    fragile = np.zeros(len(z), bool)
    for cap in caps:
        eps = cap / np.sqrt(z.shape[1])
        for anchor in anchors:
            d = anchor - z
            alpha = (eps * np.linalg.norm(d, axis=1) / np.linalg.norm(gradient, axis=1))[:, None]
            alpha = alpha * gradient / (d + guard)
            out = (alpha * anchor + (1 - alpha) * z) @ w + b
            found |= out.argmax(1) != predicted
            own = out[np.arange(len(z)), predicted]
            fragile |= (
                np.abs(own - np.where(np.eye(w.shape[1])[predicted] > 0, -np.inf, out).max(1))
                < 1e-3
            )
        if found.sum() > budget:
            break
    return expand(found, unlabeled), expand(fragile, unlabeled)


def expand(values, mask):
    """bool [N]: ``values`` at the True entries of ``mask``, False elsewhere."""
    out = np.zeros(len(mask), bool)
    out[mask] = values
    return out


def problem(seed, n=60, scale=1.0, known=0.5):
    """Random points, a linear classifier (logits times ``scale``), a labeled set with
    labels for a fraction ``known`` of it (-1, not arrived, for the rest)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    params = {
        "w": jnp.asarray(scale * rng.normal(size=(D, C)), jnp.float32),
        "b": jnp.asarray(scale * rng.normal(size=C) * 0.1, jnp.float32),
    }
    labeled = labeled_mask(n, 12, seed)
    y = np.where(labeled & (rng.uniform(size=n) < known), rng.integers(C, size=n), -1)
    return x, params, labeled, y.astype(np.int32)


@functools.cache
def _alfamix(budget, **hparams):
    return jaxal.strategies.alfamix(linear_model(), budget, **hparams)


@pytest.mark.parametrize(
    ("seed", "scale", "hparams"),
    [
        (0, 1.0, {}),
        (1, 1.0, {"alpha_cap": 0.05, "grow": False}),
        (6, 30.0, {"alpha_cap": 0.5, "grow": False}),
    ],
)
def test_candidates_come_first_as_the_closed_form_says(seed, scale, hparams):
    """With budget = every unlabeled point, every pass runs and the picks start with all
    the candidates; they are the float64 closed form's (the paper's, and the reference
    code's with its 1e-8 guard: the same here), labeled points without a label counted
    under their predicted class. Scale 30: some candidates' runner-up logits are more
    than 90 below the top one, a softmax whose other classes underflow in float32, where
    the gradient's direction must still come out."""
    x, params, labeled, y = problem(seed, scale=scale)
    budget = int((~labeled).sum())
    caps = cap_schedule(hparams.get("alpha_cap", 0.2), hparams.get("grow", True))
    expected, fragile = candidates_reference(x, params["w"], params["b"], labeled, y, caps, budget)
    guarded, _ = candidates_reference(x, params["w"], params["b"], labeled, y, caps, budget, 1e-8)
    np.testing.assert_array_equal(guarded, expected)
    count = int(expected.sum())
    assert 3 <= count < budget - 3 and fragile.sum() <= 2
    if scale > 1:
        top_two = np.sort(x.astype(np.float64) @ np.asarray(params["w"], np.float64), 1)[:, -2:]
        assert (expected & (top_two[:, 1] - top_two[:, 0] > 90)).any()
    pool = jaxal.Pool.create(x, y, jnp.asarray(labeled))
    picks = np.asarray(_alfamix(budget, **hparams).select(params, pool, jax.random.key(seed)))
    assert len(set(picks.tolist())) == budget and not labeled[picks].any()
    mismatch = set(picks[:count].tolist()) ^ set(np.flatnonzero(expected).tolist())
    assert mismatch <= set(np.flatnonzero(fragile).tolist())


@pytest.mark.parametrize("budget", [2, 5])
def test_passes_stop_once_more_than_budget_candidates(budget):
    x, params, labeled, y = problem(5, known=1.0)
    caps = cap_schedule(0.03125, True)
    expected, fragile = candidates_reference(x, params["w"], params["b"], labeled, y, caps, budget)
    assert budget < expected.sum() < (~labeled).sum() // 2 and not fragile.any()
    embeddings = jnp.asarray(x)
    anchors = class_anchors(embeddings, jnp.asarray(y), jnp.asarray(labeled), C)
    got = mixing_candidates(
        linear_model().head, params, embeddings, anchors, caps, jnp.asarray(~labeled), budget, 16
    )
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_anchors_are_class_means_with_the_overall_mean_for_empty_classes():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(30, D)).astype(np.float32)
    labels = rng.integers(3, size=30)  # class 3 of 4 never occurs
    members = labeled_mask(30, 12, 4)
    got = class_anchors(jnp.asarray(z), jnp.asarray(labels), jnp.asarray(members), 4)
    np.testing.assert_allclose(
        np.asarray(got), anchors_reference(z, labels, members, 4), rtol=1e-5, atol=1e-6
    )


def separated_blobs(seed, n=80, centers=4):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, D)) * 10
    blob = rng.integers(centers, size=n)
    return (means[blob] + rng.normal(size=(n, D)) * 0.3).astype(np.float32), blob


def nearest_to_mean(points, members):
    mean = points[members].astype(np.float64).mean(0)
    return int(members[np.argmin(((points[members] - mean) ** 2).sum(1))])


def test_clusters_the_candidates():
    """Separated blobs, one pass: k-means with budget = the number of blobs holding
    candidates picks, per blob, the candidate nearest the mean of its candidates."""
    x, blob = separated_blobs(5)
    rng = np.random.default_rng(5)
    params = {
        "w": jnp.asarray(rng.normal(size=(D, C)), jnp.float32),
        "b": jnp.zeros(C, jnp.float32),
    }
    labeled = labeled_mask(len(x), 10, 5)
    y = np.full(len(x), -1, np.int32)
    caps = cap_schedule(1.0, False)
    chosen, fragile = candidates_reference(x, params["w"], params["b"], labeled, y, caps, 10**6)
    assert not fragile[chosen].any()
    budget = len(set(blob[chosen].tolist()))
    assert budget >= 2 and chosen.sum() > budget
    expected = {nearest_to_mean(x, np.flatnonzero(chosen & (blob == k))) for k in set(blob[chosen])}
    strategy = _alfamix(budget, alpha_cap=1.0, grow=False, normalize=False)
    picks = strategy.select(
        params, jaxal.Pool.create(x, labeled=jnp.asarray(labeled)), jax.random.key(5)
    )
    assert set(np.asarray(picks).tolist()) == expected


def test_cold_start_clusters_every_point():
    """No labeled point, no anchor: k-means over every point (unit-normalized)."""
    x, blob = separated_blobs(6)
    params = {"w": jnp.ones((D, C), jnp.float32), "b": jnp.zeros(C, jnp.float32)}
    picks = _alfamix(4).select(params, jaxal.Pool.create(x), jax.random.key(6))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = {nearest_to_mean(unit, np.flatnonzero(blob == k)) for k in range(4)}
    assert set(np.asarray(picks).tolist()) == expected


def test_cap_schedule():
    assert cap_schedule(0.2, True) == (0.2, 0.4, 0.6000000000000001, 0.8, 1.0)
    assert len(cap_schedule(0.03125, True)) == 32 and cap_schedule(0.3, False) == (0.3,)
    assert cap_schedule(1.0, True) == (1.0,)


@pytest.mark.parametrize(
    ("hparams", "error", "match"),
    [
        ({"alpha_cap": 0.0}, ValueError, "alpha_cap"),
        ({"alpha_cap": 1.5}, ValueError, "alpha_cap"),
        ({"grow": 1}, TypeError, "grow"),
        ({"normalize": "yes"}, TypeError, "normalize"),
        ({"n_init": 0}, ValueError, "n_init"),
    ],
)
def test_hyperparameter_errors(hparams, error, match):
    with pytest.raises(error, match=match):
        jaxal.strategies.alfamix(linear_model(), 3, **hparams)


def test_needs_a_head():
    headless = jaxal.Model(lambda params, x, rng: (x, x))
    with pytest.raises(TypeError, match="needs a head"):
        jaxal.strategies.alfamix(headless, 3)


def test_jaxal_run_uses_the_modules_logits_layer_as_the_head():
    """``jaxal run`` builds its models without a head; ALFA-Mix gets the last Dense layer
    (embedding -> logits) as one, which reproduces the module's logits."""
    from jaxal.data import Dataset
    from jaxal.runner.setup import build_strategy, last_dense_head
    from jaxal.train import MODELS, trainer

    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 16)).astype(np.float32)
    dataset = Dataset(x, np.arange(8) % 3, x, np.arange(8) % 3, 3, "tiny")
    module = MODELS["mlp"](num_classes=3)
    train = trainer(module, steps=1)
    head = last_dense_head(module, dataset, train)
    params = train.init(jax.random.key(1), jnp.asarray(x)).params
    logits, embedding = module.apply(params, jnp.asarray(x), train=False)
    np.testing.assert_allclose(
        np.asarray(head(params, embedding)), np.asarray(logits), rtol=1e-5, atol=1e-6
    )
    model = jaxal.from_flax(module)
    strategy = build_strategy("alfamix", model, 2, {}, module, dataset, train)
    assert strategy.name == "alfamix" and model.head is None
    assert build_strategy("bald", model, 2, {}, module, dataset, train).name == "bald"

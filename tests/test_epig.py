"""EPIG against a NumPy float64 evaluation of its definition (the exact joint of the two
labels over the S samples), its BALD limit, and the strategy end to end with its own
consistent dropout masks. (baal, whose EPIG is the one peer implementation, is not a
test dependency.)"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.model import mc_map
from jaxal.scores import expected_predictive_information_gain
from jaxal.strategies.epig import pool_targets
from tests import reference

# --------------------------------------------------------------------------------------
# NumPy float64 references


def as_probs(probs):
    """float64, each row summing to 1 (float32 rows may be off by a rounding error)."""
    probs = np.asarray(probs, np.float64)
    return probs / probs.sum(-1, keepdims=True)


def epig_reference(probs, target_probs, weights=None):
    """(1 / sum w) sum_t w_t KL[p(y, y* | x, x*_t) || p(y | x) p(y* | x*_t)], the joint
    mean_s p_s(y | x) p_s(y* | x*_t) over the S samples. probs [S, N, C], target_probs
    [S, M, C] -> [N]."""
    probs, target_probs = as_probs(probs), as_probs(target_probs)
    joint = np.einsum("snc,smd->nmcd", probs, target_probs) / probs.shape[0]
    independent = np.einsum("nc,md->nmcd", probs.mean(0), target_probs.mean(0))
    ratio = np.where(joint > 0, joint / np.where(joint > 0, independent, 1.0), 1.0)
    kl = np.sum(joint * np.log(ratio), axis=(2, 3))  # [N, M]
    weights = np.ones(target_probs.shape[1]) if weights is None else np.asarray(weights)
    return kl @ weights / weights.sum()


def epig_entropy_form(probs, target_probs):
    """The same as H(y) + mean_t H(y*_t) - mean_t H(y, y*_t)."""
    probs, target_probs = as_probs(probs), as_probs(target_probs)
    joint = np.einsum("snc,smd->nmcd", probs, target_probs) / probs.shape[0]
    n, m = joint.shape[:2]
    joint_entropy = reference.entropy(joint.reshape(n, m, -1)).mean(1)
    return (
        reference.entropy(probs.mean(0))
        + reference.entropy(target_probs.mean(0)).mean()
        - joint_entropy
    )


def softmax64(logits):
    logits = np.asarray(logits, np.float64)
    return as_probs(np.exp(logits - logits.max(-1, keepdims=True)))


def random_log_probs(rng, shape, scale=2.0):
    return jax.nn.log_softmax(jnp.asarray(rng.normal(size=shape) * scale, jnp.float32), -1)


# --------------------------------------------------------------------------------------
# The score

epig_score = jax.jit(expected_predictive_information_gain, static_argnames="chunk_size")


@pytest.mark.parametrize(
    ("seed", "s", "n", "m", "c", "chunk_size"),
    [(0, 2, 5, 1, 2, None), (1, 7, 13, 5, 4, 3), (2, 20, 9, 30, 10, 1), (3, 5, 17, 4, 3, 16)],
)
def test_score_matches_the_definition(seed, s, n, m, c, chunk_size):
    rng = np.random.default_rng(seed)
    log_probs, target_log_probs = random_log_probs(rng, (s, n, c)), random_log_probs(rng, (s, m, c))
    expected = epig_reference(np.exp(log_probs), np.exp(target_log_probs))
    np.testing.assert_allclose(
        epig_entropy_form(np.exp(log_probs), np.exp(target_log_probs)), expected, atol=1e-12
    )
    got = epig_score(log_probs, target_log_probs, chunk_size=chunk_size)
    assert got.dtype == jnp.float32 and got.shape == (n,)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=5e-7)
    weights = rng.uniform(size=m)
    weighted = epig_score(log_probs, target_log_probs, jnp.asarray(weights, jnp.float32))
    np.testing.assert_allclose(
        np.asarray(weighted),
        epig_reference(np.exp(log_probs), np.exp(target_log_probs), weights),
        rtol=1e-4,
        atol=5e-7,
    )
    assert np.all(np.asarray(got) <= np.log(c) + 1e-6)


def test_point_as_its_own_target_is_bounded_by_bald_and_equals_it_when_samples_are_certain():
    """I(y; y') of two draws from one network <= I(y; theta) (BALD), with equality when
    every sample puts all its mass on one class (both are then H(mean_s p_s))."""
    rng = np.random.default_rng(4)
    itself = jax.vmap(lambda lp: epig_score(lp[:, None], lp[:, None])[0], in_axes=1)
    log_probs = random_log_probs(rng, (8, 40, 5))
    probs = np.exp(np.asarray(log_probs, np.float64))
    got = np.asarray(itself(log_probs))
    np.testing.assert_allclose(
        got,
        [epig_reference(p, p)[0] for p in probs[:, :, None].swapaxes(0, 1)],
        rtol=1e-4,
        atol=5e-7,
    )
    assert np.all(got <= reference.mutual_information(probs) + 1e-6)
    assert np.mean(got < reference.mutual_information(probs) - 1e-3) > 0.5  # strict, mostly
    # Certain samples: one class 1e4 above the others, a one-hot softmax per sample (a
    # saturated model); the samples of some points disagree, those of the first 10 agree.
    classes = rng.integers(5, size=(8, 40))
    classes[:, :10] = classes[:1, :10]
    certain = jax.nn.log_softmax(1e4 * jax.nn.one_hot(classes, 5), -1)
    one_hot = np.exp(np.asarray(certain, np.float64))
    assert set(np.unique(one_hot)) == {0.0, 1.0}
    bald = reference.mutual_information(one_hot)
    assert bald.max() > 0.5 and np.all(bald[:10] == 0)
    np.testing.assert_allclose(np.asarray(itself(certain)), bald, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bald, reference.entropy(one_hot.mean(0)), atol=1e-12)


def test_finite_where_probabilities_are_subnormal():
    """Log-probabilities near -90..-100 (probabilities below float32's smallest normal,
    flushed to zero by XLA on CPU): a mean of them, or a joint entry, is 0 in float32, yet
    the score stays finite and matches the float64 definition."""
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 12, 4))
    logits[..., 0] -= 95.0 + 5 * rng.uniform(size=(6, 12))  # class 0: p ~ 1e-41..1e-43
    logits[:3, :, 1] += 30.0  # half the samples very sure of class 1
    log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), -1)
    target_log_probs = log_probs[:, :5]
    got = np.asarray(epig_score(log_probs, target_log_probs))
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    probs = softmax64(logits)
    np.testing.assert_allclose(got, epig_reference(probs, probs[:, :5]), rtol=1e-4, atol=1e-6)


def test_targets_that_are_not_finite_or_weightless_are_left_out():
    rng = np.random.default_rng(6)
    log_probs, targets = random_log_probs(rng, (4, 9, 3)), random_log_probs(rng, (4, 6, 3))
    poisoned = targets.at[1, 2, 0].set(jnp.nan)
    kept = np.array([0, 1, 3, 4, 5])
    expected = epig_reference(np.exp(log_probs), np.exp(targets)[:, kept])
    np.testing.assert_allclose(
        np.asarray(epig_score(log_probs, poisoned)), expected, rtol=1e-4, atol=5e-7
    )
    weights = jnp.ones(6).at[2].set(0.0)
    np.testing.assert_allclose(
        np.asarray(epig_score(log_probs, targets, weights)), expected, rtol=1e-4, atol=5e-7
    )
    nothing = epig_score(log_probs, targets, jnp.zeros(6))
    np.testing.assert_array_equal(np.asarray(nothing), 0.0)
    nan_point = np.asarray(epig_score(log_probs.at[0, 3, 1].set(jnp.nan), targets))
    assert np.isnan(nan_point[3]) and np.all(np.isfinite(np.delete(nan_point, 3)))


def test_score_shape_errors():
    with pytest.raises(ValueError, match="target_log_probs must have shape"):
        epig_score(jnp.zeros((3, 4, 2)), jnp.zeros((2, 4, 2)))


# --------------------------------------------------------------------------------------
# The strategy

D, C, RATE = 6, 4, 0.5


def keep_masks(key, mc_samples):
    """bool [S, D]: the units sample s keeps, the same for every point (consistent
    samples), read through an identity head from the first of ``jax.random.split(key)``."""
    probe = jaxal.Model(lambda p, x, rng: (x, x), head=lambda p, e: e, head_dropout=RATE)
    dropout_key = jax.random.split(key)[0]
    ones = jnp.ones((3, D))
    dropped = mc_map(
        probe,
        None,
        ones,
        dropout_key,
        mc_samples,
        8,
        lambda s: jnp.swapaxes(s, 0, 1),
        consistent=True,
        logits=True,
    )
    masks = np.asarray(dropped) != 0  # [3, S, D]
    assert (masks == masks[:1]).all()  # the same units for every point
    return masks[0]


def mc_probs(x, params, keep):
    """float64 [S, N, C]: the linear probe's softmax under each sample's inverted dropout."""
    x = np.asarray(x, np.float64)
    kernel, bias = (np.asarray(params[k], np.float64) for k in ("kernel", "bias"))
    return np.stack([softmax64((x * k / (1 - RATE)) @ kernel + bias) for k in keep])


def probe_problem(seed, n=40, scale=2.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    params = {
        "kernel": jnp.asarray(scale * rng.normal(size=(D, C)), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=C), jnp.float32),
    }
    labeled = np.zeros(n, bool)
    labeled[rng.choice(n, 6, replace=False)] = True
    return x, params, jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))


@functools.cache
def _epig(budget, **hparams):
    return jaxal.strategies.epig(jaxal.linear_probe(dropout=RATE), budget, **hparams)


# One strategy and one target shape for most tests: each compiles once.
MC, TARGETS = 6, 9


def strategy_problem(seed, scale=2.0):
    x, params, pool = probe_problem(seed, scale=scale)
    return x, params, pool, jax.random.key(seed + 1), jnp.asarray(x[:TARGETS] + 0.5)


@pytest.mark.parametrize("scale", [2.0, 1e4])
def test_strategy_matches_the_reference_with_its_own_masks(scale):
    """Given targets, and targets drawn from the pool (``target_samples`` distinct pool
    points, from the second half of the key): scores and picks as the float64 definition
    over the strategy's consistent dropout masks; a saturated probe (logits 1e4 apart)
    stays finite."""
    x, params, pool, key, targets = strategy_problem(7, scale)
    strategy = _epig(5, mc_samples=MC, target_samples=TARGETS)
    drawn = np.asarray(pool_targets(40, TARGETS, jax.random.split(key)[1]))
    assert len(set(drawn.tolist())) == TARGETS and drawn.min() >= 0 and drawn.max() < 40
    assert len(pool_targets(40, 100, key)) == 40  # at most the pool
    keep = keep_masks(key, MC)
    probs = mc_probs(x, params, keep)
    labeled = np.asarray(pool.labeled)
    for given, target_x in ((targets, targets), (None, x[drawn])):
        inputs = {} if given is None else {"target_x": given}
        got = np.asarray(strategy.score(params, pool, key, **inputs))
        expected = epig_reference(probs, mc_probs(target_x, params, keep))
        assert np.all(np.isneginf(got[labeled]))
        np.testing.assert_allclose(got[~labeled], expected[~labeled], rtol=2e-4, atol=1e-6)
        # The picks: 5 distinct unlabeled points with the 5 highest reference scores (up
        # to rounding: a saturated probe has ties).
        picks = np.asarray(strategy.select(params, pool, key, **inputs))
        assert len(set(picks.tolist())) == 5 and not labeled[picks].any()
        best = np.sort(np.where(labeled, -np.inf, expected))[::-1][:5]
        np.testing.assert_allclose(np.sort(expected[picks])[::-1], best, rtol=2e-4, atol=1e-6)


def test_chunks_and_batches_do_not_change_the_scores():
    _, params, pool, key, targets = strategy_problem(11)
    scores = [
        np.asarray(_epig(5, mc_samples=MC, **hp).score(params, pool, key, target_x=targets))
        for hp in ({"target_samples": TARGETS}, {"chunk_size": 3, "batch_size": 7})
    ]
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6, atol=1e-7)


def test_a_non_finite_target_is_dropped_under_jit_and_refused_outside():
    x, params, pool, key, targets = strategy_problem(13)
    strategy = _epig(5, mc_samples=MC, target_samples=TARGETS)
    poisoned = targets.at[2, 0].set(jnp.nan)
    with pytest.raises(ValueError, match="target_x must be finite"):
        strategy.select(params, pool, key, target_x=poisoned)
    keep = keep_masks(key, MC)
    kept = np.asarray(np.delete(np.asarray(targets), 2, axis=0))
    expected = epig_reference(mc_probs(x, params, keep), mc_probs(kept, params, keep))
    got = np.asarray(jax.jit(strategy.score)(params, pool, key, target_x=poisoned))
    unlabeled = ~np.asarray(pool.labeled)
    np.testing.assert_allclose(got[unlabeled], expected[unlabeled], rtol=2e-4, atol=1e-6)


def test_power_batches_through_the_stochastic_wrapper():
    """stochastic(epig, mode="power") draws from EPIG^beta: its picks are the Gumbel top-k
    of the EPIG scores under its draw key."""
    _, params, pool, key, targets = strategy_problem(15)
    inner = _epig(5, mc_samples=MC, target_samples=TARGETS)
    wrapped = jaxal.strategies.stochastic(inner, mode="power", beta=2.0)
    assert wrapped.inputs == ("target_x",)
    score_key, draw_key = jax.random.split(key)
    scores = inner.score(params, pool, score_key, target_x=targets)
    expected = jaxal.selectors.stochastic_top_k(
        scores, ~pool.labeled, 5, draw_key, mode="power", beta=2.0
    )
    got = wrapped.select(params, pool, key, target_x=targets)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


@pytest.mark.parametrize(
    ("hparams", "error", "match"),
    [
        ({"mc_samples": 1}, ValueError, "mc_samples >= 2"),
        ({"target_samples": 0}, ValueError, "target_samples"),
        ({"target_samples": 2.5}, TypeError, "target_samples"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
    ],
)
def test_hyperparameter_errors(hparams, error, match):
    with pytest.raises(error, match=match):
        jaxal.strategies.epig(jaxal.linear_probe(), 3, **hparams)


def test_target_shape_errors():
    _, params, pool, _, _ = strategy_problem(17)
    strategy = _epig(5, mc_samples=MC, target_samples=TARGETS)
    for bad in (jnp.zeros((0, D)), jnp.zeros((3, D + 1)), jnp.zeros(D)):
        with pytest.raises(ValueError, match="target_x must be"):
            strategy.select(params, pool, jax.random.key(0), target_x=bad)


def test_streaming_refuses_it():
    """A point's EPIG depends on the targets, which a chunk-by-chunk stream cannot share."""
    x, params, _, key, _ = strategy_problem(19)
    with pytest.raises(TypeError, match="select on the pool in memory"):
        jaxal.streaming.top_k(_epig(5, mc_samples=MC, target_samples=TARGETS), params, x, key)

"""jaxal.scores against the float64 NumPy reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import scores

try:
    from tests import reference as ref
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference as ref

SHAPES = [(1, 2), (13, 3), (5, 100)]
SEEDS = [0, 1, 2]
ATOL = 2e-5

# Jitted entry points: one compilation per shape (eager dispatch compiles every primitive
# separately and is ~10x slower on CPU). test_scores_under_jit_match checks jit == eager.
ENTROPY = jax.jit(scores.entropy)
LEAST_CONFIDENCE = jax.jit(scores.least_confidence)
MARGIN = jax.jit(scores.margin)
MUTUAL_INFORMATION = jax.jit(scores.mutual_information)


def dirichlet(seed: int, shape: tuple[int, ...], alpha: float = 1.0) -> np.ndarray:
    """float32 probabilities of ``shape`` (last axis = classes), rows renormalized in f32."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(shape[-1], alpha), size=shape[:-1]).astype(np.float32)
    return p / p.sum(axis=-1, keepdims=True)


def saturated(seed: int, n: int, c: int) -> np.ndarray:
    """Softmax of huge logits: many entries underflow to exactly 0, some rows one-hot."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c)).astype(np.float32) * 200.0
    return np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))


@pytest.mark.parametrize("shape", SHAPES)
def test_entropy_matches_reference(shape):
    for seed in SEEDS:
        for alpha in (0.1, 1.0):
            p = dirichlet(seed, shape, alpha)
            got = np.asarray(ENTROPY(jnp.asarray(p)))
            assert got.shape == shape[:-1]
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, ref.entropy(p), atol=ATOL, rtol=1e-5)
            assert np.all(got >= -1e-6) and np.all(got <= np.log(shape[-1]) + 1e-5)


def test_entropy_batched_leading_axes():
    p = dirichlet(3, (4, 6, 5))
    got = np.asarray(ENTROPY(jnp.asarray(p)))
    assert got.shape == (4, 6)
    np.testing.assert_allclose(got, ref.entropy(p), atol=ATOL, rtol=1e-5)


def test_entropy_uniform_is_log_c():
    for c in (2, 3, 10):
        got = np.asarray(ENTROPY(jnp.full((4, c), 1.0 / c, jnp.float32)))
        np.testing.assert_allclose(got, np.log(c), rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_least_confidence_matches_reference(shape):
    for seed in SEEDS:
        p = dirichlet(seed, shape)
        got = np.asarray(LEAST_CONFIDENCE(jnp.asarray(p)))
        assert got.shape == shape[:-1]
        np.testing.assert_allclose(got, ref.least_confidence(p), atol=1e-6)
        assert np.all(got >= 0) and np.all(got <= 1 - 1 / shape[-1] + 1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_margin_matches_reference(shape):
    for seed in SEEDS:
        p = dirichlet(seed, shape)
        got = np.asarray(MARGIN(jnp.asarray(p)))
        assert got.shape == shape[:-1]
        np.testing.assert_allclose(got, ref.margin(p), atol=1e-6)
        assert np.all(got <= 0) and np.all(got >= -1)


def test_margin_ties_are_zero():
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.4, 0.4], [0.0, 0.0, 1.0]], np.float32)
    got = np.asarray(MARGIN(jnp.asarray(p)))
    np.testing.assert_array_equal(got, np.array([0.0, 0.0, -1.0], np.float32))


@pytest.mark.parametrize("samples,n,c", [(1, 5, 3), (2, 7, 2), (5, 13, 4), (8, 6, 10)])
def test_mutual_information_matches_reference(samples, n, c):
    for seed in SEEDS:
        for alpha in (0.3, 3.0):
            p = dirichlet(seed, (samples, n, c), alpha)
            got = np.asarray(MUTUAL_INFORMATION(jnp.asarray(p)))
            assert got.shape == (n,)
            np.testing.assert_allclose(got, ref.mutual_information(p), atol=ATOL, rtol=1e-4)
            assert np.all(got >= 0.0)
            assert np.all(got <= np.log(c) + 1e-5)


def test_mutual_information_nonnegative_near_zero():
    # Samples that agree up to tiny perturbations: the unclipped difference can round
    # below zero; the score must still be >= 0.
    for seed in SEEDS:
        base = dirichlet(seed, (64, 5))
        rng = np.random.default_rng(seed + 100)
        noisy = base[None] * (1 + 1e-6 * rng.normal(size=(6, 64, 5)).astype(np.float32))
        noisy = (noisy / noisy.sum(-1, keepdims=True)).astype(np.float32)
        got = np.asarray(MUTUAL_INFORMATION(jnp.asarray(noisy)))
        assert np.all(got >= 0.0)
        assert np.all(got < 1e-5)


@pytest.mark.parametrize("samples", [1, 2])
def test_mutual_information_zero_for_identical_samples_exact(samples):
    # With S in {1, 2}, mean_s p == p exactly in float32, so eagerly I is exactly 0.
    p = dirichlet(7, (20, 6))
    mc = jnp.asarray(np.broadcast_to(p, (samples, *p.shape)))
    eager = np.asarray(scores.mutual_information(mc))
    np.testing.assert_array_equal(eager, np.zeros(20, np.float32))
    # Under jit, XLA fuses the two entropies with different reduction orders: H(mean) and
    # mean H can differ by one ulp of log C (observed 1.19e-07), so only round-off is left.
    jitted = np.asarray(MUTUAL_INFORMATION(mc))
    assert np.all(jitted >= 0.0)
    np.testing.assert_allclose(jitted, 0.0, atol=1e-6)


@pytest.mark.parametrize("samples", [3, 8])
def test_mutual_information_zero_for_identical_samples(samples):
    # Other S: the float32 mean may round (3p is not exact), so only round-off is left.
    p = dirichlet(8, (20, 6))
    mc = np.broadcast_to(p, (samples, *p.shape)).copy()
    got = np.asarray(MUTUAL_INFORMATION(jnp.asarray(mc)))
    assert np.all(got >= 0.0)
    np.testing.assert_allclose(got, 0.0, atol=1e-6)


def test_mutual_information_disagreeing_one_hot_samples():
    # Two confident samples that disagree: I = H(mean) - 0 = log 2.
    mc = np.array([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]], np.float32)
    got = np.asarray(MUTUAL_INFORMATION(jnp.asarray(mc)))
    np.testing.assert_allclose(got, [np.log(2.0)], rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_saturated_softmax_scores_are_finite(seed):
    p = saturated(seed, 40, 6)
    assert np.any(p == 0.0), "the fixture must contain exact zeros"
    assert np.any(np.max(p, axis=-1) == 1.0), "the fixture must contain one-hot rows"
    ent = np.asarray(ENTROPY(jnp.asarray(p)))
    assert np.all(np.isfinite(ent))
    np.testing.assert_allclose(ent, ref.entropy(p), atol=ATOL)
    for fn in (LEAST_CONFIDENCE, MARGIN):
        assert np.all(np.isfinite(np.asarray(fn(jnp.asarray(p)))))
    mc = np.stack([p, saturated(seed + 10, 40, 6)])
    mi = np.asarray(MUTUAL_INFORMATION(jnp.asarray(mc)))
    assert np.all(np.isfinite(mi)) and np.all(mi >= 0)
    np.testing.assert_allclose(mi, ref.mutual_information(mc), atol=ATOL)


def test_entropy_one_hot_rows_are_exactly_zero():
    p = jnp.asarray(np.eye(5, dtype=np.float32)[[0, 3, 4, 1]])
    for fn in (scores.entropy, ENTROPY):  # eager and jitted
        np.testing.assert_array_equal(np.asarray(fn(p)), np.zeros(4, np.float32))


def test_entropy_saturated_rows_exact_zero():
    logits = jnp.array([[1000.0, 0.0, -1000.0], [0.0, 500.0, 0.0]], jnp.float32)
    p = jax.nn.softmax(logits, axis=-1)
    got = np.asarray(ENTROPY(p))
    assert np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, np.zeros(2, np.float32))


def test_scores_under_jit_match():
    p = jnp.asarray(dirichlet(11, (9, 4)))
    mc = jnp.asarray(dirichlet(12, (3, 9, 4)))
    for fn, x in [
        (scores.entropy, p),
        (scores.least_confidence, p),
        (scores.margin, p),
        (scores.mutual_information, mc),
    ]:
        np.testing.assert_allclose(np.asarray(jax.jit(fn)(x)), np.asarray(fn(x)), atol=1e-6)


def test_mutual_information_finite_when_the_mean_underflows():
    # One sample gives a class 8.6e-38 (a normal float32), the others 0: the mean over ten
    # samples, 8.6e-39, is subnormal, and XLA on CPU flushes it to 0. A log of that mean
    # made the KL term -inf; taken in log space the score is the float64 value.
    mc = np.zeros((10, 3, 4), np.float32)
    mc[:, :, 0] = 1.0
    mc[:5, 1] = [0.0, 1.0, 0.0, 0.0]
    mc[3, 2] = [1.0 - 0.5, 8.6e-38, 0.5, 0.0]
    mc[3, 0] = [1.0, 8.6e-38, 0.0, 0.0]
    for mi in (scores.mutual_information(mc), MUTUAL_INFORMATION(mc)):
        mi = np.asarray(mi)
        assert np.all(np.isfinite(mi))
        np.testing.assert_allclose(mi, ref.mutual_information(mc), atol=ATOL, rtol=1e-5)


def test_log_mean_matches_float64_below_the_normal_range():
    rng = np.random.default_rng(3)
    probs = (rng.random((6, 50)) * 10.0 ** rng.integers(-45, 0, (6, 50))).astype(np.float32)
    probs[:, :5] = 0.0
    probs[0, 5:10] = 1e-37  # mean 1.7e-38 and below: near or under the normal range
    got = np.asarray(jax.jit(scores.log_mean)(probs))
    with np.errstate(divide="ignore"):
        want = np.log(np.asarray(probs, np.float64).mean(axis=0))
    np.testing.assert_array_equal(got[:5], -np.inf)
    np.testing.assert_allclose(got[5:], want[5:], rtol=1e-5)


def softmax64(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("scale", [1.0, 8.0, 200.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_mutual_information_from_logits_matches_float64(seed, scale):
    """Mild, confident and saturated logits (at 200 most probabilities underflow float32,
    so log means below the normal range take the log-space path)."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(7, 33, 5)) * scale).astype(np.float32)
    got = np.asarray(jax.jit(scores.mutual_information_from_logits)(jnp.asarray(logits)))
    assert np.all(np.isfinite(got)) and np.all(got >= 0)
    np.testing.assert_allclose(got, ref.mutual_information(softmax64(logits)), atol=ATOL)


def test_mutual_information_from_logits_equals_the_probability_form():
    logits = np.random.default_rng(9).normal(size=(10, 64, 6)).astype(np.float32) * 3
    from_logits = jax.jit(scores.mutual_information_from_logits)(jnp.asarray(logits))
    from_probs = MUTUAL_INFORMATION(jax.nn.softmax(jnp.asarray(logits), axis=-1))
    np.testing.assert_allclose(np.asarray(from_logits), np.asarray(from_probs), atol=1e-6)


def test_log_mean_normal_and_log_space_paths_agree_with_float64():
    """The same values once with every mean in the normal range (the log of the mean) and
    once with one extra column whose mean is subnormal (the whole call in log space)."""
    rng = np.random.default_rng(4)
    probs = rng.random((8, 40)).astype(np.float32)
    probs[:, :3] = 0.0
    low = np.zeros((8, 1), np.float32)
    low[0] = 2e-38  # mean 2.5e-39: below float32's normal range
    want = np.log(np.asarray(probs, np.float64)[:, 3:].mean(axis=0))
    for columns in (probs, np.concatenate([probs, low], axis=1)):
        got = np.asarray(jax.jit(scores.log_mean)(jnp.asarray(columns)))
        np.testing.assert_array_equal(got[:3], -np.inf)
        np.testing.assert_allclose(got[3:40], want, rtol=1e-6)
    np.testing.assert_allclose(got[40], np.log(2e-38 / 8), rtol=1e-5)

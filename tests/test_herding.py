"""The Gaussian kernel, weighted facility location, MaxHerding and UHerding against NumPy
float64 references of the papers' algorithms (and scikit-activeml's MaxHerding)."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.selectors.submodular import functions
from jaxal.selectors.submodular.kernels import Similarity, similarity_kernel
from jaxal.strategies.herding import adaptive_bandwidth

# --- float64 references ----------------------------------------------------------------


def gaussian_kernel(x, y, h):
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / h**2)


def unit(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def herding_reference(x, labeled, budget, h, weights=None):
    """The reference code's greedy (herding.py / uherding.py): the coverage set is L + U,
    m_j = max over labeled p of k(x_j, p), gain_c = mean_j u_j max(K_cj - m_j, 0), first
    argmax over unlabeled c not yet picked. Returns (picks, gains per step [budget, N])."""
    x = unit(np.asarray(x, np.float64))
    n = len(x)
    kernel = gaussian_kernel(x, x, h)
    u = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    memo = kernel[:, labeled].max(axis=1) if labeled.any() else np.zeros(n)
    available = ~labeled.copy()
    picks, all_gains = [], []
    for _ in range(budget):
        gains = (u[None, :] * np.maximum(kernel - memo[None, :], 0.0)).mean(axis=1)
        gains = np.where(available, gains, -np.inf)
        pick = int(np.argmax(gains))
        picks.append(pick)
        all_gains.append(gains)
        available[pick] = False
        memo = np.maximum(memo, kernel[pick])
    return np.array(picks), np.array(all_gains)


def uncertainty_reference(logits, labeled, temperature, kind):
    z = np.asarray(logits, np.float64) / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top = np.sort(p, axis=1)[:, ::-1]
    if kind == "margin":
        u = 1.0 - (top[:, 0] - top[:, 1])
    elif kind == "least_confidence":
        u = 1.0 - top[:, 0]
    else:
        u = -(p * np.log(np.where(p > 0, p, 1.0))).sum(1)
    if not labeled.any():
        return np.ones(len(u))
    return np.where(labeled, 0.0, u)


def min_labeled_distance(x, labeled, default):
    x = unit(np.asarray(x, np.float64))[labeled]
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    d = d[d > 0]
    return float(d.min()) if d.size else default


def assert_same_greedy(picks, expected, gains, rtol=1e-5):
    """Equal picks, except where the reference's two choices tie within rounding: there
    the runs may part, and the rest is not compared."""
    picks = np.asarray(picks)
    for t, (got, want) in enumerate(zip(picks, expected, strict=True)):
        if got != want:
            a, b = gains[t][got], gains[t][want]
            assert abs(a - b) <= rtol * abs(b), (t, picks, expected)
            return
    np.testing.assert_array_equal(picks, expected)


def blobs(seed, n=120, d=5, centers=6):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, d)) * 3
    return (means[rng.integers(centers, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def labeled_mask(n, count, seed):
    labeled = np.zeros(n, bool)
    labeled[np.random.default_rng(seed).choice(n, count, replace=False)] = True
    return labeled


def linear_model():
    """A linear classifier on the pool's inputs: embedding = x, logits = x W + b."""

    def head(params, embedding):
        return embedding @ params["w"] + params["b"]

    def apply(params, x, rng):
        del rng
        return head(params, x), x

    return jaxal.Model(apply, head=head)


def linear_params(seed, d, classes=3, scale=1.0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(d, classes)) * scale, jnp.float32),
        "b": jnp.asarray(rng.normal(size=classes) * 0.1, jnp.float32),
    }


# --- the Gaussian kernel ------------------------------------------------------------------


@pytest.mark.parametrize("h", [0.5, 2.0])
def test_gaussian_kernel_matches_numpy(h):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(13, 4)), rng.normal(size=(7, 4))
    got = similarity_kernel(jnp.asarray(x, jnp.float32), metric="gaussian", bandwidth=h)
    np.testing.assert_allclose(got, gaussian_kernel(x, x, h), rtol=1e-5, atol=1e-6)
    assert np.all(np.diagonal(np.asarray(got)) == 1.0)
    rect = similarity_kernel(
        jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), metric="gaussian", bandwidth=h
    )
    np.testing.assert_allclose(rect, gaussian_kernel(x, y, h), rtol=1e-5, atol=1e-6)
    # gamma = 1 / h^2 is scikit-learn's rbf kernel
    from sklearn.metrics.pairwise import rbf_kernel

    np.testing.assert_allclose(got, rbf_kernel(x, gamma=1 / h**2), rtol=1e-5, atol=1e-6)


def test_gaussian_on_the_fly_matches_stored_and_takes_a_traced_bandwidth():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(40, 3)), jnp.float32)
    memo = jnp.asarray(rng.uniform(size=40) * 0.5, jnp.float32)

    @jax.jit
    def gains(h):
        stored = functions.facility_location(
            similarity_kernel(x, metric="gaussian", bandwidth=h), floor=memo, symmetric=True
        )
        on_the_fly = functions.facility_location(
            Similarity(x, metric="gaussian", bandwidth=h, chunk_size=16), floor=memo
        )
        return stored.gains(stored.init(1)), on_the_fly.gains(on_the_fly.init(1))

    stored, on_the_fly = gains(jnp.float32(1.3))
    expected = np.maximum(gaussian_kernel(np.asarray(x), np.asarray(x), 1.3) - memo[:, None], 0)
    np.testing.assert_allclose(stored, expected.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(on_the_fly, stored, rtol=1e-5, atol=1e-5)


def test_gaussian_needs_a_positive_bandwidth():
    x = jnp.ones((3, 2))
    with pytest.raises(ValueError, match="needs a bandwidth"):
        similarity_kernel(x, metric="gaussian")
    with pytest.raises(ValueError, match="bandwidth must be finite and > 0"):
        similarity_kernel(x, metric="gaussian", bandwidth=0.0)
    with pytest.raises(ValueError, match="bandwidth applies to metric='gaussian' only"):
        similarity_kernel(x, metric="cosine", bandwidth=1.0)
    with pytest.raises(ValueError, match="metric"):
        jaxal.strategies.submodular(None, 2, representation="raw", metric="gaussian")


@pytest.mark.parametrize("capped", [False, True])
def test_weighted_facility_location_gains_match_numpy(capped):
    rng = np.random.default_rng(2)
    kernel = rng.uniform(size=(9, 9))
    kernel = (kernel + kernel.T) / 2
    weights, floor = rng.uniform(size=9), rng.uniform(size=9) * 0.3
    cap = floor + 0.4 if capped else None
    fn = functions.facility_location(
        jnp.asarray(kernel, jnp.float32),
        floor=floor,
        cap=cap,
        weights=weights,
        ground=jnp.arange(9) != 4,
    )
    state = fn.update(fn.init(2), jnp.int32(3))
    memo = np.maximum(floor, kernel[:, 3])
    c = np.full(9, np.inf) if cap is None else cap
    contrib = np.maximum(np.minimum(kernel, c[:, None]) - np.minimum(memo, c)[:, None], 0)
    contrib[4] = 0.0  # outside the ground set
    np.testing.assert_allclose(fn.gains(state), (weights[:, None] * contrib).sum(0), rtol=1e-5)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        functions.facility_location(jnp.asarray(kernel, jnp.float32), weights=-weights)


# --- MaxHerding -------------------------------------------------------------------------


@functools.cache
def _maxherding(budget, **hparams):
    return jaxal.strategies.maxherding(None, budget, representation="raw", **hparams)


@pytest.mark.parametrize(("seed", "labeled", "h"), [(0, 0, 1.0), (1, 10, 0.5), (2, 25, 1.0)])
def test_maxherding_matches_the_reference(seed, labeled, h):
    x = blobs(seed)
    mask = labeled_mask(len(x), labeled, seed)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(mask))
    picks = _maxherding(10, bandwidth=h).select(None, pool, jax.random.key(0))
    expected, gains = herding_reference(x, mask, 10, h)
    assert_same_greedy(picks, expected, gains)


def test_maxherding_on_the_fly_and_naive_give_the_same_picks():
    x = blobs(3, n=90)
    mask = labeled_mask(90, 8, 3)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(mask))
    key = jax.random.key(0)
    stored = np.asarray(_maxherding(8).select(None, pool, key))
    on_the_fly = _maxherding(8, max_dense=0, optimizer="naive").select(None, pool, key)
    np.testing.assert_array_equal(on_the_fly, stored)


def test_maxherding_greedy_against_brute_force():
    """Tiny pool: each pick maximizes the coverage objective recomputed from scratch, and
    the batch is within 1 - 1/e of the best batch found by enumeration."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(9, 2)).astype(np.float32)
    mask = np.zeros(9, bool)
    mask[0] = True
    h, budget = 0.8, 3
    kernel = gaussian_kernel(unit(x.astype(np.float64)), unit(x.astype(np.float64)), h)

    def coverage(chosen):
        return kernel[:, sorted(chosen)].max(axis=1).mean()

    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(mask))
    picks = np.asarray(_maxherding(budget, bandwidth=h).select(None, pool, jax.random.key(0)))
    chosen = {0}
    for pick in picks:
        values = {c: coverage(chosen | {c}) for c in range(9) if c not in chosen}
        assert values[pick] == pytest.approx(max(values.values()), rel=1e-6)
        chosen.add(int(pick))
    best = max(coverage({0, *s}) for s in itertools.combinations(range(1, 9), budget))
    base = coverage({0})
    assert coverage(chosen) - base >= (1 - 1 / np.e) * (best - base) - 1e-9


def test_maxherding_embedding_of_a_model():
    x = blobs(5, n=60)
    model, params = linear_model(), linear_params(5, 5)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled_mask(60, 5, 5)))
    raw = _maxherding(6).select(None, pool, jax.random.key(0))
    via_model = jaxal.select("maxherding", model, params, pool, jax.random.key(0), 6)
    np.testing.assert_array_equal(via_model, raw)  # the embedding is x itself


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "labeled"), [(6, 0), (7, 12)])
def test_maxherding_matches_scikit_activeml(seed, labeled):
    """scikit-activeml's MaxHerding with gamma = 1 / h^2 (its default gamma is 1 / D)."""
    from skactiveml.pool import MaxHerding

    x = blobs(seed, n=100)
    mask = labeled_mask(100, labeled, seed)
    y = np.where(mask, np.arange(100) % 3, np.nan)
    h, budget = 0.7, 8
    peer = MaxHerding(metric="rbf", metric_dict={"gamma": 1 / h**2}, random_state=0)
    expected = peer.query(x.astype(np.float64), y, batch_size=budget)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(mask))
    picks = _maxherding(budget, bandwidth=h).select(None, pool, jax.random.key(0))
    _, gains = herding_reference(x, mask, budget, h)
    assert_same_greedy(picks, expected, gains)


# --- UHerding -----------------------------------------------------------------------------


@functools.cache
def _uherding(budget, **hparams):
    return jaxal.strategies.uherding(linear_model(), budget, **hparams)


@pytest.mark.parametrize(
    ("seed", "labeled", "hparams"),
    [
        (10, 12, {}),
        (11, 20, {"uncertainty": "entropy", "temperature": 2.0, "bandwidth": 0.6}),
        (12, 6, {"uncertainty": "least_confidence", "max_dense": 0}),
    ],
)
def test_uherding_matches_the_reference(seed, labeled, hparams):
    x = blobs(seed, n=100)
    mask = labeled_mask(100, labeled, seed)
    params = linear_params(seed, 5, scale=0.7)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(mask))
    picks = _uherding(9, **hparams).select(params, pool, jax.random.key(0))
    logits = x.astype(np.float64) @ np.asarray(params["w"], np.float64) + np.asarray(
        params["b"], np.float64
    )
    u = uncertainty_reference(
        logits, mask, hparams.get("temperature", 1.0), hparams.get("uncertainty", "margin")
    )
    h = hparams.get("bandwidth") or min_labeled_distance(x, mask, 1.0)
    expected, gains = herding_reference(x, mask, 9, h, weights=u)
    assert_same_greedy(picks, expected, gains)


def test_uherding_without_labels_is_maxherding():
    x = blobs(13, n=80)
    pool = jaxal.Pool.create(jnp.asarray(x))
    key = jax.random.key(0)
    picks = _uherding(7).select(linear_params(13, 5), pool, key)  # adaptive h: default 1.0
    np.testing.assert_array_equal(picks, _maxherding(7).select(None, pool, key))


def test_adaptive_bandwidth_is_the_smallest_labeled_distance():
    x = blobs(14, n=50)
    x[7] = x[3]  # a duplicate among the labeled points does not count
    mask = labeled_mask(50, 9, 14)
    mask[[3, 7]] = True
    got = adaptive_bandwidth(jnp.asarray(unit(x), jnp.float32), jnp.asarray(mask), 1.0, 4)
    assert float(got) == pytest.approx(min_labeled_distance(x, mask, 1.0), rel=1e-4)
    one = np.zeros(50, bool)
    one[0] = True
    assert float(adaptive_bandwidth(jnp.asarray(x), jnp.asarray(one), 2.5)) == 2.5


def test_cold_start_gives_a_valid_batch():
    x = blobs(15, n=60)
    pool = jaxal.Pool.create(jnp.asarray(x))
    key = jax.random.key(1)
    for name in ("maxherding", "uherding", "dropquery"):
        picks = np.asarray(jaxal.select(name, linear_model(), linear_params(15, 5), pool, key, 10))
        assert picks.dtype == np.int32 and len(set(picks.tolist())) == 10
        assert picks.min() >= 0 and picks.max() < 60

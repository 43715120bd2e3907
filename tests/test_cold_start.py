"""TypiClust, ProbCover and the linear probe against NumPy float64 references of the papers'
algorithms (and of the official code's conventions), brute force on tiny cases, and
scikit-activeml 1.0 on identical embeddings (``slow``)."""

from __future__ import annotations

import functools
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.model import dropout_keep_mask
from tests import reference
from tests.conftest import softmax

# --------------------------------------------------------------------------------------
# NumPy float64 references


def distances(points: np.ndarray) -> np.ndarray:
    diff = points[:, None, :] - points[None, :, :]
    return np.sqrt(np.sum(diff * diff, axis=-1))


def typiclust_reference(points, labeled, assignment, n_clusters, budget, neighbors, min_size, sq):
    """TypiClust's selection as the official code (deep-al/pycls/al/typiclust.py) does it,
    given the clusters: rank clusters with more than ``min_size`` points by (labeled
    count, -size, id), round robin, the most typical remaining point of each. Extended
    as jaxal documents it: exhausted clusters are skipped, then the small ones give theirs."""
    points = np.asarray(points, np.float64)
    sizes = np.bincount(assignment, minlength=n_clusters)
    covered = np.bincount(assignment[labeled], minlength=n_clusters)
    key = lambda c: (covered[c], -sizes[c], c)  # noqa: E731
    ranked = sorted((c for c in range(n_clusters) if sizes[c] > min_size), key=key)
    small = sorted((c for c in range(n_clusters) if 0 < sizes[c] <= min_size), key=key)
    remaining = ~labeled.copy()
    picks, pointer = [], 0
    for _ in range(budget):
        cluster = None
        for step in range(len(ranked)):
            position = (pointer + step) % len(ranked)
            if remaining[assignment == ranked[position]].any():
                cluster, pointer = ranked[position], position + 1
                break
        if cluster is None:
            cluster = next((c for c in small if remaining[assignment == c].any()), None)
        if cluster is None:
            picks.append(-1)
            continue
        members = np.flatnonzero(remaining & (assignment == cluster))
        k = min(neighbors, len(members) // 2)
        d = np.sort(distances(points[members]), axis=1)[:, 1 : k + 1]
        d = d**2 if sq else d
        mean = d.mean(axis=1) if k > 0 else np.zeros(len(members))
        pick = members[np.argmin(mean)]
        picks.append(int(pick))
        remaining[pick] = False
    return np.array(picks)


def probcover_reference(points, labeled, delta, budget):
    """Greedy ProbCover (the paper's algorithm, the official code's strict < and
    first-argmax): (picks, gains); picks after saturation are -2 (jaxal draws them)."""
    edges = distances(np.asarray(points, np.float64)) < delta
    covered = edges[labeled].any(axis=0)
    candidates = ~labeled.copy()
    picks, gains = [], []
    for _ in range(budget):
        degree = np.where(candidates, edges[:, ~covered].sum(axis=1), -1)
        if degree.max() <= 0:
            picks.append(-2)
            gains.append(0)
            continue
        pick = int(np.argmax(degree))
        gains.append(int(degree[pick]))
        covered |= edges[pick]
        candidates[pick] = False
        picks.append(pick)
    return np.array(picks), np.array(gains)


def purity_reference(points, labels, deltas):
    d = distances(np.asarray(points, np.float64))
    other = labels[:, None] != labels[None, :]
    return np.array([1.0 - np.mean(((d < delta) & other).any(axis=1)) for delta in deltas])


def blobs(sizes, dim=8, spread=1.0, separation=20.0, seed=0):
    """Well-separated Gaussian blobs: (points float32 [N, dim], blob label [N])."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(len(sizes), dim))
    centers *= separation / min(
        np.linalg.norm(a - b) for a, b in itertools.combinations(centers, 2)
    )
    x = np.concatenate(
        [c + spread * rng.normal(size=(n, dim)) for c, n in zip(centers, sizes, strict=True)]
    )
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def margin_from(d, delta):
    return np.min(np.abs(d - delta))


# --------------------------------------------------------------------------------------
# TypiClust


@functools.cache
def _typical_selector(n_clusters, budget, neighbors, min_size, squared):
    return jax.jit(
        functools.partial(
            jaxal.selectors.typical_per_cluster,
            n_clusters=n_clusters,
            budget=budget,
            neighbors=neighbors,
            min_cluster_size=min_size,
            squared=squared,
            chunk_size=16,
        )
    )


@pytest.mark.parametrize(
    ("seed", "labeled_count", "min_size", "squared"),
    [(0, 0, 5, False), (1, 9, 0, True), (2, 20, 6, False), (3, 4, 5, True)],
)
def test_typical_per_cluster_matches_reference(seed, labeled_count, min_size, squared):
    rng = np.random.default_rng(seed)
    n, n_clusters, budget = 80, 12, 15
    points = rng.normal(size=(n, 4)).astype(np.float32)
    # Clusters of uneven sizes (some small, some empty), ids in random order.
    assignment = rng.choice(n_clusters, size=n, p=rng.dirichlet(np.ones(n_clusters) * 0.7))
    labeled = np.zeros(n, bool)
    labeled[rng.choice(n, labeled_count, replace=False)] = True
    select = _typical_selector(n_clusters, budget, 6, min_size, squared)
    got = select(
        jnp.asarray(points),
        jnp.asarray(~labeled),
        jnp.ones(n, bool),
        jnp.asarray(labeled),
        jnp.asarray(assignment),
    )
    expected = typiclust_reference(
        points, labeled, assignment, n_clusters, budget, 6, min_size, squared
    )
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_typical_per_cluster_fills_every_unlabeled_point():
    """More picks than unlabeled points: every unlabeled point, then -1."""
    rng = np.random.default_rng(4)
    n, n_clusters, budget = 80, 12, 15
    points = rng.normal(size=(n, 4)).astype(np.float32)
    assignment = rng.integers(0, n_clusters, n)
    labeled = np.ones(n, bool)
    labeled[rng.choice(n, 11, replace=False)] = False
    got = np.asarray(
        _typical_selector(n_clusters, budget, 6, 5, False)(
            jnp.asarray(points),
            jnp.asarray(~labeled),
            jnp.ones(n, bool),
            jnp.asarray(labeled),
            jnp.asarray(assignment),
        )
    )
    assert sorted(got[:11].tolist()) == np.flatnonzero(~labeled).tolist()
    assert np.all(got[11:] == -1)
    expected = typiclust_reference(points, labeled, assignment, n_clusters, budget, 6, 5, False)
    np.testing.assert_array_equal(got, expected)


BLOB_SIZES = (40, 32, 26, 20, 14)


@pytest.fixture(scope="module")
def blob_pool():
    return blobs(BLOB_SIZES)


def test_kmeans_clusters_finds_the_blobs(blob_pool):
    x, truth = blob_pool
    assignment = jaxal.selectors.kmeans_clusters(
        jnp.asarray(x), jnp.ones(len(x), bool), 5, 9, jax.random.key(0), n_init=3
    )
    assignment = np.asarray(assignment)
    # Five clusters used, each exactly one blob.
    assert len(np.unique(assignment)) == 5
    for blob in range(5):
        assert len(np.unique(assignment[truth == blob])) == 1


@pytest.mark.parametrize("labeled_at", [(), (0, 50)])
def test_typiclust_on_blobs_matches_reference(blob_pool, labeled_at):
    """|L| + budget = 5 clusters = the blobs: k-means is unambiguous, so the picks are the
    reference's on the true blobs (cold start: one per blob, largest blob first)."""
    x, truth = blob_pool
    labeled = np.zeros(len(x), bool)
    labeled[list(labeled_at)] = True
    budget = 5 - len(labeled_at)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    strategy = jaxal.strategies.typiclust(None, budget, representation="raw", n_init=3)
    got = np.asarray(strategy.select(None, pool, jax.random.key(0)))
    expected = typiclust_reference(x, labeled, truth, 5, budget, 20, 5, False)
    np.testing.assert_array_equal(got, expected)
    assert len(set(truth[got])) == budget  # one per uncovered blob
    # The embedding of a linear probe is the input: the same picks through a model.
    probe = jaxal.linear_probe()
    params = jaxal.init_linear_probe(x.shape[1], 3)
    via_model = jaxal.strategies.typiclust(probe, budget, n_init=3).select(
        params, pool, jax.random.key(0)
    )
    np.testing.assert_array_equal(np.asarray(via_model), got)


def test_typiclust_jaxal_select_and_squared(blob_pool):
    x, truth = blob_pool
    pool = jaxal.Pool.create(jnp.asarray(x))
    got = jaxal.select(
        "typiclust", None, None, pool, jax.random.key(0), 5, representation="raw", squared=True
    )
    expected = typiclust_reference(x, np.zeros(len(x), bool), truth, 5, 5, 20, 5, True)
    np.testing.assert_array_equal(np.asarray(got), expected)


# --------------------------------------------------------------------------------------
# ProbCover


@functools.cache
def _probcover_selector(budget):
    return jax.jit(
        lambda points, candidates, covering, delta, key: jaxal.selectors.probcover(
            points,
            candidates,
            jnp.ones_like(candidates),
            covering,
            delta,
            budget,
            key,
            chunk_size=16,
        )
    )


@pytest.mark.parametrize(("seed", "labeled_count"), [(0, 0), (1, 5), (2, 30)])
def test_probcover_selector_matches_reference(seed, labeled_count):
    rng = np.random.default_rng(seed)
    n, budget = 120, 12
    points = rng.normal(size=(n, 3)).astype(np.float32)
    d = distances(points)
    delta = float(np.quantile(d[d > 0], 0.06))
    # A radius no pair sits on (float32 and float64 agree on every edge).
    delta = min(np.linspace(delta * 0.9, delta * 1.1, 41), key=lambda r: -margin_from(d, r))
    assert margin_from(d, delta) > 1e-4
    labeled = np.zeros(n, bool)
    labeled[rng.choice(n, labeled_count, replace=False)] = True
    picks, gains = _probcover_selector(budget)(
        jnp.asarray(points), jnp.asarray(~labeled), jnp.asarray(labeled), delta, jax.random.key(0)
    )
    picks, gains = np.asarray(picks), np.asarray(gains.gains)
    expected, expected_gains = probcover_reference(points, labeled, delta, budget)
    greedy = expected >= 0
    np.testing.assert_array_equal(picks[greedy], expected[greedy])
    np.testing.assert_array_equal(gains, expected_gains)
    # After saturation: distinct unlabeled points all the same.
    assert len(set(picks.tolist())) == budget and not labeled[picks].any()


def test_probcover_greedy_against_brute_force():
    """Tiny pools: each greedy pick covers the most new points over every candidate (set
    unions by brute force); one pick is optimal, and B picks reach (1 - 1/e) of the best
    B-subset's coverage."""
    for seed in range(3):
        rng = np.random.default_rng(10 + seed)
        n, budget = 10, 3
        points = rng.normal(size=(n, 2)).astype(np.float32)
        d = distances(points)
        delta = float(np.median(d)) * 0.6
        balls = [set(np.flatnonzero(d[i] < delta)) for i in range(n)]
        labeled = np.zeros(n, bool)
        labeled[seed] = True
        picks, gains = _probcover_selector(budget)(
            jnp.asarray(points),
            jnp.asarray(~labeled),
            jnp.asarray(labeled),
            delta,
            jax.random.key(0),
        )
        picks, gains = np.asarray(picks).tolist(), np.asarray(gains.gains)
        covered = set(balls[seed])
        for pick, gain in zip(picks, gains, strict=True):
            new = {
                c: len(balls[c] - covered)
                for c in range(n)
                if c != seed and c not in picks[: picks.index(pick)]
            }
            if max(new.values()) > 0:
                assert new[pick] == max(new.values()) == gain
            covered |= balls[pick]
        unlabeled = [i for i in range(n) if i != seed]
        best = max(
            len(set.union(set(balls[seed]), *(balls[i] for i in subset)))
            for subset in itertools.combinations(unlabeled, budget)
        )
        assert len(covered) >= (1 - 1 / np.e) * best
        single = max(len(balls[i] - balls[seed]) for i in unlabeled)
        assert gains[0] == single


def test_ball_purity_and_radius_match_reference():
    rng = np.random.default_rng(5)
    points = rng.normal(size=(70, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 70)
    labels[:35] = 0  # a large pure-ish group
    points[:35] += 6.0
    grid = np.round(np.linspace(0.1, 3.0, 30), 3)
    d = distances(points)
    assert min(margin_from(d, g) for g in grid) > 1e-5
    got = jaxal.selectors.ball_purity(
        jnp.asarray(points), jnp.ones(70, bool), jnp.asarray(labels), jnp.asarray(grid), 16
    )
    expected = purity_reference(points, labels, grid)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-6)
    assert np.all(np.diff(expected) <= 0)  # purity never increases with the radius
    for alpha in (0.2, 0.5, 0.95, 1.0):
        radius = jaxal.selectors.purity_radius(
            jnp.asarray(points), jnp.ones(70, bool), jnp.asarray(labels), jnp.asarray(grid), alpha
        )
        passing = grid[expected >= alpha]
        want = passing.max() if len(passing) else grid[0]
        assert float(radius) == pytest.approx(want)


def test_probcover_chooses_delta_by_purity_on_blobs(blob_pool):
    """delta=None: k-means pseudo-labels = the blobs (unambiguous), so delta and the picks
    are the reference's with the true blobs as labels."""
    x, truth = blob_pool
    grid = tuple(np.round(np.arange(0.5, 30.0, 0.5), 2))
    purity = purity_reference(x, truth, grid)
    delta = max(g for g, p in zip(grid, purity, strict=True) if p >= 0.95)
    labeled = np.zeros(len(x), bool)
    labeled[[3, 41]] = True
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    strategy = jaxal.strategies.probcover(
        None, 4, representation="raw", classes=5, deltas=grid, n_init=3
    )
    got = np.asarray(strategy.select(None, pool, jax.random.key(0)))
    expected, _ = probcover_reference(x, labeled, delta, 4)
    greedy = expected >= 0
    np.testing.assert_array_equal(got[greedy], expected[greedy])
    assert len(set(got.tolist())) == 4 and not labeled[got].any()


def test_probcover_cold_start_and_saturation(blob_pool):
    """No labels: each pick covers a new blob (a ball holds a whole blob), largest first;
    past the five blobs coverage saturates and picks stay distinct and unlabeled."""
    x, truth = blob_pool
    pool = jaxal.Pool.create(jnp.asarray(x))
    got = np.asarray(
        jaxal.select(
            "probcover", None, None, pool, jax.random.key(1), 7, representation="raw", delta=8.0
        )
    )
    assert truth[got[:5]].tolist() == [0, 1, 2, 3, 4]
    assert len(set(got.tolist())) == 7


# --------------------------------------------------------------------------------------
# The linear probe on an embedding pool


def test_linear_probe_params_and_fit():
    x, truth = blobs((20, 20, 20), dim=6, seed=3)
    probe = jaxal.linear_probe(dropout=0.25)
    params = jax.jit(jaxal.fit_linear_probe, static_argnames="classes")(
        jnp.asarray(x), jnp.asarray(truth), jnp.ones(60, bool), classes=3
    )
    assert params["kernel"].shape == (6, 3) and params["bias"].shape == (3,)
    logits, embedding = probe.apply(params, jnp.asarray(x), None)
    np.testing.assert_array_equal(np.asarray(embedding), x)
    assert np.mean(np.argmax(np.asarray(logits), 1) == truth) == 1.0
    np.testing.assert_allclose(
        np.asarray(probe.head(params, jnp.asarray(x))), np.asarray(logits), rtol=1e-6
    )
    # The stochastic pass drops features (inverted dropout) and keeps the embedding.
    dropped, embedding = probe.apply(params, jnp.asarray(x), jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(embedding), x)
    assert not np.allclose(np.asarray(dropped), np.asarray(logits))
    with pytest.raises(ValueError, match="dropout"):
        jaxal.linear_probe(dropout=1.0)


def test_bald_with_linear_probe_matches_reference():
    """BALD on a linear probe: MC dropout of the features into the linear head, against
    float64 NumPy with the same keep masks."""
    rng = np.random.default_rng(6)
    n, dim, classes, samples, rate = 50, 7, 3, 8, 0.3
    x = rng.normal(size=(n, dim)).astype(np.float32)
    params = {
        "kernel": jnp.asarray(2 * rng.normal(size=(dim, classes)), jnp.float32),
        "bias": jnp.asarray(rng.normal(size=classes), jnp.float32),
    }
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.arange(n) < 5)
    key = jax.random.key(3)
    kernel = np.asarray(params["kernel"], np.float64)
    bias = np.asarray(params["bias"], np.float64)
    mc = []
    for sample_key in jax.random.split(key, samples):
        seed = jax.random.bits(sample_key, (), jnp.uint32)
        keep = np.asarray(dropout_keep_mask(seed, jnp.arange(n), dim, rate))
        mc.append(softmax((x.astype(np.float64) * keep / (1 - rate)) @ kernel + bias))
    expected = reference.mutual_information(np.stack(mc))
    strategy = jaxal.strategies.bald(jaxal.linear_probe(dropout=rate), 6, mc_samples=samples)
    scores = np.asarray(strategy.score(params, pool, key))
    np.testing.assert_allclose(scores[5:], expected[5:], rtol=2e-4, atol=2e-6)
    top = np.argsort(-np.where(np.arange(n) < 5, -np.inf, expected), kind="stable")[:6]
    np.testing.assert_array_equal(np.asarray(strategy.select(params, pool, key)), top)


def test_every_strategy_runs_on_an_embedding_pool():
    """Every registered strategy with a linear probe over precomputed features: exactly
    ``budget`` distinct unlabeled picks."""
    from tests.test_contract import INPUTS, N_CLASSES, N_FEATURES
    from tests.test_extreme_models import SWEEP

    n, budget = 30, 3
    x = np.random.default_rng(7).normal(size=(n, N_FEATURES)).astype(np.float32)
    labeled = np.zeros(n, bool)
    labeled[:6] = True
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    rng = np.random.default_rng(8)
    params = {
        "kernel": jnp.asarray(rng.normal(size=(N_FEATURES, N_CLASSES)), jnp.float32),
        "bias": jnp.zeros(N_CLASSES, jnp.float32),
    }
    probe = jaxal.linear_probe()
    assert set(SWEEP) == set(jaxal.strategies.REGISTRY)
    for name, hparams in sorted(SWEEP.items()):
        hparams = dict(hparams)
        if "parts" in hparams:
            hparams["parts"] = min(hparams["parts"], budget)
        strategy = jaxal.strategies.get(name)(probe, budget, batch_size=16, **hparams)
        inputs = {k: INPUTS[k] for k in strategy.inputs}
        picks = np.asarray(jax.jit(strategy.select)(params, pool, jax.random.key(0), **inputs))
        assert picks.shape == (budget,), name
        assert len(set(picks.tolist())) == budget and picks.min() >= 0, (name, picks)
        assert not labeled[picks].any(), (name, picks)


# --------------------------------------------------------------------------------------
# scikit-activeml 1.0 on identical embeddings


@pytest.mark.slow
@pytest.mark.parametrize("labeled_at", [(), (0, 50)])
def test_typiclust_matches_scikit_activeml(blob_pool, labeled_at):
    """Conventions matched: k = 5 neighbours, no minimum cluster size, plain distances; on
    well-separated blobs with |L| + budget = the number of blobs both k-means runs give the
    blobs, and the blob sizes differ (scikit-activeml breaks size ties at random), so the
    picks agree. (Its K = min(k, n - 1) and the official min(k, n // 2) agree on clusters
    of 10 or more points.)"""
    skpool = pytest.importorskip("skactiveml.pool")
    x, _ = blob_pool
    labeled = np.zeros(len(x), bool)
    labeled[list(labeled_at)] = True
    budget = 5 - len(labeled_at)
    y = np.full(len(x), np.nan)
    y[labeled] = 0
    peer = skpool.TypiClust(random_state=0, k=5).query(x.astype(np.float64), y, batch_size=budget)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    ours = jaxal.strategies.typiclust(
        None, budget, representation="raw", neighbors=5, min_cluster_size=0, n_init=3
    ).select(None, pool, jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(ours), peer)


@pytest.mark.slow
def test_probcover_delta_matches_scikit_activeml(blob_pool):
    """delta by purity: scikit-activeml's scan (<=, stop at the first failing radius) and
    jaxal's largest passing radius (<) give the same delta on its grid; its per-step
    utilities (ball counts of uncovered points) equal jaxal's ball counts given its picks.
    Its picks break the many ties (a ball that holds a whole blob) at random, jaxal's go to
    the lowest index: both take the same blobs, in the same order."""
    skpool = pytest.importorskip("skactiveml.pool")
    x, truth = blob_pool
    grid = np.round(np.arange(0.5, 30.0, 0.5), 2)
    labeled = np.zeros(len(x), bool)
    labeled[[3, 41]] = True
    y = np.full(len(x), np.nan)
    y[labeled] = truth[labeled]
    peer = skpool.ProbCover(n_classes=5, deltas=grid, random_state=0)
    picks, utilities = peer.query(x.astype(np.float64), y, batch_size=4, return_utilities=True)
    ours_pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    pseudo = jaxal.selectors.kmeans_clusters(
        jnp.asarray(x), jnp.ones(len(x), bool), 5, 5, jax.random.key(0), n_init=3
    )
    delta = jaxal.selectors.purity_radius(
        jnp.asarray(x), jnp.ones(len(x), bool), pseudo, jnp.asarray(grid), 0.95
    )
    assert float(delta) == pytest.approx(peer.delta_max_)
    covered = labeled.copy()
    for step, pick in enumerate(picks):
        d = distances(x)
        uncovered = ~(d[covered] < peer.delta_max_).any(axis=0)
        counts = jaxal.selectors.ball_counts(
            jnp.asarray(x), jnp.asarray(uncovered), jnp.float32(peer.delta_max_) ** 2
        )
        candidates = ~covered
        np.testing.assert_array_equal(np.asarray(counts)[candidates], utilities[step][candidates])
        covered[pick] = True
    ours = jaxal.strategies.probcover(
        None, 4, representation="raw", classes=5, deltas=tuple(grid), n_init=3
    ).select(None, ours_pool, jax.random.key(0))
    np.testing.assert_array_equal(truth[np.asarray(ours)[:3]], truth[picks[:3]])


@pytest.mark.slow
def test_probcover_greedy_matches_scikit_activeml_without_ties():
    """A fixed radius on scattered points where every step's best ball is unique: the
    same picks."""
    skpool = pytest.importorskip("skactiveml.pool")
    rng = np.random.default_rng(60)
    x = rng.normal(size=(120, 2)).astype(np.float32)
    d = distances(x)
    delta = 0.6
    assert margin_from(d, delta) > 1e-4
    labeled = np.zeros(120, bool)
    labeled[[1, 2]] = True
    y = np.full(120, np.nan)
    y[labeled] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a one-radius grid always warns there
        peer, utilities = skpool.ProbCover(n_classes=2, deltas=[delta], random_state=0).query(
            x.astype(np.float64), y, batch_size=5, return_utilities=True
        )
    for step, pick in enumerate(peer):
        row = np.nan_to_num(utilities[step], nan=-1)
        assert np.sum(row == row[pick]) == 1, "a tie: pick another seed"
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(labeled))
    ours = jaxal.strategies.probcover(None, 5, representation="raw", delta=delta).select(
        None, pool, jax.random.key(0)
    )
    np.testing.assert_array_equal(np.asarray(ours), peer)

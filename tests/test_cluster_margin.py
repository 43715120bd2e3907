"""Average-linkage clustering against ``scipy.cluster.hierarchy``, the round robin against
a plain Python loop, and Cluster-Margin against a NumPy float64 + scipy reference."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

import jaxal
from jaxal.selectors import Linkage, average_linkage, cut, round_robin


def same_partition(a, b):
    return np.array_equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


def named_by_smallest(labels):
    """Cluster labels renamed to the smallest index of each cluster's members."""
    return np.array([np.flatnonzero(labels == label).min() for label in labels])


def clear_heights(z, rtol=1e-5):
    """The merge heights are distinct enough for float32 to order them as float64."""
    heights = z[:, 2]
    return np.all(np.diff(heights) > rtol * heights[1:])


@functools.cache
def _linkage_and_cuts(n, ks):
    def run(points, members, threshold):
        tree = average_linkage(points, members)
        cuts = [cut(tree, members, clusters=k) for k in ks]
        return tree, jnp.stack(cuts), cut(tree, members, threshold=threshold)

    return jax.jit(run)


@pytest.mark.parametrize(("seed", "fraction"), [(0, 1.0), (1, 0.7), (2, 0.85)])
def test_average_linkage_matches_scipy(seed, fraction):
    rng = np.random.default_rng(seed)
    n, ks = 36, (1, 2, 5, 11, 36)
    points = rng.normal(size=(n, 4)) * rng.uniform(0.5, 2.0, size=4)
    members = rng.random(n) < fraction
    z = linkage(points[members], "average")
    assert clear_heights(z)
    m = int(members.sum())
    threshold = float(z[m // 2 - 1 : m // 2 + 1, 2].mean())  # between two merge heights
    tree, cuts, at_threshold = _linkage_and_cuts(n, ks)(
        jnp.asarray(points, jnp.float32), jnp.asarray(members), threshold
    )
    heights = np.asarray(tree.heights)
    np.testing.assert_allclose(heights[: m - 1], z[:, 2], rtol=1e-5)
    assert np.all(np.isinf(heights[m - 1 :])) and np.all(np.asarray(tree.merged)[m - 1 :] == -1)
    index = np.flatnonzero(members)
    for k, labels in zip(ks, np.asarray(cuts), strict=True):
        expected = fcluster(z, k, criterion="maxclust")
        assert same_partition(labels[members], expected), k
        np.testing.assert_array_equal(labels[members], index[named_by_smallest(labels[members])])
        assert np.all(labels[~members] == n)
    expected = fcluster(z, threshold, criterion="distance")
    assert same_partition(np.asarray(at_threshold)[members], expected)


def test_cut_needs_exactly_one_rule():
    tree = Linkage(jnp.full((2, 2), -1), jnp.full((2,), jnp.inf))
    with pytest.raises(ValueError, match="exactly one"):
        cut(tree, jnp.ones(3, bool))
    with pytest.raises(ValueError, match="exactly one"):
        cut(tree, jnp.ones(3, bool), clusters=2, threshold=1.0)


def round_robin_reference(clusters, candidates, uniforms, budget):
    """Clusters by (candidate count, id); inside one, by (uniform, index); one per cluster
    per pass."""
    members = {}
    for i in np.flatnonzero(candidates):
        members.setdefault(int(clusters[i]), []).append(int(i))
    for group in members.values():
        group.sort(key=lambda i: (uniforms[i], i))
    order = sorted(members, key=lambda g: (len(members[g]), g))
    picks = []
    for turn in range(max(map(len, members.values()), default=0)):
        picks += [members[g][turn] for g in order if turn < len(members[g])]
    picks = picks[:budget]
    return np.array(picks + [-1] * (budget - len(picks)))


@pytest.mark.parametrize(("seed", "budget"), [(3, 7), (4, 25), (5, 40)])
def test_round_robin_matches_a_loop(seed, budget):
    rng = np.random.default_rng(seed)
    n = 40
    clusters = rng.integers(0, 9, n)
    candidates = rng.random(n) < 0.8
    uniforms = rng.random(n).astype(np.float32)
    uniforms[5] = uniforms[6]  # a tie: the lower index first
    got = round_robin(jnp.asarray(clusters), jnp.asarray(candidates), jnp.asarray(uniforms), budget)
    expected = round_robin_reference(clusters, candidates, uniforms, budget)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_nearest_takes_the_first_minimum():
    """Candidates beyond max_clustered join their nearest clustered point: the first of
    equally near ones, as numpy's argmin, with rows longer than one block of the search
    (300 centers), ties and inactive centers."""
    rng = np.random.default_rng(11)
    centers = rng.integers(0, 3, size=(300, 2)).astype(np.float32)  # many exact ties
    points = rng.integers(0, 3, size=(50, 2)).astype(np.float32)
    active = rng.random(300) < 0.9
    index, distance = selectors_nearest(points, centers, active)
    expected = ((points[:, None] - centers[None]) ** 2).sum(-1)
    expected = np.where(active[None, :], expected, np.inf)
    np.testing.assert_array_equal(index, np.argmin(expected, axis=1))
    np.testing.assert_allclose(distance, np.min(expected, axis=1))


def selectors_nearest(points, centers, active):
    index, distance = jaxal.selectors.nearest(
        jnp.asarray(points), jnp.asarray(centers), 16, jnp.asarray(active)
    )
    return np.asarray(index), np.asarray(distance)


# --- the strategy ----------------------------------------------------------------------


def softmax64(logits):
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def cluster_margin_reference(x, params, labeled, budget, uniforms, per_pick, cut_rule, limit):
    """The margin filter, scipy's average linkage over the first ``limit`` candidates,
    the rest joined to their nearest clustered candidate, and the round robin."""
    x = np.asarray(x, np.float64)
    probs = softmax64(x @ np.asarray(params["kernel"]) + np.asarray(params["bias"]))
    top = np.sort(probs, axis=1)
    margin = top[:, -1] - top[:, -2]
    unlabeled = np.flatnonzero(~labeled)
    ranked = unlabeled[np.argsort(margin[unlabeled], kind="stable")]
    chosen = ranked[: per_pick * budget]
    assert np.all(np.diff(margin[ranked[: len(chosen) + 1]]) > 1e-5)  # float32 agrees
    clustered = chosen[:limit]
    z = linkage(x[clustered], "average")
    assert clear_heights(z)
    if "threshold" in cut_rule:
        flat = fcluster(z, cut_rule["threshold"], criterion="distance")
    else:
        flat = fcluster(z, cut_rule.get("clusters", budget), criterion="maxclust")
    labels = named_by_smallest(flat)  # positions in the margin order
    rest = x[chosen[limit:]]
    if len(rest):
        distances = ((rest[:, None, :] - x[clustered][None, :, :]) ** 2).sum(-1)
        labels = np.concatenate([labels, labels[np.argmin(distances, axis=1)]])
    picks = round_robin_reference(labels, np.ones(len(chosen), bool), uniforms[chosen], budget)
    return np.where(picks >= 0, chosen[np.maximum(picks, 0)], -1)


def probe_problem(seed, n, d=3, c=3, labeled=10):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, d)) * 4
    x = (centers[rng.integers(6, size=n)] + rng.normal(size=(n, d))).astype(np.float32)
    params = {
        "kernel": jnp.asarray(rng.normal(size=(d, c)) * 0.3, jnp.float32),
        "bias": jnp.asarray(rng.normal(size=c), jnp.float32),
    }
    mask = np.zeros(n, bool)
    mask[rng.choice(n, labeled, replace=False)] = True
    return x, params, mask


@pytest.mark.parametrize(
    ("seed", "budget", "hparams"),
    [
        (6, 4, {}),  # 40 candidates cut into 4 clusters: one pick from each
        (7, 6, {"candidates_per_pick": 5, "clusters": 3}),  # two passes over 3 clusters
        (8, 5, {"candidates_per_pick": 6, "threshold": 2.0}),
        (9, 4, {"max_clustered": 14}),  # 26 of the 40 candidates join a cluster
        (10, 5, {"candidates_per_pick": 20}),  # k_m above the 50 unlabeled points
    ],
)
def test_strategy_matches_reference(seed, budget, hparams):
    x, params, mask = probe_problem(seed, n=60)
    key = jax.random.key(seed)
    uniforms = np.asarray(jax.random.uniform(key, (len(x),)))
    cut_rule = {k: v for k, v in hparams.items() if k in ("clusters", "threshold")}
    expected = cluster_margin_reference(
        x, params, mask, budget, uniforms, hparams.get("candidates_per_pick", 10),
        cut_rule, hparams.get("max_clustered", 8192),
    )  # fmt: skip
    strategy = jaxal.strategies.cluster_margin(
        jaxal.linear_probe(), budget, batch_size=16, chunk_size=8, **hparams
    )
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(mask))
    np.testing.assert_array_equal(np.asarray(strategy.select(params, pool, key)), expected)


@pytest.mark.parametrize(
    ("hparams", "error", "match"),
    [
        ({"clusters": 3, "threshold": 1.0}, ValueError, "not both"),
        ({"clusters": 0}, ValueError, "clusters"),
        ({"threshold": -1.0}, ValueError, "threshold"),
        ({"candidates_per_pick": 0}, ValueError, "candidates_per_pick"),
        ({"max_clustered": 2.5}, TypeError, "max_clustered"),
    ],
)
def test_bad_hyperparameters(hparams, error, match):
    with pytest.raises(error, match=match):
        jaxal.strategies.cluster_margin(jaxal.linear_probe(), 3, **hparams)

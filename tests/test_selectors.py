"""jaxal.selectors against the float64 NumPy loops in tests/reference.py."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxal import selectors
from jaxal.model import gradient_embedding
from jaxal.selectors import OuterProduct

try:
    from tests import reference as ref
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference as ref

# Jitted entry points, compiled once per shape and reused across seeds (eager calls of the
# loop-based selectors retrace every time). test_jit_matches_eager checks jit == eager.
K_CENTER = jax.jit(selectors.k_center_greedy, static_argnames=("budget", "chunk_size"))
KPP = jax.jit(selectors.kmeans_plusplus, static_argnames=("first",))
MIN_SQ = jax.jit(selectors.min_sq_distances_to_members, static_argnames=("chunk_size",))
LLOYD = jax.jit(selectors.lloyd, static_argnames=("max_iter",))
KMEANS_FOUR_STEPS = jax.jit(
    functools.partial(selectors.kmeans, budget=6, n_init=1, max_iter=4, tol=0.0)
)
NEAREST_DISTINCT = jax.jit(selectors.nearest_distinct)
KMEANS = jax.jit(selectors.kmeans, static_argnames=("budget", "n_init", "max_iter"))
TOP_K = jax.jit(selectors.top_k, static_argnames=("budget",))
RANDOM_SUBSET = jax.jit(selectors.random_subset, static_argnames=("budget",))
SQ_DISTANCES = jax.jit(selectors.sq_distances)
SAMPLE_BY_WEIGHT = jax.jit(selectors.sample_by_weight)
GRADIENT_EMBEDDING = jax.jit(gradient_embedding, static_argnames=("kind",))


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


def gaussian(seed: int, n: int, d: int, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, d)) * scale).astype(np.float32)


def random_mask(seed: int, n: int, fraction: float) -> np.ndarray:
    mask = np.random.default_rng(seed).uniform(size=n) < fraction
    mask[np.random.default_rng(seed).integers(n)] = True  # at least one
    return mask


def factored(seed: int, n: int, c: int, d: int, kind: str = "linear") -> OuterProduct:
    """A factored last-layer gradient embedding from random logits and features."""
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(n, c)).astype(np.float32) * 2.0)
    features = jnp.asarray(rng.normal(size=(n, d)).astype(np.float32))
    return GRADIENT_EMBEDDING(logits, features, kind=kind)


def sq_norms(points) -> np.ndarray:
    return np.sum(np.asarray(points, np.float64) ** 2, axis=1)


def assert_valid_picks(picks, candidates, budget) -> None:
    """int32 [budget]; a prefix of distinct candidates, exactly min(budget, #cand) long."""
    picks = np.asarray(picks)
    candidates = np.asarray(candidates, bool)
    assert picks.shape == (budget,)
    assert picks.dtype == np.int32
    expected = min(budget, int(candidates.sum()))
    np.testing.assert_array_equal(picks[expected:], -1)
    filled = picks[:expected]
    assert np.all(filled >= 0), picks
    assert len(set(filled.tolist())) == expected, f"duplicate picks: {picks}"
    assert np.all(candidates[filled]), f"non-candidate picked: {picks}"


def kcenter_margins_ok(points, candidates, reference, picks, rel=1e-3) -> bool:
    """True when every k-center argmax in the reference run beat the runner-up clearly.

    Guards the index comparison against float32-vs-float64 near ties in the fixture.
    """
    points = np.asarray(points, np.float64)
    nearest = ref.min_sq_distances_to_members(points, reference)
    available = np.asarray(candidates, bool).copy()
    for t, index in enumerate(picks):
        if index < 0:
            break
        if t > 0 or reference.any():
            values = np.sort(nearest[available])[::-1]
            if len(values) > 1 and values[0] - values[1] <= rel * max(values[0], 1e-12):
                return False
        available[index] = False
        nearest = np.minimum(nearest, np.sum((points - points[index]) ** 2, axis=1))
    return True


# --------------------------------------------------------------------------------------
# top_k
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [1, 5, 20])
def test_top_k_matches_reference(budget):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        scores = rng.normal(size=20).astype(np.float32)
        mask = random_mask(seed, 20, 0.6)
        got = selectors.top_k(jnp.asarray(scores), jnp.asarray(mask), budget)
        np.testing.assert_array_equal(np.asarray(got), ref.top_k(scores, mask, budget))
        assert_valid_picks(got, mask, budget)


def test_top_k_ties_go_to_lower_index():
    for seed in range(4):
        rng = np.random.default_rng(seed)
        scores = rng.integers(0, 3, size=30).astype(np.float32)  # heavy ties
        mask = random_mask(seed + 50, 30, 0.7)
        got = np.asarray(TOP_K(jnp.asarray(scores), jnp.asarray(mask), budget=12))
        np.testing.assert_array_equal(got, ref.top_k(scores, mask, 12))
    all_equal = np.asarray(selectors.top_k(jnp.zeros(6), jnp.ones(6, bool), 6))
    np.testing.assert_array_equal(all_equal, np.arange(6))


def test_top_k_nan_and_infinities():
    nan, inf = np.nan, np.inf
    scores = jnp.array([nan, 3.0, -inf, 1.0, nan, 7.0, inf, -3e38], jnp.float32)
    mask = jnp.array([True, True, True, True, True, False, True, True])
    got = np.asarray(selectors.top_k(scores, mask, 8))
    # Finite candidates only (even -3e38), best first; NaN and +-inf are never picked and
    # the non-candidate 7.0 neither: the remaining slots are -1.
    np.testing.assert_array_equal(got, [1, 3, 7, -1, -1, -1, -1, -1])
    only_bad = jnp.array([1e9, nan, -inf, 1e9], jnp.float32)
    got = np.asarray(selectors.top_k(only_bad, jnp.array([False, True, True, False]), 3))
    np.testing.assert_array_equal(got, [-1, -1, -1])


def test_top_k_fill_and_validation():
    scores = jnp.arange(10, dtype=jnp.float32)
    mask = jnp.zeros(10, bool).at[jnp.array([2, 7, 4])].set(True)
    got = np.asarray(selectors.top_k(scores, mask, 6))
    np.testing.assert_array_equal(got, [7, 4, 2, -1, -1, -1])
    none = np.asarray(selectors.top_k(scores, jnp.zeros(10, bool), 3))
    np.testing.assert_array_equal(none, [-1, -1, -1])
    for budget in (0, 11):
        with pytest.raises(ValueError, match="budget"):
            selectors.top_k(scores, mask, budget)


# --------------------------------------------------------------------------------------
# random_subset
# --------------------------------------------------------------------------------------


def test_random_subset_distinct_candidates():
    seen = set()
    for seed in range(6):
        mask = random_mask(seed, 25, 0.5)
        for budget in (1, 4, 25):
            got = RANDOM_SUBSET(jnp.asarray(mask), budget=budget, key=jax.random.key(seed))
            assert_valid_picks(got, mask, budget)
            if budget == 4 and mask.sum() > 4:
                seen.add(tuple(np.asarray(got).tolist()))
    assert len(seen) > 1, "different keys should give different subsets"


def test_random_subset_uniform_marginals_chi_square():
    n, budget, trials = 12, 3, 6000
    mask = np.ones(n, bool)
    mask[[1, 5, 9]] = False
    keys = jax.random.split(jax.random.key(1234), trials)
    draw = jax.jit(jax.vmap(lambda k: selectors.random_subset(jnp.asarray(mask), budget, k)))
    picks = np.asarray(draw(keys))
    assert np.all(mask[picks])
    assert all(len(set(row)) == budget for row in picks.tolist())
    counts = np.bincount(picks.ravel(), minlength=n)[mask]
    expected = np.full(mask.sum(), trials * budget / mask.sum())
    # Inclusion counts are negatively correlated (without replacement), which only makes
    # the statistic smaller; the threshold is generous.
    _, p_value = stats.chisquare(counts, expected)
    assert p_value > 1e-4, (counts, p_value)


# --------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear", "bias", "bias_linear"])
def test_outer_product_distances_match_materialized(kind):
    points = factored(3, 11, 4, 5, kind)
    dense = np.asarray(points.materialize())
    np.testing.assert_allclose(
        dense, ref.outer_materialize(points.left, points.right), rtol=1e-6, atol=1e-7
    )
    others = factored(4, 6, 4, 5, kind)
    got = np.asarray(SQ_DISTANCES(points, others))
    from_dense = np.asarray(SQ_DISTANCES(jnp.asarray(dense), jnp.asarray(others.materialize())))
    want = ref.sq_distances(dense, np.asarray(others.materialize()))
    assert got.shape == (11, 6)
    assert np.all(got >= 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, from_dense, rtol=1e-4, atol=1e-5)


def test_sq_distances_plain_matches_reference():
    a, b = gaussian(0, 9, 6), gaussian(1, 4, 6)
    got = np.asarray(SQ_DISTANCES(jnp.asarray(a), jnp.asarray(b)))
    np.testing.assert_allclose(got, ref.sq_distances(a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 1024])
def test_min_sq_distances_to_members_chunks(chunk_size):
    points = gaussian(5, 25, 4)
    members = np.zeros(25, bool)
    members[np.random.default_rng(5).choice(25, size=10, replace=False)] = True
    got = np.asarray(
        MIN_SQ(
            jnp.asarray(points),
            jnp.asarray(members),
            jnp.asarray(sq_norms(points), jnp.float32),
            chunk_size=chunk_size,
        )
    )
    want = ref.min_sq_distances_to_members(points, members)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[members], 0.0, atol=1e-5)
    assert np.all(got[~members] > 1e-3)


def test_min_sq_distances_to_members_outer_product():
    points = factored(6, 20, 3, 4)
    dense = np.asarray(points.materialize())
    members = random_mask(6, 20, 0.4)
    assert members.sum() > 3
    got = np.asarray(
        MIN_SQ(points, jnp.asarray(members), jnp.asarray(sq_norms(dense), jnp.float32), 3)
    )
    np.testing.assert_allclose(
        got, ref.min_sq_distances_to_members(dense, members), rtol=1e-4, atol=1e-5
    )


def test_min_sq_distances_without_members_is_inf():
    points = gaussian(7, 10, 3)
    sq = jnp.asarray(sq_norms(points), jnp.float32)
    got = np.asarray(MIN_SQ(jnp.asarray(points), jnp.zeros(10, bool), sq, chunk_size=4))
    assert np.all(np.isposinf(got))


# --------------------------------------------------------------------------------------
# k-center greedy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [2, 1024])
def test_k_center_greedy_matches_reference(chunk_size):
    compared = 0
    for seed in range(5):
        points = gaussian(seed, 30, 5, scale=3.0)
        candidates = random_mask(seed + 10, 30, 0.7)
        reference = ~candidates & (np.random.default_rng(seed).uniform(size=30) < 0.6)
        reference[np.flatnonzero(~candidates)[:1]] = True
        want = ref.k_center_greedy(points, candidates, reference, 8)
        got = K_CENTER(
            jnp.asarray(points),
            jnp.asarray(candidates),
            jnp.asarray(reference),
            budget=8,
            key=jax.random.key(seed),
            chunk_size=chunk_size,
        )
        assert_valid_picks(got, candidates, 8)
        if kcenter_margins_ok(points, candidates, reference, want):
            np.testing.assert_array_equal(np.asarray(got), want)
            compared += 1
    assert compared >= 4


def test_k_center_greedy_empty_reference():
    points = gaussian(21, 24, 3, scale=3.0)
    candidates = random_mask(21, 24, 0.6)
    reference = np.zeros(24, bool)
    compared, firsts = 0, set()
    for seed in range(4):
        got = np.asarray(
            K_CENTER(
                jnp.asarray(points),
                jnp.asarray(candidates),
                jnp.asarray(reference),
                budget=6,
                key=jax.random.key(seed),
            )
        )
        assert_valid_picks(got, candidates, 6)
        # After the random first pick the run is deterministic.
        want = ref.k_center_greedy(points, candidates, reference, 6, first=int(got[0]))
        firsts.add(int(got[0]))
        if kcenter_margins_ok(points, candidates, reference, want):
            np.testing.assert_array_equal(got, want)
            compared += 1
    assert compared >= 3
    assert len(firsts) > 1, "the first pick should depend on the key"


def test_k_center_greedy_first_pick_is_uniform():
    n, trials = 10, 3000
    points = jnp.asarray(gaussian(22, n, 2))
    candidates = np.ones(n, bool)
    candidates[[0, 4]] = False
    keys = jax.random.split(jax.random.key(7), trials)
    first = jax.jit(
        jax.vmap(
            lambda k: selectors.k_center_greedy(
                points, jnp.asarray(candidates), jnp.zeros(n, bool), 1, k
            )[0]
        )
    )
    picks = np.asarray(first(keys))
    assert np.all(candidates[picks])
    counts = np.bincount(picks, minlength=n)[candidates]
    _, p_value = stats.chisquare(counts)
    assert p_value > 1e-4, (counts, p_value)


def test_k_center_greedy_outer_product():
    for seed, (kind, d) in itertools.product(range(2), [("linear", 4), ("bias_linear", 3)]):
        points = factored(8 + seed, 24, 3, d, kind)
        dense = np.asarray(points.materialize())
        candidates = random_mask(8 + seed, 24, 0.7)
        reference = ~candidates
        want = ref.k_center_greedy(dense, candidates, reference, 6)
        assert kcenter_margins_ok(dense, candidates, reference, want)
        got = K_CENTER(
            points,
            jnp.asarray(candidates),
            jnp.asarray(reference),
            budget=6,
            key=jax.random.key(0),
            chunk_size=2,
        )
        np.testing.assert_array_equal(np.asarray(got), want)


def test_k_center_greedy_two_approximation():
    worst = 0.0
    n = 8
    for seed in range(10):
        points = gaussian(100 + seed, n, 2)
        for k in (1, 2, 3):
            picks = np.asarray(
                K_CENTER(
                    jnp.asarray(points),
                    jnp.ones(n, bool),
                    jnp.zeros(n, bool),
                    budget=k,
                    key=jax.random.key(seed),
                )
            )
            assert_valid_picks(picks, np.ones(n, bool), k)
            greedy = ref.covering_radius(points, picks)
            optimal = ref.optimal_k_center_radius(points, k)
            assert greedy <= 2.0 * optimal * (1 + 1e-5) + 1e-6, (seed, k, greedy, optimal)
            assert greedy >= optimal * (1 - 1e-9), "the brute force must be optimal"
            worst = max(worst, greedy / optimal)
    assert worst > 1.0, "some instance should make greedy suboptimal (non-vacuous bound)"


def test_k_center_greedy_validation():
    points = jnp.asarray(gaussian(0, 5, 2))
    for budget in (0, 6):
        with pytest.raises(ValueError, match="budget"):
            K_CENTER(
                points, jnp.ones(5, bool), jnp.zeros(5, bool), budget=budget, key=jax.random.key(0)
            )


# --------------------------------------------------------------------------------------
# k-means++ seeding
# --------------------------------------------------------------------------------------


def test_sample_by_weight_matches_reference():
    rng = np.random.default_rng(0)
    for _ in range(30):
        weights = rng.uniform(size=9).astype(np.float32)
        weights[rng.uniform(size=9) < 0.4] = 0.0
        if weights.sum() == 0:
            continue
        u = np.float32(rng.uniform())
        got = int(SAMPLE_BY_WEIGHT(jnp.asarray(weights), jnp.asarray(u)))
        assert weights[got] > 0
        assert got == ref.sample_by_weight(weights, float(u))
    # u just below 1 must not run past the last positive weight.
    weights = jnp.array([0.0, 1.0, 0.3, 0.0, 0.0], jnp.float32)
    almost_one = jnp.float32(np.nextafter(np.float32(1), np.float32(0)))
    assert int(selectors.sample_by_weight(weights, almost_one)) == 2
    assert int(selectors.sample_by_weight(weights, jnp.float32(0.0))) == 1


@pytest.mark.parametrize("first", ["uniform", "max_norm"])
def test_kmeans_plusplus_matches_reference(first):
    for seed in range(5):
        points = gaussian(seed, 30, 4, scale=2.0)
        candidates = random_mask(seed + 3, 30, 0.7)
        uniforms = np.random.default_rng(seed + 9).uniform(size=10).astype(np.float32)
        got = KPP(jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(uniforms), first=first)
        assert_valid_picks(got, candidates, 10)
        want = ref.kmeans_plusplus(points, candidates, uniforms, first=first)
        np.testing.assert_array_equal(np.asarray(got), want)
        if first == "max_norm":
            norms = np.where(candidates, sq_norms(points), -1)
            assert got[0] == np.argmax(norms)


@pytest.mark.parametrize("first", ["uniform", "max_norm"])
def test_kmeans_plusplus_outer_product(first):
    # linear with D = 3 and bias_linear with D = 2 share shapes (one compilation).
    for seed, (kind, d) in itertools.product(
        range(3), [("linear", 3), ("bias_linear", 2), ("bias", 3)]
    ):
        points = factored(seed, 26, 4, d, kind)
        dense = np.asarray(points.materialize())
        candidates = random_mask(seed + 1, 26, 0.8)
        uniforms = np.random.default_rng(seed + 2).uniform(size=8).astype(np.float32)
        got = KPP(points, jnp.asarray(candidates), jnp.asarray(uniforms), first=first)
        assert_valid_picks(got, candidates, 8)
        want = ref.kmeans_plusplus(dense, candidates, uniforms, first=first)
        np.testing.assert_array_equal(np.asarray(got), want)
        dense_got = KPP(
            jnp.asarray(dense), jnp.asarray(candidates), jnp.asarray(uniforms), first=first
        )
        np.testing.assert_array_equal(np.asarray(got), np.asarray(dense_got))


def duplicated(locations: np.ndarray, n: int, seed: int) -> np.ndarray:
    which = np.random.default_rng(seed).permutation(np.arange(n) % len(locations))
    return locations[which]


@pytest.mark.parametrize("first", ["uniform", "max_norm"])
def test_kmeans_plusplus_duplicates_exact_coordinates(first):
    # Integer coordinates: every squared distance is exact in float32, so duplicates of a
    # chosen point weigh exactly 0 and, once all locations are chosen, the draw must be
    # uniform over the remaining candidates.
    locations = np.array([[0, 0, 0], [3, 1, 0], [0, -2, 4]], np.float32)
    points = duplicated(locations, 24, 0)
    candidates = np.ones(24, bool)
    candidates[[2, 11]] = False
    for seed in range(4):
        uniforms = np.random.default_rng(seed).uniform(size=14).astype(np.float32)
        got = np.asarray(
            KPP(jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(uniforms), first=first)
        )
        assert_valid_picks(got, candidates, 14)
        distinct_rows = {tuple(row) for row in points[got[:3]].tolist()}
        assert len(distinct_rows) == 3, "the first three picks must cover all locations"
        np.testing.assert_array_equal(got, ref.kmeans_plusplus(points, candidates, uniforms, first))


def test_duplicates_have_zero_distance():
    # KNOWN JAXAL BUG (fails until fixed). Duplicates of non-representable coordinates.
    # sq_distances expands ||x||^2 + ||y||^2 - 2<x, y>, which leaves round-off instead of 0
    # for identical points: 2.98e-08 for x = [0.1, 0.2, 0.3]. Consequences, both against
    # the docstrings:
    # * kmeans_plusplus: "if every remaining candidate sits on a chosen point (all weights
    #   zero), the draw is uniform over the remaining candidates" never triggers; the draw
    #   follows the round-off noise instead.
    # * k_center_greedy: "ties go to the lower index" fails among points at distance 0.
    a, b = [0.1, 0.2, 0.3], [1.0, 0.0, 0.0]
    points = np.array([a, b, b, a], np.float32)
    x = jnp.asarray(points)
    self_distance = float(selectors.sq_distances(x[:1], x[:1])[0, 0])

    uniforms = np.array([0.0, 0.5, 0.0, 0.0], np.float32)
    kpp = np.asarray(selectors.kmeans_plusplus(x, jnp.ones(4, bool), jnp.asarray(uniforms)))
    kpp_want = ref.kmeans_plusplus(points, np.ones(4, bool), uniforms)  # [0, 2, 1, 3]
    assert_valid_picks(kpp, np.ones(4, bool), 4)

    candidates, reference = np.array([0, 0, 1, 1], bool), np.array([1, 1, 0, 0], bool)
    kc = np.asarray(
        selectors.k_center_greedy(
            x, jnp.asarray(candidates), jnp.asarray(reference), 2, jax.random.key(0)
        )
    )
    kc_want = ref.k_center_greedy(points, candidates, reference, 2)  # [2, 3]: all tied at 0
    assert_valid_picks(kc, candidates, 2)

    assert (self_distance, kpp.tolist(), kc.tolist()) == (
        0.0,
        kpp_want.tolist(),
        kc_want.tolist(),
    ), (
        f"sq distance of a point to itself = {self_distance!r} (expected 0.0); "
        f"kmeans_plusplus picks {kpp.tolist()}, the uniform fallback gives {kpp_want.tolist()}; "
        f"k_center_greedy picks {kc.tolist()}, lowest index on ties gives {kc_want.tolist()}"
    )


def test_k_center_greedy_duplicates_exact_coordinates():
    # Integer coordinates (exact distances): once every location is covered all remaining
    # candidates tie at 0 and go in index order.
    locations = np.array([[0, 0], [5, 1], [-2, 3]], np.float32)
    points = duplicated(locations, 18, 3)
    candidates = np.ones(18, bool)
    reference = np.zeros(18, bool)
    reference[[0]] = True
    candidates[[0]] = False
    got = np.asarray(
        K_CENTER(
            jnp.asarray(points),
            jnp.asarray(candidates),
            jnp.asarray(reference),
            budget=10,
            key=jax.random.key(0),
        )
    )
    assert_valid_picks(got, candidates, 10)
    np.testing.assert_array_equal(got, ref.k_center_greedy(points, candidates, reference, 10))


def test_kmeans_plusplus_duplicates_random_data_distinct():
    # Many identical rows (random float coordinates): picks must stay distinct candidates
    # and the first picks must cover every distinct location.
    locations = gaussian(31, 4, 6, scale=2.0)
    points = duplicated(locations, 40, 1)
    candidates = random_mask(31, 40, 0.8)
    covered = {tuple(row) for row in points[candidates].tolist()}
    for first in ("uniform", "max_norm"):
        for seed in range(3):
            uniforms = np.random.default_rng(seed).uniform(size=20).astype(np.float32)
            got = np.asarray(
                KPP(
                    jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(uniforms), first=first
                )
            )
            assert_valid_picks(got, candidates, 20)
            rows = {tuple(row) for row in points[got[: len(covered)]].tolist()}
            assert rows == covered


def test_kmeans_plusplus_validation():
    with pytest.raises(ValueError, match="first"):
        selectors.kmeans_plusplus(jnp.zeros((4, 2)), jnp.ones(4, bool), jnp.zeros(2), first="x")
    with pytest.raises(ValueError, match="budget"):
        selectors.kmeans_plusplus(jnp.zeros((4, 2)), jnp.ones(4, bool), jnp.zeros(5))


# --------------------------------------------------------------------------------------
# Lloyd, nearest_distinct, k-means
# --------------------------------------------------------------------------------------


def blobs(seed: int, per: int, k: int, d: int, spread: float = 10.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    points = centers[np.arange(per * k) % k] + rng.normal(size=(per * k, d))
    return points[rng.permutation(per * k)].astype(np.float32)


@pytest.mark.parametrize("max_iter,tol", [(0, 0.0), (1, 0.0), (3, 0.0), (50, 0.0), (50, 1e-2)])
def test_lloyd_matches_reference(max_iter, tol):
    for seed in range(3):
        points = blobs(seed, 8, 3, 2, spread=3.0)
        candidates = random_mask(seed, 24, 0.8)
        init = points[np.random.default_rng(seed).choice(24, size=4, replace=False)]
        centers, inertia = LLOYD(
            jnp.asarray(points),
            jnp.asarray(candidates),
            jnp.asarray(init),
            max_iter=max_iter,
            tol=tol,
        )
        want_centers, want_inertia = ref.lloyd(points, candidates, init, max_iter, tol)
        np.testing.assert_allclose(np.asarray(centers), want_centers, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(inertia), want_inertia, rtol=1e-4)
        if max_iter == 0:
            np.testing.assert_array_equal(np.asarray(centers), init)


def test_lloyd_in_blocks_with_inactive_centers_matches_reference():
    """More rows than one row block and more centers than one center block (both with a
    clamped last block), a scattered candidate mask and a non-prefix active mask: the
    active centers move as a reference Lloyd over them alone, the others stay."""
    n, k, d = 2600, 300, 3
    points = gaussian(11, n, d, scale=3.0)
    candidates = random_mask(12, n, 0.7)
    init = points[np.random.default_rng(13).choice(n, size=k, replace=False)]
    active = random_mask(14, k, 0.9)
    centers, inertia = LLOYD(
        jnp.asarray(points),
        jnp.asarray(candidates),
        jnp.asarray(init),
        max_iter=2,
        tol=0.0,
        active=jnp.asarray(active),
    )
    want_active, want_inertia = ref.lloyd(points, candidates, init[active], 2)
    centers = np.asarray(centers)
    np.testing.assert_allclose(centers[active], want_active, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(centers[~active], init[~active])
    np.testing.assert_allclose(float(inertia), want_inertia, rtol=1e-4)


def test_kmeans_plusplus_traced_picks():
    """A traced pick count: the first picks of the full seeding, then -1."""
    points = gaussian(21, 40, 4, scale=2.0)
    candidates = random_mask(22, 40, 0.8)
    uniforms = np.random.default_rng(23).uniform(size=12).astype(np.float32)
    want = ref.kmeans_plusplus(points, candidates, uniforms)
    run = jax.jit(
        lambda picks: selectors.kmeans_plusplus(
            jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(uniforms), picks=picks
        )
    )
    np.testing.assert_array_equal(np.asarray(run(12)), want)
    got = np.asarray(run(7))
    np.testing.assert_array_equal(got[:7], want[:7])
    assert np.all(got[7:] == -1)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.9])
def test_kmeans_on_every_capacity_matches_reference(fraction):
    """Few, some and most points as candidates: the run happens at a different static
    capacity each time (N = 4,100: 4,100, 2,050 and 1,025 rows), and its picks are the
    reference k-means++ seeding, Lloyd and nearest-distinct of the same uniforms."""
    from jaxal.selectors import _kmeans

    n, budget = 4100, 6
    assert len(_kmeans.capacities(n, budget)) == 3
    points = blobs(31, n // 4, 4, 2, spread=6.0)[:n]
    points = np.concatenate([points, points[: n - len(points)]])
    candidates = random_mask(32, n, fraction)
    key = jax.random.key(33)
    got = KMEANS_FOUR_STEPS(jnp.asarray(points), jnp.asarray(candidates), key=key)
    uniforms = np.asarray(jax.random.uniform(jax.random.split(key, 1)[0], (budget,)))
    seeds = ref.kmeans_plusplus(points, candidates, uniforms)
    centers, _ = ref.lloyd(points, candidates, points[seeds], 4)
    want = ref.nearest_distinct(points, candidates, centers)
    assert_valid_picks(got, candidates, budget)
    np.testing.assert_array_equal(np.asarray(got), want)


def test_lloyd_relative_inertia_tolerance():
    # Uniform data converges slowly, so tol = 0.03 stops some runs before convergence (the
    # relative inertia decreases of these runs stay >= 3% away from 0.03).
    stopped_early = 0
    for seed in range(4):
        points = np.random.default_rng(seed).uniform(size=(60, 2)).astype(np.float32)
        candidates = np.ones(60, bool)
        candidates[::7] = False
        init = points[:6]
        centers, inertia = LLOYD(
            jnp.asarray(points),
            jnp.asarray(candidates),
            jnp.asarray(init),
            max_iter=50,
            tol=0.03,
        )
        want_centers, want_inertia = ref.lloyd(points, candidates, init, 50, 0.03)
        np.testing.assert_allclose(np.asarray(centers), want_centers, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(inertia), want_inertia, rtol=1e-5)
        converged, _ = ref.lloyd(points, candidates, init, 50, 0.0)
        stopped_early += not np.allclose(converged, want_centers)
    assert stopped_early >= 1


def test_lloyd_empty_cluster_keeps_center():
    points = blobs(4, 10, 2, 3)
    candidates = np.ones(20, bool)
    far = np.full(3, 1e3, np.float32)
    init = np.stack([points[0], points[1], far, points[2]])
    centers, inertia = LLOYD(
        jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(init), max_iter=20, tol=0.0
    )
    centers = np.asarray(centers)
    np.testing.assert_array_equal(centers[2], far)
    want_centers, want_inertia = ref.lloyd(points, candidates, init, 20)
    np.testing.assert_allclose(centers, want_centers, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(inertia), want_inertia, rtol=1e-4)


def test_lloyd_ignores_non_candidates():
    points = blobs(5, 10, 2, 2)
    outliers = np.full((5, 2), 500.0, np.float32)
    data = np.concatenate([points, outliers])
    candidates = np.concatenate([np.ones(20, bool), np.zeros(5, bool)])
    init = points[:2]
    with_outliers, inertia = LLOYD(
        jnp.asarray(data), jnp.asarray(candidates), jnp.asarray(init), max_iter=30, tol=0.0
    )
    alone, inertia_alone = LLOYD(
        jnp.asarray(points), jnp.ones(20, bool), jnp.asarray(init), max_iter=30, tol=0.0
    )
    np.testing.assert_allclose(np.asarray(with_outliers), np.asarray(alone), rtol=1e-6)
    np.testing.assert_allclose(float(inertia), float(inertia_alone), rtol=1e-6)
    assert np.all(np.abs(np.asarray(with_outliers)) < 100)


def test_nearest_distinct_matches_reference():
    for seed in range(4):
        points = gaussian(seed, 20, 3)
        candidates = random_mask(seed + 40, 20, 0.6)
        centers = gaussian(seed + 60, 6, 3)
        got = NEAREST_DISTINCT(jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(centers))
        assert_valid_picks(got, candidates, 6)
        np.testing.assert_array_equal(
            np.asarray(got), ref.nearest_distinct(points, candidates, centers)
        )
    # Identical centers: the candidates in order of distance to that center.
    points = np.array([[0.0], [5.0], [1.0], [3.0], [2.0]], np.float32)
    centers = np.zeros((4, 1), np.float32)
    got = NEAREST_DISTINCT(jnp.asarray(points), jnp.ones(5, bool), jnp.asarray(centers))
    np.testing.assert_array_equal(np.asarray(got), [0, 2, 4, 3])


def test_nearest_distinct_many_centers_and_conflicts():
    # 150 centers (more than one block of the nearest-row pass, not a multiple of it),
    # drawn around 20 of the points so that most centers' nearest point is taken earlier.
    rng = np.random.default_rng(5)
    points = rng.normal(size=(400, 4)).astype(np.float32)
    candidates = rng.random(400) < 0.7
    centers = (points[rng.integers(0, 20, 150)] + rng.normal(0, 0.05, (150, 4))).astype(np.float32)
    got = NEAREST_DISTINCT(jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(centers))
    assert_valid_picks(got, candidates, 150)
    np.testing.assert_array_equal(
        np.asarray(got), ref.nearest_distinct(points, candidates, centers)
    )


def test_nearest_distinct_ties_and_fill():
    points = np.array([[1.0], [-1.0], [1.0], [9.0]], np.float32)
    candidates = np.array([True, True, True, False])
    centers = np.array([[0.0], [1.0], [9.0], [0.0]], np.float32)
    got = NEAREST_DISTINCT(jnp.asarray(points), jnp.asarray(candidates), jnp.asarray(centers))
    # center 0: 0 and 1 tie with 2 at distance 1 -> index 0; center 1: 2 (exact);
    # center 2: only 1 is left; center 3: none left.
    np.testing.assert_array_equal(np.asarray(got), [0, 2, 1, -1])


@pytest.mark.parametrize("n_init", [1, 3])
def test_kmeans_one_pick_per_separated_cluster(n_init):
    k = 4
    points = blobs(11, 10, k, 3, spread=20.0)
    # Cluster labels: the nearest generating center (blobs draws those first).
    true_centers = np.random.default_rng(11).normal(size=(k, 3)) * 20.0
    labels = np.argmin(ref.sq_distances(points, true_centers), axis=1)
    candidates = np.ones(40, bool)
    candidates[::5] = False
    for seed in range(3):
        got = np.asarray(
            KMEANS(
                jnp.asarray(points),
                jnp.asarray(candidates),
                budget=k,
                key=jax.random.key(seed),
                n_init=n_init,
                max_iter=100,
            )
        )
        assert_valid_picks(got, candidates, k)
        assert sorted(labels[got].tolist()) == list(range(k)), (got, labels[got])


def test_kmeans_distinct_on_duplicates():
    points = duplicated(np.array([[0, 0], [4, 4]], np.float32), 16, 2)
    candidates = random_mask(3, 16, 0.7)
    got = KMEANS(
        jnp.asarray(points),
        jnp.asarray(candidates),
        budget=6,
        key=jax.random.key(0),
        n_init=2,
        max_iter=10,
    )
    assert_valid_picks(got, candidates, 6)


# --------------------------------------------------------------------------------------
# Shared contracts: -1 fill, jit == eager
# --------------------------------------------------------------------------------------


SHARED_N, SHARED_BUDGET = 16, 5


def shared_inputs(candidates: np.ndarray) -> dict:
    """Inputs of one shape for the -1 fill and jit tests (they share compilations)."""
    n = SHARED_N
    points = jnp.asarray(blobs(1, 4, 4, 3))  # well separated: no tie between candidates
    return {
        "points": points,
        "outer": factored(1, n, 3, 2),
        "candidates": jnp.asarray(candidates),
        "reference": jnp.asarray(~candidates & (np.arange(n) % 3 == 0)),
        "empty": jnp.zeros(n, bool),
        "key": jax.random.key(3),
        "uniforms": jnp.asarray(
            np.random.default_rng(3).uniform(size=SHARED_BUDGET).astype(np.float32)
        ),
        "scores": jnp.asarray(np.random.default_rng(4).normal(size=n).astype(np.float32)),
        "centers": points[:SHARED_BUDGET] + 0.5,
        "sq": jnp.sum(points * points, axis=1),
    }


def selector_calls(x: dict, jitted: bool) -> dict:
    """Every selector on the shared inputs, through the module's jit wrappers or eagerly."""
    b = SHARED_BUDGET
    if jitted:
        calls = {
            "top_k": lambda: TOP_K(x["scores"], x["candidates"], budget=b),
            "random_subset": lambda: RANDOM_SUBSET(x["candidates"], budget=b, key=x["key"]),
            "k_center/reference": lambda: K_CENTER(
                x["points"], x["candidates"], x["reference"], budget=b, key=x["key"]
            ),
            "k_center/empty": lambda: K_CENTER(
                x["points"], x["candidates"], x["empty"], budget=b, key=x["key"]
            ),
            "k_center/outer": lambda: K_CENTER(
                x["outer"], x["candidates"], x["reference"], budget=b, key=x["key"], chunk_size=2
            ),
            "kmeans++/uniform": lambda: KPP(x["points"], x["candidates"], x["uniforms"]),
            "kmeans++/max_norm": lambda: KPP(
                x["points"], x["candidates"], x["uniforms"], first="max_norm"
            ),
            "kmeans++/outer": lambda: KPP(
                x["outer"], x["candidates"], x["uniforms"], first="max_norm"
            ),
            "kmeans": lambda: KMEANS(
                x["points"], x["candidates"], budget=b, key=x["key"], n_init=2, max_iter=5
            ),
            "nearest_distinct": lambda: NEAREST_DISTINCT(
                x["points"], x["candidates"], x["centers"]
            ),
        }
    else:
        calls = {
            "top_k": lambda: selectors.top_k(x["scores"], x["candidates"], b),
            "random_subset": lambda: selectors.random_subset(x["candidates"], b, x["key"]),
            "k_center/reference": lambda: selectors.k_center_greedy(
                x["points"], x["candidates"], x["reference"], b, x["key"]
            ),
            "k_center/empty": lambda: selectors.k_center_greedy(
                x["points"], x["candidates"], x["empty"], b, x["key"]
            ),
            "k_center/outer": lambda: selectors.k_center_greedy(
                x["outer"], x["candidates"], x["reference"], b, x["key"], 2
            ),
            "kmeans++/uniform": lambda: selectors.kmeans_plusplus(
                x["points"], x["candidates"], x["uniforms"]
            ),
            "kmeans++/max_norm": lambda: selectors.kmeans_plusplus(
                x["points"], x["candidates"], x["uniforms"], first="max_norm"
            ),
            "kmeans++/outer": lambda: selectors.kmeans_plusplus(
                x["outer"], x["candidates"], x["uniforms"], first="max_norm"
            ),
            "kmeans": lambda: selectors.kmeans(
                x["points"], x["candidates"], b, x["key"], n_init=2, max_iter=5
            ),
            "nearest_distinct": lambda: selectors.nearest_distinct(
                x["points"], x["candidates"], x["centers"]
            ),
        }
    return {name: np.asarray(call()) for name, call in calls.items()}


def test_every_selector_fills_unfillable_slots_with_minus_one():
    candidates = np.zeros(SHARED_N, bool)
    candidates[[1, 4, 8]] = True
    results = selector_calls(shared_inputs(candidates), jitted=True)
    assert len(results) == 10
    for name, picks in results.items():
        assert_valid_picks(picks, candidates, SHARED_BUDGET)
        assert sorted(picks[:3].tolist()) == [1, 4, 8], name
    # budget == N with three candidates.
    x = shared_inputs(candidates)
    picks = KMEANS(x["points"], x["candidates"], budget=SHARED_N, key=x["key"], max_iter=3)
    assert_valid_picks(picks, candidates, SHARED_N)
    picks = K_CENTER(x["points"], x["candidates"], x["empty"], budget=SHARED_N, key=x["key"])
    assert_valid_picks(picks, candidates, SHARED_N)


def test_jit_matches_eager():
    x = shared_inputs(random_mask(2, SHARED_N, 0.7))
    assert int(x["candidates"].sum()) > SHARED_BUDGET
    eager = selector_calls(x, jitted=False)
    jitted = selector_calls(x, jitted=True)
    for name, picks in eager.items():
        np.testing.assert_array_equal(jitted[name], picks, err_msg=name)
        assert np.all(picks >= 0), name
    # The float-valued functions agree to round-off.
    float_cases = [
        (
            selectors.lloyd(x["points"], x["candidates"], x["centers"], 10, 1e-4),
            LLOYD(x["points"], x["candidates"], x["centers"], max_iter=10, tol=1e-4),
        ),
        (
            selectors.min_sq_distances_to_members(x["points"], x["reference"], x["sq"], 3),
            MIN_SQ(x["points"], x["reference"], x["sq"], chunk_size=3),
        ),
        (
            selectors.sq_distances(x["outer"], x["outer"]),
            jax.jit(selectors.sq_distances)(x["outer"], x["outer"]),
        ),
    ]
    for eager_value, jitted_value in float_cases:
        for e, j in zip(jax.tree.leaves(eager_value), jax.tree.leaves(jitted_value), strict=True):
            np.testing.assert_allclose(np.asarray(j), np.asarray(e), rtol=1e-5, atol=1e-5)

"""Submodular functions, kernels and the greedy maximizer against NumPy float64 and peers.

References: tests/reference_submodular.py (written from the math). Peers: apricot-select
and submodlib-py on the same precomputed kernels, skipped when not installed.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.selectors import OuterProduct
from jaxal.selectors.submodular import functions
from jaxal.selectors.submodular import kernels as _kernels
from jaxal.selectors.submodular.functions import SUBMODULAR_FUNCTIONS
from jaxal.selectors.submodular.greedy import SubmodularFn, submodular_greedy
from jaxal.selectors.submodular.kernels import Similarity, similarity_kernel


def _picks_and_gains(selection):
    """(indices int32 [budget], gains float32 [budget]) of a ``Selection``."""
    return selection.indices, selection.info.gains


try:
    from tests import reference_submodular as ref
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference_submodular as ref

N, BUDGET = 12, 5

# name -> (hyperparameters, the reference f(data, S, **hparams), takes `ground`, monotone)
FUNCTIONS = {
    "facility_location": ((), ref.facility_location, True, True),
    "graph_cut": ((("lambda_", 0.1),), ref.graph_cut, True, True),
    "saturated_coverage": ((("alpha", 0.3),), ref.saturated_coverage, True, True),
    "sum_redundancy": ((), ref.sum_redundancy, False, False),
    "feature_based": ((("concave", "sqrt"),), ref.feature_based, False, True),
    "log_determinant": ((("lambda_", 1.0),), ref.log_determinant, False, True),
    "disparity_sum": ((), ref.disparity_sum, False, False),
    "disparity_min": ((), ref.disparity_min, False, False),
}
KERNEL_FUNCTIONS = [name for name in FUNCTIONS if name != "feature_based"]
SUBMODULAR = [name for name in FUNCTIONS if not name.startswith("disparity")]
MONOTONE = [name for name, spec in FUNCTIONS.items() if spec[3]]


# --------------------------------------------------------------------------------------
# Fixtures and jitted entry points (compiled once per function and reused across seeds)
# --------------------------------------------------------------------------------------


def points(seed: int, n: int = N, d: int = 3, clusters: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    if clusters:
        x += 4.0 * rng.normal(size=(clusters, d))[rng.integers(clusters, size=n)]
    return x.astype(np.float32)


def instance(seed: int, name: str, metric: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """(the data jaxal gets, the float64 data the reference gets) for one function.

    Kernel functions get points (the kernel is built from them, densely by the reference);
    feature based gets non-negative features.
    """
    x = points(seed)
    if name == "feature_based":
        features = np.abs(x)
        return features, features.astype(np.float64)
    return x, ref.kernel(x, metric=metric)


def candidate_mask(seed: int, n: int = N, fraction: float = 0.75) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    mask = rng.uniform(size=n) < fraction
    mask[rng.choice(n, BUDGET + 1, replace=False)] = True
    return mask


def build(name, data, ground, hparams, metric, on_the_fly) -> SubmodularFn:
    kwargs = dict(hparams)
    if FUNCTIONS[name][2]:
        kwargs["ground"] = ground
    if name == "feature_based":
        return SUBMODULAR_FUNCTIONS[name](data, **kwargs)
    if on_the_fly:
        kernel = Similarity(data, metric=metric, chunk_size=5)
    else:
        kernel = similarity_kernel(data, metric=metric)
        if name == "facility_location":
            kwargs["symmetric"] = True  # the rectangular test covers the transposed layout
    return SUBMODULAR_FUNCTIONS[name](kernel, **kwargs)


def _weighted_sums(sim, weights, columns):
    return _kernels.reduce_columns(sim, lambda entries, w: entries * w, (weights,), columns)


COLUMN = jax.jit(_kernels.column)
SIMILARITY_KERNEL = jax.jit(similarity_kernel, static_argnames=("metric", "chunk_size"))
WEIGHTED_SUMS = jax.jit(_weighted_sums)


STATIC = ("name", "hparams", "metric", "on_the_fly")


@functools.partial(jax.jit, static_argnames=STATIC)
def gains_after(data, ground, members, count, indices, *, name, hparams, metric, on_the_fly):
    """(gains [N], gains_at(indices)) after adding members[:count] in order."""
    fn = build(name, data, ground, hparams, metric, on_the_fly)
    state = fn.init(members.shape[0])
    state = jax.lax.fori_loop(0, count, lambda t, s: fn.update(s, members[t]), state)
    return fn.gains(state), fn.gains_at(state, indices)


GREEDY_STATIC = (*STATIC, "budget", "optimizer", "lazy_batch", "sample_size", "sample_chunk")


@functools.partial(jax.jit, static_argnames=GREEDY_STATIC)
def greedy(
    data,
    ground,
    candidates,
    key,
    *,
    name,
    hparams,
    metric="euclidean",
    on_the_fly=False,
    budget=BUDGET,
    optimizer="naive",
    lazy_batch=3,
    sample_size=None,
    sample_chunk=None,
):
    fn = build(name, data, ground, hparams, metric, on_the_fly)
    return _picks_and_gains(
        submodular_greedy(
            fn,
            candidates,
            budget,
            key,
            optimizer=optimizer,
            lazy_batch=lazy_batch,
            sample_size=sample_size,
            sample_chunk=sample_chunk,
        )
    )


def run(name, data, candidates, ground=None, key=0, **kwargs):
    ground = np.ones(len(candidates), bool) if ground is None else ground
    picks, gains = greedy(
        jnp.asarray(data),
        jnp.asarray(ground),
        jnp.asarray(candidates),
        jax.random.key(key),
        name=name,
        hparams=FUNCTIONS[name][0],
        **kwargs,
    )
    return np.asarray(picks), np.asarray(gains)


def reference_fn(name, data64, ground=None):
    hparams, f, takes_ground, _ = FUNCTIONS[name]
    kwargs = dict(hparams)
    if takes_ground and ground is not None:
        kwargs["ground"] = ground
    return lambda s: f(data64, list(s), **kwargs)


def assert_valid_picks(picks, candidates, budget) -> None:
    picks = np.asarray(picks)
    assert picks.shape == (budget,) and picks.dtype == np.int32
    expected = min(budget, int(np.sum(candidates)))
    np.testing.assert_array_equal(picks[expected:], -1)
    filled = picks[:expected]
    assert len(set(filled.tolist())) == expected, picks
    assert np.all(filled >= 0) and np.all(candidates[filled]), picks


def assert_greedy_matches(f, picks, candidates, tol=1e-4) -> None:
    """Pick for pick equal to the NumPy greedy, near-ties aside.

    Replaying jaxal's picks, each must have the best reference gain (within ``tol``
    relative); wherever the reference's winner beats its runner-up by more than ``tol``,
    the pick must be that winner, which the regret check then implies exactly.
    """
    want, _ = ref.naive_greedy(f, len(candidates), candidates, len(picks))
    regret = ref.regret(f, picks, candidates)
    scale = max(1.0, abs(f(list(picks[picks >= 0]))))
    assert np.all(regret <= tol * scale), (picks, want, regret)
    gaps = ref.greedy_margins(f, len(candidates), want, candidates)
    clear = int(np.argmax(gaps <= tol * scale)) if np.any(gaps <= tol * scale) else len(gaps)
    np.testing.assert_array_equal(picks[:clear], want[:clear])


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_kernels_match_numpy(metric):
    for seed in range(3):
        x = points(seed, 9, 4)
        x[3] = 0.0  # a zero point: cosine 0, with a 0 diagonal in the square kernel
        y = points(seed + 7, 5, 4)
        square = np.asarray(SIMILARITY_KERNEL(jnp.asarray(x), metric=metric, chunk_size=4))
        np.testing.assert_allclose(square, ref.kernel(x, metric=metric), atol=2e-6)
        np.testing.assert_array_equal(np.diagonal(square), ref.kernel(x, metric=metric).diagonal())
        rect = SIMILARITY_KERNEL(jnp.asarray(x), jnp.asarray(y), metric=metric, chunk_size=2)
        assert rect.shape == (9, 5) and rect.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(rect), ref.kernel(x, y, metric), atol=2e-6)


def test_gathered_columns_in_groups_match_numpy():
    rng = np.random.default_rng(5)
    by_column = rng.normal(size=(30, 8)).astype(np.float32)
    memo = rng.normal(size=8).astype(np.float32)
    columns = rng.integers(0, 30, size=11).astype(np.int32)
    want = np.maximum(by_column[columns] - memo, 0.0).astype(np.float64).sum(axis=1)

    def gains(block):  # the facility-location contributions, summed over the rows
        return jnp.sum(functions._gains_over_memo(block, jnp.asarray(memo)), axis=1)

    for max_entries in (8, 24, 80, 1 << 22):  # groups of 1, 3, 10 columns, then one gather
        got = _kernels._reduce_gathered(
            jnp.asarray(by_column), gains, jnp.asarray(columns), max_entries
        )
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_similarity_matches_dense_kernel(metric):
    # Through jax.jit: a Similarity is a pytree whose metric and chunk size are static.
    x, y = points(1, 11, 3), points(2, 6, 3)
    for sim, dense in [
        (Similarity(jnp.asarray(x), metric=metric, chunk_size=4), ref.kernel(x, metric=metric)),
        (Similarity(jnp.asarray(x), jnp.asarray(y), metric, 4), ref.kernel(x, y, metric)),
    ]:
        assert _kernels.kernel_shape(sim) == dense.shape
        prepared = _kernels.prepare_kernel(sim)  # as every function does before reading it
        for j in [0, 3, dense.shape[1] - 1]:
            np.testing.assert_allclose(np.asarray(COLUMN(prepared, j)), dense[:, j], atol=2e-6)
        weights = np.random.default_rng(0).uniform(size=dense.shape[0]).astype(np.float32)
        for columns in [jnp.arange(dense.shape[1]), jnp.array([4, 1, 1])]:
            sums = WEIGHTED_SUMS(prepared, jnp.asarray(weights), columns)
            want = weights @ dense[:, np.asarray(columns)]
            np.testing.assert_allclose(np.asarray(sums), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(_kernels.diagonal(Similarity(jnp.asarray(x), metric=metric))), np.ones(11)
    )


def test_kernel_of_outer_products_is_that_of_the_materialized_points():
    rng = np.random.default_rng(3)
    outer = OuterProduct(
        jnp.asarray(rng.normal(size=(7, 3)), jnp.float32),
        jnp.asarray(rng.normal(size=(7, 4)), jnp.float32),
    )

    @jax.jit
    def fl_gains(outer):  # facility location after picking element 2, on the fly
        fn = SUBMODULAR_FUNCTIONS["facility_location"](Similarity(outer, chunk_size=3))
        return fn.gains(fn.update(fn.init(1), jnp.int32(2)))

    for metric in ["cosine", "euclidean"]:
        want = ref.kernel(np.asarray(outer.materialize()), metric=metric)  # F = 3 * 4
        got = SIMILARITY_KERNEL(outer, metric=metric, chunk_size=3)
        np.testing.assert_allclose(np.asarray(got), want, atol=2e-6)
    want = ref.kernel(np.asarray(outer.materialize()), metric="cosine")
    want_gains = ref.marginal_gains(lambda s: ref.facility_location(want, s), 7, [2])
    others = [0, 1, 3, 4, 5, 6]
    np.testing.assert_allclose(
        np.asarray(fl_gains(outer))[others], want_gains[others], rtol=1e-5, atol=1e-5
    )


# --------------------------------------------------------------------------------------
# Marginal gains
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_marginal_gains_match_numpy(name):
    hparams, _, takes_ground, _ = FUNCTIONS[name]
    variants = [("euclidean", False), ("cosine", False), ("euclidean", True), ("cosine", True)]
    if name == "feature_based":
        variants = [("euclidean", False)]
    for metric, on_the_fly in variants:
        for seed in range(2):
            data, data64 = instance(seed, name, metric)
            rng = np.random.default_rng(seed)
            ground = rng.uniform(size=N) < 0.7 if takes_ground else np.ones(N, bool)
            f = reference_fn(name, data64, ground if takes_ground else None)
            members = rng.choice(N, 4, replace=False)
            indices = rng.choice(N, 5, replace=False)
            for count in [0, 1, 2, 4]:
                gains, gains_at = gains_after(
                    jnp.asarray(data),
                    jnp.asarray(ground),
                    jnp.asarray(members, jnp.int32),
                    count,
                    jnp.asarray(indices, jnp.int32),
                    name=name,
                    hparams=hparams,
                    metric=metric,
                    on_the_fly=on_the_fly,
                )
                want = ref.marginal_gains(f, N, list(members[:count]))
                outside = ~np.isnan(want)
                err = f"{name} {metric} on_the_fly={on_the_fly} |S|={count}"
                np.testing.assert_allclose(
                    np.asarray(gains)[outside], want[outside], rtol=1e-4, atol=1e-5, err_msg=err
                )
                fresh = outside[indices]
                np.testing.assert_allclose(
                    np.asarray(gains_at)[fresh], want[indices][fresh], rtol=1e-4, atol=1e-5
                )


@pytest.mark.parametrize("on_the_fly", [False, True])
def test_facility_location_with_a_rectangular_kernel(on_the_fly):
    # Represent 7 points (rows) by 12 candidates (columns): a dense [7, 12] kernel (stored
    # transposed) or a Similarity(rows, cols).
    x, represented = points(8), points(9, 7)
    kernel = ref.cosine_kernel(represented, x)
    ground = np.arange(7) != 2

    @jax.jit
    def check(represented, x, kernel):
        if on_the_fly:
            data = Similarity(represented, x, "cosine", chunk_size=3)
        else:
            data = kernel
        fn = SUBMODULAR_FUNCTIONS["facility_location"](data, ground=jnp.asarray(ground))
        assert fn.size == N
        state = fn.update(fn.init(1), jnp.int32(4))
        picks = submodular_greedy(fn, jnp.ones(N, bool), 3).indices
        return fn.gains(state), fn.gains_at(state, jnp.array([0, 11])), picks

    gains, gains_at, picks = check(
        jnp.asarray(represented), jnp.asarray(x), jnp.asarray(kernel, jnp.float32)
    )

    def f(s):
        return ref.facility_location(kernel, s, ground)

    want = ref.marginal_gains(f, N, [4])
    np.testing.assert_allclose(np.delete(gains, 4), np.delete(want, 4), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gains_at), want[[0, 11]], rtol=1e-5, atol=1e-6)
    assert_greedy_matches(f, np.asarray(picks), np.ones(N, bool))


@pytest.mark.parametrize("concave", ["sqrt", "log", "inverse"])
def test_feature_based_concave_functions_and_weights(concave):
    features = np.abs(points(4, 9, 4))
    weights = np.array([0.5, 2.0, 1.0, 0.0], np.float32)
    fn = SUBMODULAR_FUNCTIONS["feature_based"](
        jnp.asarray(features), concave=concave, weights=jnp.asarray(weights)
    )
    state = fn.init(2)
    for j in [5, 0]:
        state = fn.update(state, jnp.int32(j))

    def f(s):
        return ref.feature_based(features, s, concave, weights)

    want = ref.marginal_gains(f, 9, [5, 0])
    got = np.asarray(fn.gains(state))
    np.testing.assert_allclose(got[1:5], want[1:5], rtol=1e-5)
    np.testing.assert_allclose(got[6:], want[6:], rtol=1e-5)


def test_log_determinant_with_singular_sets():
    # Duplicates with lambda = 0: the second copy has zero Schur complement -> gain -inf,
    # and the greedy still returns distinct candidates, the duplicate last.
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    fn = SUBMODULAR_FUNCTIONS["log_determinant"](similarity_kernel(jnp.asarray(x)), lambda_=0.0)
    gains = np.asarray(fn.gains(fn.update(fn.init(4), jnp.int32(0))))
    assert gains[1] == -np.inf and np.isfinite(gains[2]) and np.isfinite(gains[3])
    picks = submodular_greedy(fn, jnp.ones(4, bool), 4).indices
    assert_valid_picks(picks, np.ones(4, bool), 4)
    assert int(picks[0]) == 0 and int(picks[1]) == 2


# --------------------------------------------------------------------------------------
# Naive greedy: against the NumPy greedy and against brute force
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_naive_greedy_matches_numpy_greedy(name):
    takes_ground = FUNCTIONS[name][2]
    for seed in range(3):
        on_the_fly = seed == 2 and name != "feature_based"
        data, data64 = instance(seed, name)
        candidates = candidate_mask(seed)
        ground = np.random.default_rng(seed).uniform(size=N) < 0.8 if takes_ground else None
        picks, gains = run(name, data, candidates, ground, on_the_fly=on_the_fly)
        assert_valid_picks(picks, candidates, BUDGET)
        f = reference_fn(name, data64, ground)
        assert_greedy_matches(f, picks, candidates)
        # The returned gains are the marginal gains of the picks, in order.
        values = [f(list(picks[:t])) for t in range(BUDGET + 1)]
        np.testing.assert_allclose(gains, np.diff(values), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MONOTONE)
def test_naive_greedy_within_one_minus_one_over_e_of_brute_force(name):
    for seed in range(3):
        data, data64 = instance(seed + 10, name)
        candidates = np.zeros(N, bool)
        candidates[np.random.default_rng(seed).choice(N, 8, replace=False)] = True
        picks, _ = run(name, data, candidates)
        f = reference_fn(name, data64)
        assert np.all(ref.marginal_gains(f, N, []) >= -1e-9)  # monotone on this instance
        for k in [3, BUDGET]:  # a greedy prefix is the greedy solution for that budget
            greedy_value = f(list(picks[:k]))
            optimum = ref.brute_force_max(f, candidates, k)
            assert greedy_value >= (1 - 1 / math.e) * optimum - 1e-6, (greedy_value, optimum)
            assert greedy_value <= optimum + 1e-4 * abs(optimum)


# --------------------------------------------------------------------------------------
# Lazy and stochastic greedy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUBMODULAR)
def test_lazy_equals_naive(name):
    for seed in range(4):
        data, _ = instance(seed + 20, name)
        candidates = candidate_mask(seed)
        naive = run(name, data, candidates)
        lazy = run(name, data, candidates, optimizer="lazy")
        np.testing.assert_array_equal(lazy[0], naive[0])
        np.testing.assert_allclose(lazy[1], naive[1], rtol=1e-5, atol=1e-6)


@functools.partial(jax.jit, static_argnames=("name", "optimizer", "lazy_batch", "lazy_rounds"))
def _greedy_on_kernel(kernel, *, name, optimizer, lazy_batch=1, lazy_rounds=1):
    fn = SUBMODULAR_FUNCTIONS[name](kernel, **dict(FUNCTIONS[name][0]))
    return submodular_greedy(
        fn,
        jnp.ones(kernel.shape[0], bool),
        kernel.shape[0],
        optimizer=optimizer,
        lazy_batch=lazy_batch,
        lazy_rounds=lazy_rounds,
    ).indices


def test_lazy_equals_naive_with_exact_ties():
    # A kernel of multiples of 1/8 (exact float sums) with duplicated points: many exact
    # ties, which the lazy rule must break exactly like the naive argmax (lowest index).
    for seed in range(1):
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 9, size=(4, 4)) / 8.0
        kernel = np.minimum(base + base.T, 1.0)
        np.fill_diagonal(kernel, 1.0)
        kernel = jnp.asarray(np.kron(kernel, np.ones((3, 3))), jnp.float32)  # 12 x 12, triples
        for name in ["facility_location", "saturated_coverage", "graph_cut", "sum_redundancy"]:
            naive = _greedy_on_kernel(kernel, name=name, optimizer="naive")
            for lazy_batch, lazy_rounds in [(1, 8), (2, 1)]:
                lazy = _greedy_on_kernel(
                    kernel,
                    name=name,
                    optimizer="lazy",
                    lazy_batch=lazy_batch,
                    lazy_rounds=lazy_rounds,
                )
                np.testing.assert_array_equal(np.asarray(lazy), np.asarray(naive), err_msg=name)


def test_lazy_evaluates_fewer_gains():
    full_passes = []
    x = points(7, 40, 3, clusters=5)
    base = SUBMODULAR_FUNCTIONS["facility_location"](similarity_kernel(jnp.asarray(x)))

    def counted(state):
        jax.debug.callback(lambda: full_passes.append(1))
        return base.gains(state)

    fn = base._replace(gains=counted)
    select = jax.jit(
        lambda c: submodular_greedy(fn, c, 10, optimizer="lazy", lazy_batch=4).indices  # noqa: B023
    )
    lazy = np.asarray(select(jnp.ones(40, bool)))
    naive = np.asarray(submodular_greedy(base, jnp.ones(40, bool), 10).indices)
    np.testing.assert_array_equal(lazy, naive)
    # One pass for the initial bounds; the naive greedy makes 10.
    assert 1 <= len(full_passes) <= 3, len(full_passes)


def test_lazy_refuses_non_submodular_functions():
    kernel = similarity_kernel(jnp.asarray(points(0)))
    for name in ["disparity_sum", "disparity_min"]:
        fn = SUBMODULAR_FUNCTIONS[name](kernel)
        assert not fn.submodular
        with pytest.raises(ValueError, match="submodular"):
            submodular_greedy(fn, jnp.ones(N, bool), 3, optimizer="lazy")


@pytest.mark.parametrize("name", ["facility_location", "log_determinant", "feature_based"])
def test_stochastic_greedy(name):
    ratios = []
    for seed in range(4):
        data, data64 = instance(seed + 30, name)
        candidates = candidate_mask(seed)
        f = reference_fn(name, data64)
        picks, _ = run(name, data, candidates, key=seed, optimizer="stochastic")
        assert_valid_picks(picks, candidates, BUDGET)
        again, _ = run(name, data, candidates, key=seed, optimizer="stochastic")
        np.testing.assert_array_equal(again, picks)
        naive, _ = run(name, data, candidates)
        ratios.append(f(list(picks)) / f(list(naive)))
        # A sample of every element is the naive greedy.
        full, _ = run(name, data, candidates, key=seed, optimizer="stochastic", sample_size=N)
        np.testing.assert_array_equal(full, naive)
    assert np.mean(ratios) >= 0.9, ratios
    # Different keys give different samples, hence (here) different picks.
    data, _ = instance(30, name)
    draws = {
        tuple(run(name, data, np.ones(N, bool), key=k, optimizer="stochastic")[0]) for k in range(6)
    }
    assert len(draws) > 1


def _jaxal_draws(key: int, size: int, n: int = N):
    """jaxal's stochastic sample at step t: the ``size`` available elements with the
    largest uniforms of fold_in(key, t)."""

    def draw(t, available):
        uniforms = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.key(key), t), (n,)))
        return np.argsort(-np.where(available, uniforms, -1.0), kind="stable")[:size]

    return draw


@pytest.mark.parametrize("name", ["facility_location", "saturated_coverage", "log_determinant"])
def test_stochastic_lazy_sample_matches_numpy(name):
    # The lazily evaluated sample picks, pick for pick, what a float64 stochastic greedy
    # picks on the same draws, for any slice sizes (never-evaluated elements, then stale
    # ones; 1: one element at a time).
    hparams = FUNCTIONS[name][0]
    for seed in range(3):
        data, data64 = instance(seed + 40, name)
        candidates = candidate_mask(seed)
        want = ref.stochastic_greedy(
            reference_fn(name, data64), candidates, BUDGET, _jaxal_draws(seed, 7)
        )
        for chunk, stale in ((1, 1), (3, 2), (7, 1), (2, 7)):
            picks, _ = run(
                name,
                data,
                candidates,
                key=seed,
                optimizer="stochastic",
                sample_size=7,
                sample_chunk=chunk,
                lazy_batch=stale,
            )
            message = f"{name} {hparams} slices {chunk} then {stale}"
            np.testing.assert_array_equal(picks, want, err_msg=message)


def test_stochastic_default_sample_is_the_papers():
    # By default each step samples ceil(C / budget * ln(1 / epsilon)) of the C candidates
    # (Mirzasoleiman et al.'s n / k log(1 / epsilon)), not of all N elements: the picks are
    # a float64 stochastic greedy's on the first that many of jaxal's draws. Here 10 of 40
    # elements are candidates: 5 sampled per step, not 19 (which would be every candidate
    # left, the naive greedy).
    n, budget = 40, 5
    for seed in range(3):
        x = points(seed + 50, n)
        candidates = np.zeros(n, bool)
        candidates[np.random.default_rng(seed).choice(n, 10, replace=False)] = True
        used = math.ceil(10 / budget * math.log(10))
        f = reference_fn("facility_location", ref.kernel(x.astype(np.float64), metric="euclidean"))
        want = ref.stochastic_greedy(f, candidates, budget, _jaxal_draws(seed, used, n))
        fn = SUBMODULAR_FUNCTIONS["facility_location"](
            similarity_kernel(jnp.asarray(x), metric="euclidean")
        )
        picks = submodular_greedy(
            fn, jnp.asarray(candidates), budget, jax.random.key(seed), optimizer="stochastic"
        ).indices
        np.testing.assert_array_equal(np.asarray(picks), want, err_msg=f"seed {seed}")


def test_stochastic_lazy_sample_evaluates_fewer_gains():
    x = jnp.asarray(points(7, 200, 3, clusters=5))
    base = SUBMODULAR_FUNCTIONS["facility_location"](similarity_kernel(x), symmetric=True)

    def counting(fn, counts):
        def gains_at(state, indices):
            jax.debug.callback(lambda: counts.append(indices.shape[0]))  # noqa: B023
            return fn.gains_at(state, indices)

        return fn._replace(gains_at=gains_at)

    def select(fn):
        return submodular_greedy(
            fn,
            jnp.ones(200, bool),
            20,
            jax.random.key(3),
            optimizer="stochastic",
            sample_size=60,
            sample_chunk=10,
            lazy_batch=10,
        ).indices

    lazy_counts: list[int] = []
    every_counts: list[int] = []
    lazy = select(counting(base, lazy_counts))
    # Declared not submodular, the same function has no bounds: every slice is evaluated.
    every = select(counting(base._replace(submodular=False), every_counts))
    np.testing.assert_array_equal(np.asarray(lazy), np.asarray(every))
    assert sum(every_counts) == 20 * 60
    assert sum(lazy_counts) < 0.8 * sum(every_counts), (sum(lazy_counts), sum(every_counts))


def test_stochastic_default_sample_size():
    # ceil(N / budget * ln(1 / epsilon)) = ceil(12 / 5 * ln 10) = 6 of 12 elements per step:
    # observed through a function that records how many indices gains_at receives.
    sizes = []
    base = SUBMODULAR_FUNCTIONS["facility_location"](similarity_kernel(jnp.asarray(points(0))))

    def gains_at(state, indices):
        sizes.append(indices.shape[0])
        return base.gains_at(state, indices)

    fn = base._replace(gains_at=gains_at)
    options = {"optimizer": "stochastic", "sample_chunk": N}  # the whole sample at once
    submodular_greedy(fn, jnp.ones(N, bool), BUDGET, jax.random.key(0), **options)
    assert set(sizes) == {math.ceil(N / BUDGET * math.log(10))}
    sizes.clear()
    submodular_greedy(fn, jnp.ones(N, bool), BUDGET, jax.random.key(0), epsilon=0.5, **options)
    assert set(sizes) == {math.ceil(N / BUDGET * math.log(2))}
    # By default never-evaluated elements go a third of the sample at a time, elements with
    # a stale bound min(lazy_batch = 64, sample size) at a time.
    sizes.clear()
    submodular_greedy(fn, jnp.ones(N, bool), BUDGET, jax.random.key(0), optimizer="stochastic")
    sample = math.ceil(N / BUDGET * math.log(10))
    assert set(sizes) <= {math.ceil(sample / 3), sample} and math.ceil(sample / 3) in sizes


# --------------------------------------------------------------------------------------
# Shared contracts: -1 fill, jit == eager, errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["naive", "lazy", "stochastic"])
def test_unfillable_slots_are_minus_one(optimizer):
    candidates = np.zeros(N, bool)
    candidates[[2, 7, 9]] = True
    for name in ["facility_location", "log_determinant"]:
        data, _ = instance(0, name)
        picks, gains = run(name, data, candidates, optimizer=optimizer)
        assert_valid_picks(picks, candidates, BUDGET)
        assert sorted(picks[:3].tolist()) == [2, 7, 9]
        np.testing.assert_array_equal(gains[3:], 0.0)
    none, _ = run("facility_location", instance(0, "facility_location")[0], np.zeros(N, bool))
    np.testing.assert_array_equal(none, -1)


def test_jit_matches_eager():
    x = jnp.asarray(points(3))
    candidates = jnp.asarray(candidate_mask(3))
    key = jax.random.key(1)
    for name, optimizer in [
        ("facility_location", "naive"),
        ("facility_location", "stochastic"),
        ("log_determinant", "lazy"),
    ]:
        kwargs = dict(FUNCTIONS[name][0])

        def select(x, candidates, key, name=name, kwargs=kwargs, optimizer=optimizer):
            fn = SUBMODULAR_FUNCTIONS[name](Similarity(x, chunk_size=5), **kwargs)
            return _picks_and_gains(
                submodular_greedy(fn, candidates, BUDGET, key, optimizer=optimizer)
            )

        eager = select(x, candidates, key)
        jitted = jax.jit(select)(x, candidates, key)
        np.testing.assert_array_equal(np.asarray(jitted[0]), np.asarray(eager[0]))
        np.testing.assert_allclose(np.asarray(jitted[1]), np.asarray(eager[1]), rtol=1e-5)


def test_errors_name_the_argument():
    x = jnp.asarray(points(0))
    kernel = similarity_kernel(x)
    fl = SUBMODULAR_FUNCTIONS["facility_location"](kernel)
    ok = jnp.ones(N, bool)
    with pytest.raises(ValueError, match="optimizer"):
        submodular_greedy(fl, ok, 3, optimizer="greedy")
    with pytest.raises(ValueError, match="budget"):
        submodular_greedy(fl, ok, N + 1)
    with pytest.raises(ValueError, match="budget"):
        submodular_greedy(fl, ok, 0)
    with pytest.raises(ValueError, match="candidates"):
        submodular_greedy(fl, jnp.ones(N + 1, bool), 3)
    with pytest.raises(ValueError, match="key"):
        submodular_greedy(fl, ok, 3, optimizer="stochastic")
    with pytest.raises(ValueError, match="epsilon"):
        submodular_greedy(fl, ok, 3, jax.random.key(0), optimizer="stochastic", epsilon=1.5)
    with pytest.raises(TypeError, match="SubmodularFn"):
        submodular_greedy(lambda s: s, ok, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metric"):
        similarity_kernel(x, metric="manhattan")
    with pytest.raises(ValueError, match="square"):
        SUBMODULAR_FUNCTIONS["graph_cut"](kernel[:, :5], lambda_=0.5)
    with pytest.raises(ValueError, match="symmetric"):
        SUBMODULAR_FUNCTIONS["log_determinant"](kernel.at[0, 1].set(0.5), lambda_=1.0)
    with pytest.raises(ValueError, match="symmetric"):
        SUBMODULAR_FUNCTIONS["facility_location"](kernel.at[0, 1].set(0.5), symmetric=True)
    with pytest.raises(ValueError, match="lambda_"):
        SUBMODULAR_FUNCTIONS["log_determinant"](kernel, lambda_=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        SUBMODULAR_FUNCTIONS["saturated_coverage"](kernel, alpha=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        SUBMODULAR_FUNCTIONS["feature_based"](x)
    with pytest.raises(ValueError, match="concave"):
        SUBMODULAR_FUNCTIONS["feature_based"](jnp.abs(x), concave="cube")
    with pytest.raises(ValueError, match="ground"):
        SUBMODULAR_FUNCTIONS["facility_location"](kernel, ground=jnp.ones(3, bool))
    with pytest.raises(ValueError, match="finite"):
        SUBMODULAR_FUNCTIONS["facility_location"](kernel.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="features"):
        similarity_kernel(x, jnp.ones((4, 5)))


# --------------------------------------------------------------------------------------
# Peers on the same precomputed kernels
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_apricot_same_greedy_picks():
    apricot = pytest.importorskip("apricot")
    # apricot's graph cut with alpha is alpha * (ours with lambda = 1 / alpha).
    selections = {
        "facility_location": (apricot.FacilityLocationSelection, {}, {}),
        "graph_cut": (apricot.GraphCutSelection, {"alpha": 4.0}, {"lambda_": 0.25}),
        "saturated_coverage": (apricot.SaturatedCoverageSelection, {"alpha": 0.3}, {"alpha": 0.3}),
        "sum_redundancy": (apricot.SumRedundancySelection, {}, {}),
    }
    for seed in range(1):  # apricot compiles its numba kernels in every fit: one draw
        x = points(seed + 40, 20, 3)
        kernel = ref.euclidean_kernel(x)  # non-negative, as apricot requires
        for name, (selection, theirs, ours) in selections.items():
            fn = SUBMODULAR_FUNCTIONS[name](jnp.asarray(kernel, jnp.float32), **ours)
            picks = np.asarray(submodular_greedy(fn, jnp.ones(20, bool), BUDGET).indices)
            model = selection(BUDGET, metric="precomputed", optimizer="naive", **theirs)
            want = np.asarray(model.fit(kernel).ranking)
            f = reference_fn(name, kernel)
            if name == "graph_cut":
                f = functools.partial(ref.graph_cut, kernel, lambda_=0.25)
            elif name == "saturated_coverage":
                f = functools.partial(ref.saturated_coverage, kernel, alpha=0.3)
            assert np.all(ref.regret(f, want, np.ones(20, bool)) <= 1e-6), name  # greedy
            assert_greedy_matches(f, picks, np.ones(20, bool))
            np.testing.assert_array_equal(picks, want, err_msg=name)
        for concave in ["sqrt"]:  # apricot's default (each fit compiles: one is enough)
            features = np.abs(x).astype(np.float64)
            fn = SUBMODULAR_FUNCTIONS["feature_based"](jnp.asarray(features), concave=concave)
            picks = np.asarray(submodular_greedy(fn, jnp.ones(20, bool), BUDGET).indices)
            model = apricot.FeatureBasedSelection(BUDGET, concave_func=concave, optimizer="naive")
            np.testing.assert_array_equal(picks, np.asarray(model.fit(features).ranking))


@pytest.mark.slow
def test_submodlib_same_values_and_picks():
    submodlib = pytest.importorskip("submodlib")
    from submodlib.functions.featureBased import FeatureBased

    members = [2, 5, 7]
    for metric in ["euclidean", "cosine"]:
        x = points(50)
        kernel = ref.kernel(x, metric=metric).astype(np.float32)
        peers = {
            "facility_location": submodlib.FacilityLocationFunction(
                n=N, mode="dense", sijs=kernel, separate_rep=False
            ),
            "graph_cut": submodlib.GraphCutFunction(
                n=N, mode="dense", lambdaVal=0.1, ggsijs=kernel, separate_rep=False
            ),
            "log_determinant": submodlib.LogDeterminantFunction(
                n=N, mode="dense", lambdaVal=1.0, sijs=kernel
            ),
            "disparity_sum": submodlib.DisparitySumFunction(n=N, mode="dense", sijs=kernel),
            "disparity_min": submodlib.DisparityMinFunction(n=N, mode="dense", sijs=kernel),
        }
        for name, peer in peers.items():
            fn = SUBMODULAR_FUNCTIONS[name](jnp.asarray(kernel), **dict(FUNCTIONS[name][0]))
            state = fn.init(len(members))
            for j in members:
                state = fn.update(state, jnp.int32(j))
            peer.setMemoization(set(members))  # DisparityMin's gains read the memo
            others = [e for e in range(N) if e not in members]
            theirs = [peer.marginalGainWithMemoization(set(members), e) for e in others]
            np.testing.assert_allclose(
                np.asarray(fn.gains(state))[others], theirs, rtol=1e-4, atol=1e-5, err_msg=name
            )
            f = reference_fn(name, kernel.astype(np.float64))
            assert abs(peer.evaluate(set(members)) - f(members)) <= 1e-4 * max(1, abs(f(members)))
        # Greedy picks where the first gains do not tie (submodlib keeps the highest index
        # on ties, jaxal the lowest).
        for name in ["facility_location", "graph_cut"]:
            fn = SUBMODULAR_FUNCTIONS[name](jnp.asarray(kernel), **dict(FUNCTIONS[name][0]))
            picks = np.asarray(submodular_greedy(fn, jnp.ones(N, bool), BUDGET).indices)
            peers[name].clearMemoization()
            theirs = peers[name].maximize(
                budget=BUDGET, optimizer="NaiveGreedy", show_progress=False
            )
            np.testing.assert_array_equal(picks, [i for i, _ in theirs], err_msg=name)
    # Feature based on features already min-max scaled to [0, 1] (submodlib rescales).
    features = np.abs(points(51, N, 4)).astype(np.float64)
    features = (features - features.min(0)) / (features.max(0) - features.min(0))
    for concave, mode in [
        ("sqrt", FeatureBased.squareRoot),
        ("log", FeatureBased.logarithmic),
        ("inverse", FeatureBased.inverse),
    ]:
        peer = submodlib.FeatureBasedFunction(
            n=N, features=features.tolist(), numFeatures=4, sparse=False, mode=mode
        )
        fn = SUBMODULAR_FUNCTIONS["feature_based"](jnp.asarray(features), concave=concave)
        picks = np.asarray(submodular_greedy(fn, jnp.ones(N, bool), BUDGET).indices)
        theirs = peer.maximize(budget=BUDGET, optimizer="NaiveGreedy", show_progress=False)
        np.testing.assert_array_equal(picks, [i for i, _ in theirs], err_msg=concave)

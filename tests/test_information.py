"""SIMILAR's information measures and the smi / scg / scmi strategies against NumPy float64.

References: tests/reference_information.py evaluates every measure from its set-function
definition (DISTIL reference section 4) on explicit K3 block kernels; gains here are
compared with f(A + e) - f(A) of those definitions, greedy picks with a plain NumPy greedy.
Peer: submodlib-py on the same precomputed kernels, skipped when not installed.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.selectors import OuterProduct
from jaxal.selectors.submodular import combinators, functions, measures
from jaxal.selectors.submodular import kernels as _kernels
from jaxal.selectors.submodular.functions import facility_location, log_determinant
from jaxal.selectors.submodular.greedy import submodular_greedy
from jaxal.selectors.submodular.kernels import Similarity
from tests import reference_information as ref
from tests import reference_submodular as base
from tests.conftest import N_CLASSES, N_FEATURES, numpy_mlp


def _picks_and_gains(selection):
    """(indices int32 [budget], gains float32 [budget]) of a ``Selection``."""
    return selection.indices, selection.info.gains


N, Q, P, D = 12, 3, 4, 5
NAMES = list(measures.INFORMATION_MEASURES)
# eta, nu <= 1 keep the log-determinant block kernels positive definite.
HPARAMS = (("eta", 0.9), ("nu", 0.7), ("lambda_", 0.8))
# Submodular measures whose gains are not an O(N) state (lazy greedy is for those), and one
# that is.
LAZY = ["fl1mi", "fl2mi", "com", "flcg", "flcmi", "logdetcg"]


def sets(
    seed: int, n: int = N, d: int = D, spread: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh float32 pool, query and private points around three random centers."""
    rng = np.random.default_rng(seed)
    centers = spread * rng.normal(size=(3, d))

    def draw(size):
        return (centers[rng.integers(3, size=size)] + rng.normal(size=(size, d))).astype(np.float32)

    return draw(n), draw(Q), draw(P)


def build(name, pool, query, private, ground, metric, dense, hparams=HPARAMS):
    return measures.information_measure(
        name,
        pool,
        query,
        private,
        metric=metric,
        ground=ground,
        chunk_size=5,
        dense=dense,
        **dict(hparams),
    )


STATIC = ("name", "metric", "dense", "hparams")


@functools.partial(jax.jit, static_argnames=STATIC)
def gains_after(pool, query, private, ground, members, count, indices, *, name, metric, dense,
                hparams=HPARAMS):  # fmt: skip
    """(gains [N], gains_at(indices)) after adding members[:count] in order."""
    fn = build(name, pool, query, private, ground, metric, dense, hparams)
    state = fn.init(members.shape[0])
    state = jax.lax.fori_loop(0, count, lambda t, s: fn.update(s, members[t]), state)
    return fn.gains(state), fn.gains_at(state, indices)


@functools.partial(jax.jit, static_argnames=(*STATIC, "budget", "optimizer", "lazy_batch"))
def greedy(pool, query, private, ground, candidates, *, name, metric="cosine", dense=None,
           hparams=HPARAMS, budget=4, optimizer="naive", lazy_batch=3):  # fmt: skip
    fn = build(name, pool, query, private, ground, metric, dense, hparams)
    return _picks_and_gains(
        submodular_greedy(fn, candidates, budget, optimizer=optimizer, lazy_batch=lazy_batch)
    )


def reference(name, pool, query, private, metric="cosine", ground=None, hparams=HPARAMS):
    ks = ref.Kernels(pool, query, private, metric)
    return ref.set_function(name, ks, ground=ground, **dict(hparams))


def assert_greedy_matches(f, picks, candidates, tol=1e-4):
    """Pick for pick equal to the NumPy greedy (ties to the lowest index), near-ties aside.

    Every pick must have the best reference gain (within ``tol``); up to the first step
    whose winner beats its runner-up by less than ``tol``, the picks must be identical.
    """
    picks = np.asarray(picks)
    want, _ = base.naive_greedy(f, len(candidates), candidates, len(picks))
    scale = max(1.0, abs(f(list(picks[picks >= 0]))))
    regret = base.regret(f, picks, candidates)
    assert np.all(regret <= tol * scale), (picks, want, regret)
    gaps = base.greedy_margins(f, len(candidates), want, candidates)
    clear = int(np.argmax(gaps <= tol * scale)) if np.any(gaps <= tol * scale) else len(gaps)
    np.testing.assert_array_equal(picks[:clear], want[:clear])


# --------------------------------------------------------------------------------------
# The measures' gains against their set-function definitions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_gains_match_the_definitions(name):
    spec = measures.INFORMATION_MEASURES[name]
    variants = [("cosine", None), ("euclidean", None)]
    if spec.takes_dense:
        variants.append(("cosine", False))  # the pool kernel on the fly
    for seed, (metric, dense) in enumerate(variants):
        pool, query, private = sets(seed)
        rng = np.random.default_rng(seed)
        ground = rng.uniform(size=N) < 0.7
        f = reference(name, pool, query, private, metric, ground if spec.takes_ground else None)
        members = rng.choice(N, 4, replace=False)
        indices = rng.choice(N, 5, replace=False)
        for count in [0, 1, 4]:
            gains, gains_at = gains_after(
                pool, query, private, ground, jnp.asarray(members, jnp.int32), count,
                jnp.asarray(indices, jnp.int32), name=name, metric=metric, dense=dense,
            )  # fmt: skip
            chosen = list(members[:count])
            want = np.array(
                [np.nan if e in chosen else f([*chosen, e]) - f(chosen) for e in range(N)]
            )
            outside = ~np.isnan(want)
            err = f"{name} {metric} dense={dense} |A|={count}"
            np.testing.assert_allclose(
                np.asarray(gains)[outside], want[outside], rtol=1e-4, atol=2e-5, err_msg=err
            )
            fresh = outside[indices]
            np.testing.assert_allclose(
                np.asarray(gains_at)[fresh], want[indices][fresh], rtol=1e-4, atol=2e-5, err_msg=err
            )


def test_reference_fl1mi_closed_form_is_the_mutual_information():
    pool, query, _ = sets(3)
    ks = ref.Kernels(pool, query)
    for chosen in [[], [1], [4, 2, 7]]:
        assert abs(ref.fl1mi(ks, chosen, 1.3) - ref.fl1mi_as_mi(ks, chosen, 1.3)) < 1e-9


@pytest.mark.parametrize("name", ["fl1mi", "flcg", "flcmi"])
def test_facility_location_closed_forms_equal_the_combinators(name):
    """facility_location with a floor and a cap ==
    restrict(MI(CG(facility location over V + Q + P)))."""
    eta, nu = 1.2, 0.8

    @jax.jit
    def both(pool, query, private, ground, members):
        others = {"fl1mi": (("query", query),), "flcg": (("private", private),)}.get(
            name, (("query", query), ("private", private))
        )
        combined = measures._concat(pool, *others)
        scales = {"fl1mi": (1.0, eta), "flcg": (1.0, nu), "flcmi": (1.0, eta, nu)}[name]
        kernel = Similarity(
            pool, combined.points, "cosine", 4, shift=True, col_blocks=combined.blocks,
            block_scales=(scales,),
        )  # fmt: skip
        fn = facility_location(kernel, ground=ground)
        if name != "fl1mi":  # condition on P, the last block
            fn = combinators.conditional_gain(fn, combined.indices(len(others)))
        if name != "flcg":
            fn = combinators.submodular_mutual_information(fn, combined.indices(1), submodular=True)
        fn = combinators.restrict(fn, N)
        closed = build(
            name, pool, query, private, ground, "cosine", None, (("eta", eta), ("nu", nu))
        )
        out = []
        for g in (fn, closed):
            state = g.init(3)
            values = [g.gains(state)]
            for j in members:
                state = g.update(state, j)
                values.append(g.gains(state))
            out.append(jnp.stack(values))
        return out

    for seed in range(2):
        pool, query, private = sets(10 + seed)
        ground = np.random.default_rng(seed).uniform(size=N) < 0.8
        combined_gains, closed = both(pool, query, private, ground, jnp.asarray([3, 7, 1]))
        np.testing.assert_allclose(
            np.asarray(combined_gains), np.asarray(closed), rtol=1e-5, atol=1e-5
        )


def test_outer_product_points_equal_their_materialized_rows():
    rng = np.random.default_rng(0)

    def outer(n):
        return OuterProduct(
            jnp.asarray(rng.normal(size=(n, 3)), jnp.float32),
            jnp.asarray(rng.normal(size=(n, 2)), jnp.float32),
        )

    pool, query, private = outer(N), outer(Q), outer(P)
    members = jnp.asarray([2, 5], jnp.int32)
    indices = jnp.arange(N, dtype=jnp.int32)
    ground = np.ones(N, bool)
    for name in ["logdetcmi"]:  # every set concatenated, kernel columns on the fly
        factored, _ = gains_after(pool, query, private, ground, members, 2, indices, name=name,
                                  metric="cosine", dense=None)  # fmt: skip
        flat = [p.materialize() for p in (pool, query, private)]
        materialized, _ = gains_after(*flat, ground, members, 2, indices, name=name,
                                      metric="cosine", dense=None)  # fmt: skip
        keep = np.ones(N, bool)
        keep[[2, 5]] = False
        np.testing.assert_allclose(
            np.asarray(factored)[keep], np.asarray(materialized)[keep], rtol=1e-5, atol=1e-5
        )


def test_log_determinant_bulk_insert_equals_one_update_at_a_time():
    pool, query, _ = sets(4)
    points = jnp.concatenate([jnp.asarray(pool), jnp.asarray(query)])
    kernel = Similarity(points, None, "cosine", 5, shift=True)
    fn = log_determinant(kernel, lambda_=0.5)
    given = jnp.asarray([12, 3, 14, 7], jnp.int32)
    start = fn.update(fn.init(6), jnp.int32(1))  # a non-empty state: the block step extends it
    bulk = jax.jit(functions.log_determinant_insert(kernel, 0.5))(start, given)
    one_by_one = jax.jit(combinators.insert_each(fn))(start, given)
    assert int(bulk.n_picked) == int(one_by_one.n_picked) == 5
    np.testing.assert_allclose(
        np.asarray(bulk.residual), np.asarray(one_by_one.residual), atol=1e-5
    )
    gram = lambda s: np.asarray(s.factors).T @ np.asarray(s.factors)  # noqa: E731
    np.testing.assert_allclose(gram(bulk), gram(one_by_one), atol=1e-5)


# --------------------------------------------------------------------------------------
# Greedy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_naive_greedy_matches_numpy_greedy(name):
    spec = measures.INFORMATION_MEASURES[name]
    for seed in range(2):
        pool, query, private = sets(20 + seed)
        rng = np.random.default_rng(seed)
        candidates = rng.uniform(size=N) < 0.75
        candidates[:5] = True
        ground = candidates if spec.takes_ground else np.ones(N, bool)
        picks, _ = greedy(pool, query, private, ground, candidates, name=name)
        f = reference(name, pool, query, private, ground=ground if spec.takes_ground else None)
        assert_greedy_matches(f, np.asarray(picks), candidates)


@pytest.mark.parametrize("name", LAZY)
def test_lazy_equals_naive(name):
    for seed in range(2):
        pool, query, private = sets(30 + seed)
        candidates = np.ones(N, bool)
        naive, naive_gains = greedy(
            pool, query, private, candidates, candidates, name=name, budget=6
        )
        lazy, lazy_gains = greedy(pool, query, private, candidates, candidates, name=name,
                                  budget=6, optimizer="lazy")  # fmt: skip
        np.testing.assert_array_equal(np.asarray(lazy), np.asarray(naive))
        np.testing.assert_allclose(np.asarray(lazy_gains), np.asarray(naive_gains), rtol=1e-6)


def test_non_submodular_measures_refuse_lazy_greedy():
    pool, query, private = sets(0)
    for name in ["logdetmi", "logdetcmi"]:
        fn = build(name, pool, query, private, None, "cosine", None)
        assert not fn.submodular
        with pytest.raises(ValueError, match="lazy"):
            submodular_greedy(fn, jnp.ones(N, bool), 3, optimizer="lazy")


@pytest.mark.parametrize("name", ["fl1mi", "logdetcmi", "gccg", "com"])
def test_picks_are_pool_candidates_with_minus_one_when_they_run_out(name):
    pool, query, private = sets(5)
    candidates = np.zeros(N, bool)
    candidates[[1, 9]] = True
    picks, gains = greedy(pool, query, private, candidates, candidates, name=name)
    picks = np.asarray(picks)
    assert picks.dtype == np.int32 and picks.shape == (4,)
    assert sorted(picks[:2].tolist()) == [1, 9]  # never a query / private element
    np.testing.assert_array_equal(picks[2:], -1)
    np.testing.assert_array_equal(np.asarray(gains)[2:], 0.0)


# --------------------------------------------------------------------------------------
# Kernels: shift and block scales
# --------------------------------------------------------------------------------------


@jax.jit
def kernel_views(sim):
    """The stored kernel, three columns, two column sums and (square) the diagonal."""
    prepared = _kernels.prepare_kernel(sim)
    columns = jnp.stack([_kernels.column(prepared, jnp.int32(j)) for j in (0, 3, 4)], 1)
    sums = _kernels.reduce_columns(
        prepared, lambda entries, w: entries * w, (jnp.ones(sim.shape[0]),), jnp.asarray([1, 2])
    )
    diagonal = _kernels.diagonal(prepared) if sim.square else None
    return _kernels.dense_kernel(sim), columns, sums, diagonal


def test_similarity_shift_and_block_scales_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    x[4] = 0.0  # a zero point: cosine diagonal 0, then (0 + 1) / 2
    y = rng.normal(size=(5, 3)).astype(np.float32)
    row_blocks = np.array([0, 1, 1, 0, 2, 0, 1, 2, 2])
    col_blocks = np.array([1, 0, 1, 1, 0])
    table = ((1.0, 0.5, 2.0), (0.5, 1.0, 3.0), (2.0, 3.0, 1.0))
    for metric in ["cosine", "euclidean"]:
        square = Similarity(jnp.asarray(x), None, metric, 4, shift=True,
                            row_blocks=jnp.asarray(row_blocks), block_scales=table)  # fmt: skip
        want = (base.kernel(x, metric=metric) + 1) / 2 * np.array(table)[row_blocks][:, row_blocks]
        rect = Similarity(jnp.asarray(x), jnp.asarray(y), metric, 4, shift=True,
                          col_blocks=jnp.asarray(col_blocks), block_scales=((1.0, 0.25),),
                          )  # fmt: skip
        want_rect = (base.kernel(x, y, metric) + 1) / 2 * np.array([1.0, 0.25])[col_blocks]
        for sim, expected in [(square, want), (rect, want_rect)]:
            dense, columns, sums, diagonal = kernel_views(sim)
            np.testing.assert_allclose(np.asarray(dense), expected, atol=1e-6)
            np.testing.assert_allclose(np.asarray(columns), expected[:, [0, 3, 4]], atol=1e-6)
            np.testing.assert_allclose(np.asarray(sums), expected[:, [1, 2]].sum(0), atol=1e-5)
            if diagonal is not None:
                np.testing.assert_allclose(np.asarray(diagonal), np.diag(expected), atol=1e-6)


def test_similarity_block_errors():
    x = jnp.ones((4, 2))
    with pytest.raises(ValueError, match="symmetric"):
        _kernels.prepare_kernel(
            Similarity(x, row_blocks=jnp.zeros(4, int), block_scales=((1.0, 2.0), (3.0, 1.0)))
        )
    with pytest.raises(ValueError, match="row_blocks"):
        _kernels.prepare_kernel(
            Similarity(
                x, row_blocks=jnp.asarray([0, 1, 2, 0]), block_scales=((1.0, 2.0), (2.0, 1.0))
            )
        )
    with pytest.raises(ValueError, match="need block_scales"):
        _kernels.prepare_kernel(Similarity(x, row_blocks=jnp.zeros(4, int)))
    with pytest.raises(ValueError, match="col_blocks"):
        _kernels.prepare_kernel(
            Similarity(x, x, col_blocks=jnp.zeros(3, int), block_scales=((1.0,),))
        )


# --------------------------------------------------------------------------------------
# Selector errors
# --------------------------------------------------------------------------------------


def test_measure_errors_name_the_argument():
    pool, query, private = (jnp.asarray(a) for a in sets(0))
    with pytest.raises(ValueError, match="function"):
        measures.information_measure("flmi", pool, query)
    with pytest.raises(ValueError, match="query"):
        measures.information_measure("fl2mi", pool, None, private)
    with pytest.raises(ValueError, match="query must hold at least one point"):
        measures.fl1mi(pool, query[:0])
    with pytest.raises(ValueError, match="private must be"):
        measures.flcg(pool, private[:, :2])
    with pytest.raises(TypeError, match="representation"):
        measures.logdetmi(pool, OuterProduct(query, query))
    with pytest.raises(ValueError, match="eta"):
        measures.fl1mi(pool, query, eta=-1.0)
    with pytest.raises(ValueError, match="lambda_"):
        measures.logdetcg(pool, private, lambda_=0.0)
    with pytest.raises(ValueError, match="metric"):
        measures.com(pool, query, metric="manhattan")
    with pytest.raises(ValueError, match="ground"):
        measures.flcmi(pool, query, private, ground=jnp.ones(3, bool))


# --------------------------------------------------------------------------------------
# The strategies end to end
# --------------------------------------------------------------------------------------


def labeled_set(seed, size):
    x = jax.random.normal(jax.random.key(seed), (size, N_FEATURES))
    return x, (jnp.arange(size, dtype=jnp.int32) * 3 + seed) % N_CLASSES


QUERY, PRIVATE = labeled_set(7, 5), labeled_set(8, 6)
INPUTS = {
    "query_x": QUERY[0],
    "query_y": QUERY[1],
    "private_x": PRIVATE[0],
    "private_y": PRIVATE[1],
}

END_TO_END = [
    ("smi", {}),
    ("smi", {"function": "logdetmi", "eta": 0.8}),
    ("smi", {"function": "fl1mi", "representation": "embedding"}),
    ("smi", {"function": "com", "metric": "euclidean", "gradient": "bias"}),
    ("scg", {}),
    ("scg", {"function": "gccg", "lambda_": 0.3, "nu": 2.0, "representation": "embedding"}),
    ("scmi", {"eta": 1.5, "nu": 0.5}),
    ("scmi", {"function": "logdetcmi", "gradient": "linear", "lambda_": 2.0}),
]


def numpy_points(params, x, representation, gradient, labels=None):
    logits, hidden = numpy_mlp(params, np.asarray(x))
    if representation == "embedding":
        return hidden
    return ref.gradient_embedding(logits, hidden, gradient, labels)


@pytest.mark.parametrize(
    ("name", "hparams"),
    END_TO_END,
    ids=[f"{n}-{h.get('function', 'default')}" for n, h in END_TO_END],
)
def test_strategies_match_a_numpy_end_to_end_reference(name, hparams, model, params, pool, key):
    budget = 4
    strategy = jaxal.strategies.get(name)(model, budget, **hparams)
    inputs = {k: INPUTS[k] for k in strategy.inputs}
    got = np.asarray(jax.jit(strategy.select)(params, pool, key, **inputs))
    # DISTIL's computation: the unlabeled points only, float64 throughout.
    representation = hparams.get("representation", "gradient")
    gradient = hparams.get("gradient", "bias_linear")
    unlabeled = np.flatnonzero(~np.asarray(pool.labeled))
    points = numpy_points(params, np.asarray(pool.x)[unlabeled], representation, gradient)
    others = {
        set_name: numpy_points(
            params,
            INPUTS[f"{set_name}_x"],
            representation,
            gradient,
            np.asarray(INPUTS[f"{set_name}_y"]),
        )  # fmt: skip
        for set_name in ("query", "private")
    }
    hp = {"eta": 1.0, "nu": 1.0, "lambda_": 1.0}
    hp.update({k: v for k, v in hparams.items() if k in hp})
    f = reference(strategy.function, points, others["query"], others["private"],
                  hparams.get("metric", "cosine"), hparams=tuple(hp.items()))  # fmt: skip
    local = np.searchsorted(unlabeled, got)
    assert np.all(unlabeled[local] == got), "picked a labeled point"
    assert_greedy_matches(f, local, np.ones(len(unlabeled), bool))


def test_inputs_are_traced_arguments(model, params, pool, key):
    strategy = jaxal.strategies.smi(model, 3, function="fl1mi")
    assert strategy.inputs == ("query_x", "query_y")
    assert jaxal.strategies.scg(model, 3).inputs == ("private_x", "private_y")
    assert jaxal.strategies.scmi(model, 3).inputs == (
        "query_x",
        "query_y",
        "private_x",
        "private_y",
    )
    al_round = jax.jit(chex.assert_max_traces(jaxal.make_round(strategy), n=1))
    other_x, other_y = labeled_set(11, 5)
    _, first = al_round(params, pool, key, query_x=QUERY[0], query_y=QUERY[1])
    new_pool, second = al_round(params, pool, key, query_x=other_x, query_y=other_y)
    chex.clear_trace_counter()
    expected = jax.jit(strategy.select)(params, pool, key, query_x=other_x, query_y=other_y)
    np.testing.assert_array_equal(np.asarray(second), np.asarray(expected))
    assert not np.array_equal(np.asarray(first), np.asarray(second))
    assert np.asarray(new_pool.labeled)[np.asarray(second)].all()


def test_convenience_select_forwards_the_inputs(model, params, pool, key):
    strategy = jaxal.strategies.scg(model, 2, function="gccg")

    @jax.jit
    def via_name(params, pool, key, private_x, private_y):
        inputs = {"private_x": private_x, "private_y": private_y}
        return jaxal.select("scg", model, params, pool, key, 2, function="gccg", inputs=inputs)

    direct = jax.jit(strategy.select)(params, pool, key, private_x=PRIVATE[0], private_y=PRIVATE[1])
    np.testing.assert_array_equal(
        np.asarray(via_name(params, pool, key, *PRIVATE)), np.asarray(direct)
    )


def test_strategy_errors(model, params, pool, key):
    smi = jaxal.strategies.smi(model, 3)
    with pytest.raises(TypeError, match="query_x"):
        smi.select(params, pool, key)
    with pytest.raises(TypeError, match="query_y"):
        smi.select(params, pool, key, query_x=QUERY[0])
    with pytest.raises(TypeError, match="unexpected inputs"):
        smi.select(params, pool, key, **INPUTS)
    with pytest.raises(ValueError, match="query_x"):
        smi.select(params, pool, key, query_x=QUERY[0][:, :3], query_y=QUERY[1])
    with pytest.raises(ValueError, match="query_y"):
        smi.select(params, pool, key, query_x=QUERY[0], query_y=QUERY[1][:4])
    with pytest.raises(ValueError, match="query_y"):
        smi.select(params, pool, key, query_x=QUERY[0], query_y=QUERY[1] + N_CLASSES)
    scg = jaxal.strategies.scg(model, 3)
    with pytest.raises(ValueError, match="private_y"):
        scg.select(params, pool, key, private_x=PRIVATE[0], private_y=-PRIVATE[1] - 1)
    with pytest.raises(ValueError, match="budget"):
        jaxal.strategies.scmi(model, 90).select(params, pool, key, **INPUTS)
    with pytest.raises(ValueError, match="fl1mi.*fl2mi"):
        jaxal.strategies.smi(model, 3, function="flcg")
    with pytest.raises(ValueError, match="flcg"):
        jaxal.strategies.scg(model, 3, function="flcmi")
    with pytest.raises(ValueError, match="representation"):
        jaxal.strategies.smi(model, 3, representation="raw")
    with pytest.raises(ValueError, match="gradient"):
        jaxal.strategies.scmi(model, 3, gradient="weights")
    with pytest.raises(ValueError, match="optimizer"):
        jaxal.strategies.scg(model, 3, optimizer="lazier")
    with pytest.raises(ValueError, match="eta"):
        jaxal.strategies.smi(model, 3, eta=-0.5)
    with pytest.raises(ValueError, match="lambda_"):
        jaxal.strategies.scmi(model, 3, function="logdetcmi", lambda_=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        jaxal.strategies.scg(model, 3, epsilon=1.5)


# --------------------------------------------------------------------------------------
# submodlib (DISTIL's backend) on the same kernels
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_submodlib_same_gains_and_picks():
    submodlib = pytest.importorskip("submodlib")
    from submodlib_cpp import ConcaveOverModular

    eta, nu, lam = (value for _, value in HPARAMS)  # the compiled programs above are reused
    n, budget = N, 4  # greedy's default budget (an explicit static argument would recompile)
    pool, query, private = sets(41, spread=0.0)  # unclustered: few saturated rows, no ties
    ks = ref.Kernels(pool, query, private, "cosine")
    k32 = {k: v.astype(np.float32) for k, v in vars(ks).items() if isinstance(v, np.ndarray)}
    q, p = dict(n=n, num_queries=Q), dict(n=n, num_privates=P)
    s, sq, sp = k32["s"], k32["sq"], k32["sp"]
    peers = {
        "fl1mi": lambda: submodlib.FacilityLocationMutualInformationFunction(
            **q, data_sijs=s, query_sijs=sq, magnificationEta=eta
        ),
        "fl2mi": lambda: submodlib.FacilityLocationVariantMutualInformationFunction(
            **q, query_sijs=sq, queryDiversityEta=eta
        ),
        "gcmi": lambda: submodlib.GraphCutMutualInformationFunction(**q, query_sijs=sq),
        "com": lambda: submodlib.ConcaveOverModularFunction(
            **q, query_sijs=sq, queryDiversityEta=eta, mode=ConcaveOverModular.logarithmic
        ),
        "logdetmi": lambda: submodlib.LogDeterminantMutualInformationFunction(
            **q, lambdaVal=lam, data_sijs=s, query_sijs=sq, query_query_sijs=k32["sqq"],
            magnificationEta=eta,
        ),
        "flcg": lambda: submodlib.FacilityLocationConditionalGainFunction(
            **p, data_sijs=s, private_sijs=sp, privacyHardness=nu
        ),
        "gccg": lambda: submodlib.GraphCutConditionalGainFunction(
            **p, lambdaVal=lam, data_sijs=s, private_sijs=sp, privacyHardness=nu
        ),
        "logdetcg": lambda: submodlib.LogDeterminantConditionalGainFunction(
            **p, lambdaVal=lam, data_sijs=s, private_sijs=sp, private_private_sijs=k32["spp"],
            privacyHardness=nu,
        ),
        "flcmi": lambda: submodlib.FacilityLocationConditionalMutualInformationFunction(
            **q, num_privates=P, data_sijs=s, query_sijs=sq, private_sijs=sp,
            magnificationEta=eta, privacyHardness=nu,
        ),
        "logdetcmi": lambda: submodlib.LogDeterminantConditionalMutualInformationFunction(
            **q, num_privates=P, lambdaVal=lam, data_sijs=s, query_sijs=sq,
            query_query_sijs=k32["sqq"], private_sijs=sp, private_private_sijs=k32["spp"],
            query_private_sijs=k32["sqp"], magnificationEta=eta, privacyHardness=nu,
        ),
    }  # fmt: skip
    everything = np.ones(n, bool)
    members = [2, 9, 5, 0]
    for name, make in peers.items():
        peer = make()
        f = ref.set_function(name, ks, eta=eta, nu=nu, lambda_=lam)
        assert abs(peer.evaluate(set(members)) - f(members)) <= 1e-4 * max(1.0, abs(f(members)))
        gains, _ = gains_after(pool, query, private, everything, jnp.asarray(members, jnp.int32),
                               4, jnp.arange(5, dtype=jnp.int32), name=name, metric="cosine",
                               dense=None)  # fmt: skip
        peer.setMemoization(set(members))
        others = [e for e in range(n) if e not in members]
        theirs = [peer.marginalGainWithMemoization(set(members), e) for e in others]
        np.testing.assert_allclose(np.asarray(gains)[others], theirs, rtol=1e-4, atol=1e-5,
                                   err_msg=name)  # fmt: skip
        # Greedy picks up to the first near-tie (submodlib keeps the highest index on
        # ties, jaxal the lowest).
        peer.clearMemoization()
        mine, _ = greedy(pool, query, private, everything, everything, name=name)
        want = [i for i, _ in peer.maximize(budget=budget, optimizer="NaiveGreedy",
                                            show_progress=False)]  # fmt: skip
        reference_picks, _ = base.naive_greedy(f, n, everything, budget)
        gaps = base.greedy_margins(f, n, reference_picks, everything)
        clear = int(np.argmax(gaps <= 1e-4)) if np.any(gaps <= 1e-4) else budget
        assert clear >= 2, (name, gaps)
        np.testing.assert_array_equal(np.asarray(mine)[:clear], want[:clear], err_msg=name)

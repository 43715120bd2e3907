"""One table over every registered strategy: the invariants of DESIGN.md's contract.

Every case's strategy is built once per process and its ``select`` / ``score`` jitted once
(``_built``), shared by the tests of that case (conftest puts them on one xdist worker).
Like optax's wide tables, the checks run under ``jit``; the unjitted call, which retraces
and recompiles every loop of a strategy, runs once per strategy name and model (the first
case of each name, and the head-model path), always compared with the jitted one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxal
from tests.conftest import N_CLASSES, N_FEATURES, N_POINTS, dense_head

BUDGET = 7

# name -> hyperparameters under test; every registry entry must appear here.
CASES = {
    "random": [{}],
    "least_confidence": [{}, {"mc_samples": 3}],
    "margin": [{}, {"mc_samples": 3}],
    "entropy": [{}, {"mc_samples": 3}],
    "bald": [{"mc_samples": 4}],
    "coreset": [{"chunk_size": 5}],
    "kmeans": [{"max_iter": 5}, {"representation": "raw", "n_init": 2, "max_iter": 5}],
    "badge": [
        {},
        {"gradient": "bias"},
        {"gradient": "bias_linear"},
        {"gradient": "params", "params_filter": "Dense_1"},
    ],
    "batchbald": [{"mc_samples": 4, "max_configurations": 40}],
    "deepfool": [{"max_iter": 5}, {"num_classes": 2}],
    "bim": [{"eps": 0.1, "max_iter": 20}],
    "submodular": [
        {},
        {"function": "graph_cut", "lambda_": 0.5, "representation": "gradient"},
        {"function": "log_determinant", "lambda_": 1.0, "metric": "euclidean"},
        {"function": "feature_based", "representation": "raw", "optimizer": "naive"},
        {"function": "disparity_min", "optimizer": "naive"},
        {"optimizer": "stochastic"},
        {"optimizer": "stochastic", "represented": 40},
    ],
    "fass": [{}, {"uncertainty": "margin", "top_n": 2, "function": "saturated_coverage"}],
    "smi": [{}, {"function": "logdetmi", "representation": "embedding", "metric": "euclidean"}],
    "scg": [{}, {"function": "gccg", "gradient": "bias"}],
    "scmi": [{}, {"function": "logdetcmi", "optimizer": "stochastic"}],
    "glister": [
        {},
        {"regularizer": "random", "lambda_": 0.3},
        {"regularizer": "facility_location", "lambda_": 0.5, "gradient": "linear"},
        {"regularizer": "diversity", "lambda_": 1.0, "lr": 0.1, "gradient": "bias"},
    ],
    "gradmatch": [
        {},
        {"target_scale": "pool", "gradient": "linear"},
        {"weighted": True},
        {"weighted": True, "omp_reg": 0.5, "gradient": "bias"},
    ],
    "typiclust": [
        {"max_iter": 5},
        {"representation": "raw", "neighbors": 3, "min_cluster_size": 0, "squared": True},
    ],
    "probcover": [{"delta": 2.0}, {"representation": "raw", "classes": 3, "max_iter": 5}],
    "maxherding": [{}, {"representation": "raw", "bandwidth": 2.0, "max_dense": 0}],
    "uherding": [
        {},
        {"uncertainty": "entropy", "temperature": 2.0, "bandwidth": 1.5, "optimizer": "naive"},
    ],
    "dropquery": [
        {"mc_samples": 3, "max_iter": 5},
        {"mc_samples": 4, "candidates_per_pick": 0, "normalize": False, "max_iter": 5},
    ],
    "epig": [{"mc_samples": 3, "target_samples": 10}, {"mc_samples": 4, "chunk_size": 5}],
    "alfamix": [
        {"max_iter": 5},
        {"alpha_cap": 0.5, "grow": False, "normalize": False, "max_iter": 5},
    ],
    "bait": [{}, {"oversample": 1, "lambda_": 0.1, "gradient": "bias_linear", "chunk_size": 30}],
    "cluster_margin": [{}, {"threshold": 1.0, "candidates_per_pick": 3, "max_clustered": 10}],
    "stochastic": [
        {"strategy": "entropy", "mode": "power"},
        {"strategy": "margin", "mode": "softrank", "beta": 2.0},
        {"strategy": "bald", "mc_samples": 3, "mode": "softmax"},
    ],
    "partition": [
        {"strategy": "entropy", "parts": 3},
        {"strategy": "coreset", "parts": 2, "shuffle": True},
    ],
}
TABLE = [(name, hp) for name, cases in CASES.items() for hp in cases]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in hp.items()) or 'default'}" for name, hp in TABLE]


def test_table_covers_registry():
    assert set(CASES) == set(jaxal.strategies.REGISTRY)


def labeled_inputs(seed, size):
    """A labeled set (query / private / validation): inputs [size, F] and labels [size]."""
    x = jax.random.normal(jax.random.key(seed), (size, N_FEATURES))
    return x, jnp.arange(size, dtype=jnp.int32) % N_CLASSES


_QUERY, _PRIVATE, _VALIDATION = labeled_inputs(7, 5), labeled_inputs(8, 6), labeled_inputs(9, 10)
# Every extra input a strategy may declare (Strategy.inputs), with its test value.
INPUTS = {
    "query_x": _QUERY[0],
    "query_y": _QUERY[1],
    "private_x": _PRIVATE[0],
    "private_y": _PRIVATE[1],
    "validation_x": _VALIDATION[0],
    "validation_y": _VALIDATION[1],
    "target_x": labeled_inputs(10, 8)[0],
}

# Strategies that classify embeddings of their own making (ALFA-Mix's mixes) through the
# model's head: they get conftest's DropoutMLP with its last layer as the head.
NEEDS_HEAD = {"alfamix"}


def model_for(name, model):
    """``model``, given conftest's ``dense_head`` where strategy ``name`` needs a head."""
    if name in NEEDS_HEAD and model.head is None:
        return model._replace(head=dense_head)
    return model


class Built(NamedTuple):
    """A strategy of the table with its ``select`` and ``score`` jitted (each compiles on
    its first call, once per process)."""

    strategy: jaxal.strategies.Strategy
    select: Callable[..., Any]
    score: Callable[..., Any]


# (name, hparams, id(model), budget, batch_size) -> (model, Built); the model is kept so
# that its id is never reused.
_BUILT: dict[tuple, tuple[Any, Built]] = {}


def _built(name, hparams, model, budget=BUDGET, batch_size=40) -> Built:
    """The strategy, with its extra inputs (if any) bound into select and score, and both
    jitted: built once per (name, hparams, model, budget, batch_size)."""
    cache_key = (name, tuple(sorted(hparams.items())), id(model), budget, batch_size)
    if cache_key not in _BUILT:
        factory = jaxal.strategies.get(name)
        strategy = factory(model_for(name, model), budget, batch_size=batch_size, **hparams)
        assert set(strategy.inputs) <= set(INPUTS)
        if strategy.inputs:
            inputs = {name: INPUTS[name] for name in strategy.inputs}
            strategy = strategy._replace(
                select=functools.partial(strategy.select, **inputs),
                score=functools.partial(strategy.score, **inputs),
            )
        built = Built(strategy, jax.jit(strategy.select), jax.jit(strategy.score))
        _BUILT[cache_key] = (model, built)
    return _BUILT[cache_key][1]


def _build(name, hparams, model, budget=BUDGET, batch_size=40):
    """The strategy, with its extra inputs (if any) bound into select and score (cached)."""
    return _built(name, hparams, model, budget, batch_size).strategy


SCORED = {"least_confidence", "margin", "entropy", "bald", "epig", "deepfool", "bim", "stochastic"}
TOP_K_OF_SCORE = SCORED - {"stochastic"}
MC_TABLE = [(name, hp) for name, hp in TABLE if "mc_samples" in hp]


def _runs_eagerly(name, hparams):
    """The case of each strategy name whose select also runs unjitted: its first."""
    return hparams == CASES[name][0]


def _check_invariants(built, params, pool, key, *, eager):
    """Jitted twice (and, if ``eager``, unjitted once, equal to the jitted call): exact
    budget, int32, distinct, in range, never labeled."""
    jitted = built.select(params, pool, key)
    assert jitted.dtype == jnp.int32
    indices = np.asarray(jitted)
    assert indices.shape == (BUDGET,)
    assert len(set(indices.tolist())) == BUDGET, "indices must be distinct"
    assert indices.min() >= 0 and indices.max() < N_POINTS
    assert not np.asarray(pool.labeled)[indices].any(), "a labeled point was selected"
    np.testing.assert_array_equal(indices, np.asarray(built.select(params, pool, key)))
    if eager:
        unjitted = built.strategy.select(params, pool, key)
        assert unjitted.dtype == jnp.int32
        np.testing.assert_array_equal(indices, np.asarray(unjitted))


@pytest.mark.parametrize(("name", "hparams"), TABLE, ids=IDS)
def test_select_invariants(name, hparams, model, params, pool, key):
    built = _built(name, hparams, model)
    strategy = built.strategy
    assert strategy.name == name and strategy.budget == BUDGET
    for hp, value in hparams.items():
        assert getattr(strategy, hp) == value
    _check_invariants(built, params, pool, key, eager=_runs_eagerly(name, hparams))


def test_every_name_runs_eagerly_once():
    eager = [(name, hp) for name, hp in TABLE if _runs_eagerly(name, hp)]
    assert sorted(name for name, _ in eager) == sorted(CASES)


@pytest.mark.parametrize(("name", "hparams"), MC_TABLE, ids=[f"{n}-head" for n, _ in MC_TABLE])
def test_select_invariants_head_path(name, hparams, head_model, params, pool, key):
    _check_invariants(_built(name, hparams, head_model), params, pool, key, eager=True)


@pytest.mark.parametrize(("name", "hparams"), TABLE, ids=IDS)
def test_score_contract(name, hparams, model, params, pool, key):
    built = _built(name, hparams, model)
    scores = built.score(params, pool, key)
    assert (scores is not None) == (name in SCORED)
    if scores is None:
        return
    assert scores.dtype == jnp.float32 and scores.shape == (N_POINTS,)
    labeled = np.asarray(pool.labeled)
    assert np.all(np.isneginf(np.asarray(scores)[labeled]))
    assert np.all(np.isfinite(np.asarray(scores)[~labeled]))
    if name not in TOP_K_OF_SCORE:
        return
    # select is the top `budget` of score (ties aside: the fixture has none).
    expected = np.argsort(-np.asarray(scores), kind="stable")[:BUDGET]
    np.testing.assert_array_equal(np.asarray(built.select(params, pool, key)), expected)


@pytest.mark.parametrize(("name", "hparams"), TABLE, ids=IDS)
def test_round_compiles_once(name, hparams, model, params, pool, key):
    strategy = _build(name, hparams, model, budget=3)
    al_round = jax.jit(chex.assert_max_traces(jaxal.make_round(strategy), n=1))
    current = pool
    seen = set(np.flatnonzero(np.asarray(pool.labeled)).tolist())
    for round_key in jax.random.split(key, 3):
        current, indices = al_round(params, current, round_key)
        picked = set(np.asarray(indices).tolist())
        assert len(picked) == 3 and not picked & seen
        seen |= picked
        np.testing.assert_array_equal(np.flatnonzero(np.asarray(current.labeled)), sorted(seen))
        current = current.label(indices, jnp.zeros(3, jnp.int32))
    chex.clear_trace_counter()


@pytest.mark.parametrize(("name", "hparams"), TABLE, ids=IDS)
def test_unfillable_slots_are_minus_one_under_jit(name, hparams, model, params, mlp):
    unlabeled = 4
    labeled = jnp.arange(N_POINTS) >= unlabeled
    pool = jaxal.Pool.create(mlp[2], labeled=labeled)
    built = _built(name, hparams, model)
    with pytest.raises(ValueError, match="budget"):
        built.strategy.select(params, pool, jax.random.key(0))
    # The same shapes as the table's pool: the compiled select of this case runs again.
    indices = np.asarray(built.select(params, pool, jax.random.key(0)))
    filled = indices[indices >= 0]
    assert len(set(filled.tolist())) == len(filled) and np.all(filled < unlabeled)
    if name == "partition":  # static per-part budgets: a part may run out on its own
        assert 0 < len(filled) <= unlabeled
        return
    assert sorted(indices[:unlabeled].tolist()) == list(range(unlabeled))
    assert np.all(indices[unlabeled:] == -1)


@pytest.mark.parametrize(("name", "hparams"), [("entropy", {}), ("badge", {"gradient": "bias"})])
def test_convenience_select_matches_factory(name, hparams, model, params, pool, key):
    via_name = jaxal.select(name, model, params, pool, key, BUDGET, batch_size=40, **hparams)
    via_factory = _build(name, hparams, model).select(params, pool, key)
    np.testing.assert_array_equal(np.asarray(via_name), np.asarray(via_factory))


@pytest.mark.parametrize(("name", "hparams"), TABLE, ids=IDS)
def test_independent_of_batch_size(name, hparams, model, params, pool, key):
    # batch_size 7 and 1000 against the table's 40 (compiled for the other tests of the case).
    expected = np.asarray(_built(name, hparams, model).select(params, pool, key))
    for batch_size in (7, 1000):
        got = _built(name, hparams, model, batch_size=batch_size).select(params, pool, key)
        np.testing.assert_array_equal(np.asarray(got), expected, err_msg=f"{batch_size=}")


@pytest.mark.parametrize(("name", "hparams"), TABLE, ids=IDS)
def test_random_masks_under_jit(name, hparams, model, params, mlp):
    """Random labeled sets and keys over the table's shapes: the compiled select of the case
    runs again, nothing compiles. Unfillable slots (fewer unlabeled points than the budget)
    are -1, after every unlabeled point."""
    built = _built(name, hparams, model)

    @settings(max_examples=4, deadline=None, derandomize=True, database=None)
    @given(
        unlabeled=st.sets(st.integers(0, N_POINTS - 1), min_size=1, max_size=N_POINTS),
        seed=st.integers(0, 2**31 - 1),
    )
    def check(unlabeled, seed):
        labeled = np.ones(N_POINTS, bool)
        labeled[sorted(unlabeled)] = False
        pool = jaxal.Pool.create(mlp[2], labeled=jnp.asarray(labeled))
        indices = np.asarray(built.select(params, pool, jax.random.key(seed)))
        assert indices.dtype == np.int32 and indices.shape == (BUDGET,)
        filled = indices[indices >= 0]
        assert len(set(filled.tolist())) == len(filled), indices
        assert np.all(filled < N_POINTS) and not labeled[filled].any(), indices
        if name == "partition":  # static per-part budgets: a part may run out on its own
            assert 0 < len(filled) <= min(BUDGET, len(unlabeled)), indices
            return
        fillable = min(BUDGET, len(unlabeled))
        assert len(filled) == fillable and np.all(indices[fillable:] == -1), indices

    check()

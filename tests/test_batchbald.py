"""BatchBALD: the selector against an enumerating float64 reference, and the strategy."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxal import scores
from jaxal.model import mc_map
from jaxal.selectors._batchbald import _greedy, batchbald
from jaxal.strategies.batch_bayesian import batchbald as batchbald_strategy
from tests import reference as ref


def _picks_and_scores(selection):
    """(indices int32 [budget], scores float [budget]) of batchbald's ``Selection``."""
    return selection.indices, selection.info.scores


# Jitted entry points, compiled once per shape and reused across seeds.
@functools.partial(jax.jit, static_argnames=("budget", "max_configurations", "chunk_size"))
def WITH_SCORES(probs, candidates, budget, key, *, max_configurations, chunk_size=256):  # noqa: N802
    """batchbald as (indices int32 [budget], scores float [budget])."""
    return _picks_and_scores(
        batchbald(
            probs,
            candidates,
            budget,
            key,
            max_configurations=max_configurations,
            chunk_size=chunk_size,
        )  # fmt: skip
    )


FORCED = jax.jit(_greedy, static_argnames=("budget", "rows", "exact_points", "chunk_size"))
KEY = jax.random.key(0)


# --------------------------------------------------------------------------------------
# Reference: explicit enumeration of the C^m label configurations, float64
# --------------------------------------------------------------------------------------


def joint_entropy(probs: np.ndarray, batch: list[int]) -> float:
    """H(y_batch) with p(config) = mean_s prod_j probs[s, j, config_j], all C^m configs."""
    probs = np.asarray(probs, np.float64)
    joint = np.ones((probs.shape[0], 1))
    for j in batch:  # row-major: configuration index = base-C digits, oldest point first
        joint = (joint[:, :, None] * probs[:, j, None, :]).reshape(probs.shape[0], -1)
    return float(ref.entropy(joint.mean(axis=0)))


def acquisition(probs: np.ndarray, batch: list[int]) -> float:
    """I(y_batch; w) = H(y_batch) - sum_j E_s H(y_j | s)."""
    conditional = ref.entropy(np.asarray(probs, np.float64)).mean(axis=0)
    return joint_entropy(probs, batch) - float(conditional[batch].sum())


def reference_gains(probs: np.ndarray, candidates: np.ndarray, chosen: list[int]) -> np.ndarray:
    """a(chosen + [b]) for every available candidate b; -inf elsewhere."""
    gains = np.full(probs.shape[1], -np.inf)
    for b in np.flatnonzero(candidates):
        if b not in chosen:
            gains[b] = acquisition(probs, [*chosen, int(b)])
    return gains


def reference_greedy(probs: np.ndarray, candidates: np.ndarray, budget: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(min(budget, int(candidates.sum()))):
        chosen.append(int(np.argmax(reference_gains(probs, candidates, chosen))))
    return chosen


def check_teacher_forced(probs, candidates, picks, values, atol) -> None:
    """Each pick attains the reference maximum (near-ties allowed), values match."""
    chosen: list[int] = []
    for pick, value in zip(picks, values, strict=True):
        gains = reference_gains(probs, candidates, chosen)
        assert gains[pick] >= gains.max() - 1e-5, (chosen, pick, gains)
        np.testing.assert_allclose(value, gains[pick], atol=atol)
        chosen.append(int(pick))


def mc_probs(seed: int, samples: int, n: int, classes: int, spread: float = 1.5) -> np.ndarray:
    """float32 [S, N, C]: per-point logits plus per-sample noise (the samples disagree)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(1, n, classes)) * 2.0 + rng.normal(size=(samples, n, classes))
    logits = logits * spread
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return (probs / probs.sum(-1, keepdims=True)).astype(np.float32)


def assert_valid_picks(picks, candidates, budget) -> None:
    picks = np.asarray(picks)
    assert picks.shape == (budget,) and picks.dtype == np.int32
    filled = min(budget, int(np.sum(candidates)))
    np.testing.assert_array_equal(picks[filled:], -1)
    assert np.all(picks[:filled] >= 0)
    assert len(set(picks[:filled].tolist())) == filled, picks
    assert np.all(np.asarray(candidates)[picks[:filled]]), picks


# --------------------------------------------------------------------------------------
# Exact mode
# --------------------------------------------------------------------------------------

S, N, C, BUDGET = 5, 8, 3, 3


@pytest.mark.parametrize("seed", range(4))
def test_exact_mode_matches_enumeration(seed):
    probs = mc_probs(seed, S, N, C)
    candidates = np.random.default_rng(seed).uniform(size=N) < 0.8
    candidates[:BUDGET] = True
    # C^2 = 9 <= 9 rows: every step of a budget-3 batch is exact.
    picks, values = WITH_SCORES(
        probs, candidates, BUDGET, jax.random.key(seed), max_configurations=9, chunk_size=3
    )
    assert_valid_picks(picks, candidates, BUDGET)
    check_teacher_forced(probs, candidates, np.asarray(picks), np.asarray(values), atol=2e-5)
    # Well separated here: the free-running greedy is the reference greedy.
    assert np.asarray(picks).tolist() == reference_greedy(probs, candidates, BUDGET)


def test_first_pick_is_bald_argmax():
    probs = mc_probs(10, S, N, C)
    candidates = np.ones(N, bool)
    candidates[np.argmax(np.asarray(scores.mutual_information(probs)))] = False
    bald = np.where(candidates, np.asarray(scores.mutual_information(probs)), -np.inf)
    for rows in (5, 9):  # sampled from the second pick on, and exact
        picks, values = WITH_SCORES(
            probs, candidates, BUDGET, jax.random.key(0), max_configurations=rows, chunk_size=3
        )
        assert int(picks[0]) == int(np.argmax(bald))
        assert float(values[0]) == pytest.approx(float(bald.max()), rel=1e-6)


@pytest.mark.parametrize("rows", [16, 64])  # exact for 2 points, and sampled beyond
def test_once_the_batch_identifies_the_sample_ties_go_by_bald(rows):
    """After a pick that reveals the MC sample, every gain is 0: the rest follow BALD."""
    samples, n = 4, 12
    probs = mc_probs(12, samples, n, samples)
    probs[:, 5] = np.eye(samples, dtype=np.float32)  # its label names the sample
    bald = np.asarray(scores.mutual_information(probs), np.float64)
    assert np.argmax(bald) == 5 and len(np.unique(bald)) == n
    picks, values = WITH_SCORES(
        probs, np.ones(n, bool), 6, jax.random.key(2), max_configurations=rows, chunk_size=5
    )
    rest = [int(i) for i in np.argsort(-bald, kind="stable") if i != 5][:5]
    assert np.asarray(picks).tolist() == [5, *rest]
    np.testing.assert_allclose(np.asarray(values), np.log(samples), rtol=1e-5)


def test_saturated_probabilities_stay_finite():
    probs = mc_probs(11, S, N, C)
    probs[:, :3] = np.eye(C, dtype=np.float32)[[0, 1, 2]]  # one-hot, agreeing: zero MI
    probs[:2, 3] = np.eye(C, dtype=np.float32)[0]  # one-hot, disagreeing
    probs[2:, 3] = np.eye(C, dtype=np.float32)[1]
    candidates = np.ones(N, bool)
    for rows in (5, 9):
        picks, values = WITH_SCORES(
            probs, candidates, BUDGET, jax.random.key(1), max_configurations=rows, chunk_size=3
        )
        assert np.all(np.isfinite(np.asarray(values)))
        assert_valid_picks(picks, candidates, BUDGET)
    check_teacher_forced(probs, candidates, np.asarray(picks), np.asarray(values), atol=2e-5)


# --------------------------------------------------------------------------------------
# Sampled mode
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("exact_points", [0, 1])
def test_sampled_mode_approximates_exact(exact_points):
    """Sampling from the second (or third) pick on, on a pool small enough to enumerate."""
    probs = mc_probs(3, S, N, C)
    candidates = np.ones(N, bool)
    budget = 4
    picks, values = FORCED(probs, candidates, budget, jax.random.key(7), 2000, exact_points, 256)
    chosen = np.asarray(picks).tolist()
    exact_values = [acquisition(probs, chosen[: i + 1]) for i in range(budget)]
    # 2,000 configurations: the estimates' standard deviation is at most 0.004 here.
    np.testing.assert_allclose(np.asarray(values), exact_values, atol=0.02)
    assert len(set(chosen) & set(reference_greedy(probs, candidates, budget))) >= budget - 1


def test_sampled_mode_is_unbiased():
    """The mean over keys of the sampled estimates is the exact value."""
    probs = mc_probs(4, S, N, C)
    candidates = np.ones(N, bool)
    runs = [FORCED(probs, candidates, 3, k, 500, 0, 256) for k in jax.random.split(KEY, 40)]
    picks = np.stack([np.asarray(r[0]) for r in runs])
    values = np.stack([np.asarray(r[1]) for r in runs])
    # The picks can differ between keys; keep the keys that picked the most common batch.
    batches, counts = np.unique(picks, axis=0, return_counts=True)
    batch = batches[np.argmax(counts)]
    same = np.all(picks == batch, axis=1)
    assert same.sum() >= 20
    exact_values = [acquisition(probs, batch[: i + 1].tolist()) for i in range(3)]
    mean = values[same].mean(axis=0)
    sem = values[same].std(axis=0) / np.sqrt(same.sum())
    assert np.all(np.abs(mean - exact_values) <= 4 * sem + 1e-6), (mean, exact_values, sem)


# --------------------------------------------------------------------------------------
# Invariants
# --------------------------------------------------------------------------------------

INV_S, INV_N, INV_C, INV_BUDGET = 4, 24, 3, 6
SELECT = jax.jit(
    lambda probs, candidates, key: (
        batchbald(probs, candidates, INV_BUDGET, key, max_configurations=16, chunk_size=7).indices
    )
)


@pytest.mark.parametrize("seed", range(4))
def test_invariants(seed):
    probs = mc_probs(20 + seed, INV_S, INV_N, INV_C)
    rng = np.random.default_rng(seed)
    # Masks with 24, ~12, 5 and 1 candidates: the last two leave unfillable slots.
    fraction = [1.0, 0.5, 0.0, 0.0][seed]
    candidates = rng.uniform(size=INV_N) < fraction
    candidates[rng.choice(INV_N, [0, 0, 5, 1][seed], replace=False)] = True
    key = jax.random.key(seed)
    picks = SELECT(probs, candidates, key=key)
    assert_valid_picks(picks, candidates, INV_BUDGET)
    np.testing.assert_array_equal(picks, SELECT(probs, candidates, key=key))  # same key
    if seed == 0:  # eager loops compile on every call: once is enough
        eager = batchbald(
            probs, candidates, INV_BUDGET, key, max_configurations=16, chunk_size=7
        ).indices
        np.testing.assert_array_equal(picks, eager)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    count=st.integers(1, INV_N),
    spread=st.sampled_from([0.1, 1.5, 20.0]),  # near-uniform to saturated
)
def test_invariants_property(seed, count, spread):
    probs = mc_probs(seed, INV_S, INV_N, INV_C, spread)
    candidates = np.zeros(INV_N, bool)
    candidates[np.random.default_rng(seed).choice(INV_N, count, replace=False)] = True
    picks = SELECT(probs, candidates, key=jax.random.key(seed))
    assert_valid_picks(picks, candidates, INV_BUDGET)


def test_bad_input_raises():
    probs = mc_probs(0, S, N, C)
    candidates = np.ones(N, bool)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="probs"):
        batchbald(probs[0], candidates, 2, key)
    with pytest.raises(ValueError, match="candidates"):
        batchbald(probs, candidates[:-1], 2, key)
    with pytest.raises(ValueError, match="budget"):
        batchbald(probs, candidates, N + 1, key)
    with pytest.raises(ValueError, match="max_configurations"):
        batchbald(probs, candidates, 2, key, max_configurations=S - 1)
    with pytest.raises(ValueError, match="finite"):
        batchbald(np.full_like(probs, np.nan), candidates, 2, key)


# --------------------------------------------------------------------------------------
# Strategy
# --------------------------------------------------------------------------------------


def test_strategy_matches_selector(head_model, params, pool, key):
    strategy = batchbald_strategy(head_model, 5, mc_samples=8, max_configurations=64, batch_size=25)
    assert strategy.name == "batchbald" and strategy.score(params, pool, key) is None
    assert strategy.max_configurations == 64 and strategy.mc_samples == 8
    picks = np.asarray(jax.jit(strategy.select)(params, pool, key))
    assert_valid_picks(picks, ~np.asarray(pool.labeled), 5)

    mc_key, sample_key = jax.random.split(key)
    by_point = mc_map(
        head_model, params, pool.x, mc_key, 8, 96, lambda p: p.swapaxes(0, 1), consistent=True
    )
    probs = by_point.swapaxes(0, 1)  # [S, N, C]
    expected = batchbald(probs, ~pool.labeled, 5, sample_key, max_configurations=64).indices
    np.testing.assert_array_equal(picks, np.asarray(expected))
    # The first pick is BALD's on the same samples.
    bald = np.where(pool.labeled, -np.inf, np.asarray(scores.mutual_information(probs)))
    assert picks[0] == int(np.argmax(bald))


def test_strategy_rejects_bad_hyperparameters(head_model):
    with pytest.raises(ValueError, match="max_configurations"):
        batchbald_strategy(head_model, 5, mc_samples=20, max_configurations=10)
    with pytest.raises(ValueError, match="mc_samples"):
        batchbald_strategy(head_model, 5, mc_samples=0)
    with pytest.raises(TypeError, match="chunk_size"):
        batchbald_strategy(head_model, 5, chunk_size=2.5)

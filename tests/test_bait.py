"""BAIT against a plain NumPy float64 BAIT: explicit [C D, C D] Fisher matrices, explicit
inverses, every candidate's objective tr((lambda I + M)^-1 F) evaluated at every step."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.selectors import bait
from jaxal.selectors._bait import fisher_sums

# --- the float64 reference ------------------------------------------------------------


def fisher(p, h):
    """I(x) [E, E] by its definition: E_{y ~ p} g_y g_y^T, g_y = (p - e_y) (x) h the
    cross-entropy gradient of a linear head's weights (class-major)."""
    c = len(p)
    gradients = [np.kron(p - np.eye(c)[y], h) for y in range(c)]
    return sum(p[y] * np.outer(g, g) for y, g in enumerate(gradients))


def bait_reference(p, h, candidates, labeled, budget, lambda_, oversample):
    """Greedy forward (oversample * budget picks, each the candidate whose objective
    after adding it is lowest; lowest index on ties) then backward (drop the pick whose
    objective after removing it is lowest) down to budget. Returns (picks in forward
    order, objectives after each forward step, after each backward step, the smallest
    relative gap between the best and the second-best choice of any step)."""
    p, h = np.asarray(p, np.float64), np.asarray(h, np.float64)
    n = len(p)
    info = np.array([fisher(p[i], h[i]) for i in range(n)])
    target = info.mean(0)
    m = lambda_ * np.eye(info.shape[1]) + info[labeled].sum(0)

    def objective(matrix):
        return np.trace(np.linalg.solve(matrix, target))

    def best(values):
        order = np.argsort(values, kind="stable")
        if len(values) > 1:
            gaps.append((values[order[1]] - values[order[0]]) / abs(values[order[0]]))
        return order[0]

    gaps: list[float] = []
    picks, forward, backward = [], [], []
    available = candidates.copy()
    for _ in range(oversample * budget):
        if available.any():
            options = np.flatnonzero(available)
            pick = int(options[best([objective(m + info[i]) for i in options])])
            picks.append(pick)
            available[pick] = False
            m = m + info[pick]
        forward.append(objective(m))
    for _ in range(oversample * budget - budget):
        if len(picks) > budget:
            drop = picks[best([objective(m - info[i]) for i in picks])]
            picks.remove(drop)
            m = m - info[drop]
        backward.append(objective(m))
    picks += [-1] * (budget - len(picks))
    return np.array(picks), np.array(forward), np.array(backward), min(gaps, default=np.inf)


def softmax64(logits):
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def problem(seed, n=22, c=3, d=4, labeled=5, scale=2.0):
    rng = np.random.default_rng(seed)
    p = softmax64(rng.normal(size=(n, c)) * scale)
    h = rng.normal(size=(n, d))
    mask = np.zeros(n, bool)
    mask[rng.choice(n, labeled, replace=False)] = True
    return p, h, mask


@functools.cache
def _selector(budget, lambda_, oversample, chunk_size, step_chunk_size):
    def run(p, h, candidates, labeled):
        return bait(
            p, h, candidates, labeled, jnp.ones_like(candidates), budget,
            lambda_=lambda_, oversample=oversample, chunk_size=chunk_size,
            step_chunk_size=step_chunk_size,
        )  # fmt: skip

    return jax.jit(run)


def run_selector(
    p, h, candidates, labeled, budget, lambda_, oversample, chunk_size=5, step_chunk_size=7
):
    """The jitted selector; the small default blocks make every comparison run blocked."""
    select = _selector(budget, lambda_, oversample, chunk_size, step_chunk_size)
    args = [jnp.asarray(a, jnp.float32) for a in (p, h)] + [jnp.asarray(candidates)]
    return select(*args, jnp.asarray(labeled))


# --- the selector ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "labeled", "budget", "lambda_", "oversample"),
    [(0, 5, 3, 1.0, 2), (1, 0, 4, 0.1, 2), (2, 8, 2, 2.0, 3), (3, 4, 3, 0.5, 1)],
)
def test_objective_at_every_step_and_picks_match_numpy(seed, labeled, budget, lambda_, oversample):
    p, h, mask = problem(seed, labeled=labeled)
    expected, forward, backward, gap = bait_reference(
        p, h, ~mask, mask, budget, lambda_, oversample
    )
    assert gap > 1e-4  # the reference's choices are clear, so float32 must make the same
    got = run_selector(p, h, ~mask, mask, budget, lambda_, oversample)
    np.testing.assert_array_equal(np.asarray(got.indices), expected)
    np.testing.assert_allclose(np.asarray(got.info.forward), forward, rtol=2e-5)
    np.testing.assert_allclose(np.asarray(got.info.backward), backward, rtol=2e-5)


def test_objective_falls_forward_and_rises_backward():
    p, h, mask = problem(4, n=30, labeled=6)
    got = run_selector(p, h, ~mask, mask, 4, 1.0, 2)
    forward, backward = np.asarray(got.info.forward), np.asarray(got.info.backward)
    assert np.all(np.diff(forward) < 0) and np.all(np.diff(backward) > 0)
    assert backward[0] > forward[-1]


def test_fewer_candidates_than_forward_picks():
    """5 candidates for 2 * 3 forward picks: all 5 are picked, then 2 dropped; with 2
    candidates for a budget of 3 the last slot is -1."""
    p, h, _ = problem(5)
    few = np.zeros(len(p), bool)
    few[[1, 4, 9, 13, 20]] = True
    expected, *_ = bait_reference(p, h, few, ~few, 3, 1.0, 2)
    got = run_selector(p, h, few, ~few, 3, 1.0, 2)
    np.testing.assert_array_equal(np.asarray(got.indices), expected)
    two = np.zeros(len(p), bool)
    two[[3, 7]] = True
    got = np.asarray(run_selector(p, h, two, ~two, 3, 1.0, 2).indices)
    assert sorted(got[:2].tolist()) == [3, 7] and got[2] == -1


@pytest.mark.parametrize(
    "chunks", [{"chunk_size": 4, "step_chunk_size": 512}, {"chunk_size": 512, "step_chunk_size": 5}]
)
def test_chunk_size_changes_nothing(chunks):
    """Blocks that do not divide N (27 points; map_slices' last block overlaps)."""
    p, h, mask = problem(6, n=27)
    small = run_selector(p, h, ~mask, mask, 3, 1.0, 2, **chunks)
    whole = run_selector(p, h, ~mask, mask, 3, 1.0, 2, chunk_size=512, step_chunk_size=512)
    np.testing.assert_array_equal(np.asarray(small.indices), np.asarray(whole.indices))
    np.testing.assert_allclose(small.info.forward, whole.info.forward, rtol=1e-5)
    np.testing.assert_allclose(small.info.backward, whole.info.backward, rtol=1e-5)


def test_fisher_sums_match_the_definition():
    """I(x) as the expected outer product of the per-class gradients, summed with two
    weightings; the selector uses its Kronecker form and class-pair symmetry."""
    p, h, _ = problem(7, n=9, c=4, d=3)
    weights = np.random.default_rng(7).random((9, 2))
    expected = np.einsum(
        "nk,nef->kef", weights, np.array([fisher(a, b) for a, b in zip(p, h, strict=True)])
    )
    got = fisher_sums(*(jnp.asarray(a, jnp.float32) for a in (p, h, weights)), chunk_size=4)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


# --- the strategy ----------------------------------------------------------------------


def probe_problem(seed, n=24, d=4, c=3, labeled=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    params = {
        "kernel": jnp.asarray(rng.normal(size=(d, c)) * 1.5, jnp.float32),
        "bias": jnp.asarray(rng.normal(size=c), jnp.float32),
    }
    mask = np.zeros(n, bool)
    mask[rng.choice(n, labeled, replace=False)] = True
    return x, params, mask


@pytest.mark.parametrize(("seed", "gradient"), [(8, "linear"), (9, "bias_linear")])
def test_strategy_matches_numpy(seed, gradient):
    """The model's probabilities and embeddings (h = [1, x] with the bias) into the
    reference; the strategy returns the same picks."""
    x, params, mask = probe_problem(seed)
    p = softmax64(x.astype(np.float64) @ np.asarray(params["kernel"]) + np.asarray(params["bias"]))
    h = x if gradient == "linear" else np.concatenate([np.ones((len(x), 1)), x], axis=1)
    expected, _, _, gap = bait_reference(p, h, ~mask, mask, 3, 1.0, 2)
    assert gap > 1e-4
    strategy = jaxal.strategies.bait(jaxal.linear_probe(), 3, gradient=gradient, batch_size=7)
    pool = jaxal.Pool.create(jnp.asarray(x), labeled=jnp.asarray(mask))
    np.testing.assert_array_equal(
        np.asarray(strategy.select(params, pool, jax.random.key(0))), expected
    )


@pytest.mark.parametrize(
    ("hparams", "error", "match"),
    [
        ({"lambda_": 0.0}, ValueError, "lambda_"),
        ({"lambda_": "1"}, TypeError, "lambda_"),
        ({"oversample": 0}, ValueError, "oversample"),
        ({"gradient": "params"}, ValueError, "gradient"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
    ],
)
def test_bad_hyperparameters(hparams, error, match):
    with pytest.raises(error, match=match):
        jaxal.strategies.bait(jaxal.linear_probe(), 3, **hparams)

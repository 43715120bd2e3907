"""The contract on extreme models and inputs, for every registered strategy, eager and jitted.

Cases: logits reaching 1e2, 1e4 and 1e6 (a softmax exactly one-hot for most points at the
two larger); float16 and bfloat16 inputs and params; all-zero and constant embeddings;
every point identical; pools with one or two unlabeled points and budgets 1 and 2. Each
case: exactly ``budget`` distinct, in-range, never-labeled indices (no -1: every output
is finite), finite scores on unlabeled points, and the jitted call equal to the eager one.

Each strategy is built once per (name, budget) and its jitted functions compile once per
input dtype (``sweep_strategy``, shared with tests/test_non_finite.py); the cases are built
once. Every case still runs the strategy unjitted once (that call retraces and recompiles
every loop of the strategy: conftest's persistent compilation cache serves those again).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from tests.conftest import DropoutMLP
from tests.test_contract import INPUTS, model_for

N = 24
FEATURES = 6
LABELED = 5

# One configuration per registered strategy (its default, cheap settings): every name.
SWEEP = {
    "random": {},
    "least_confidence": {},
    "margin": {"mc_samples": 3},
    "entropy": {"mc_samples": 3},
    "bald": {"mc_samples": 4},
    "coreset": {},
    "kmeans": {"max_iter": 5},
    "badge": {},
    "batchbald": {"mc_samples": 4, "max_configurations": 40},
    "deepfool": {"max_iter": 5},
    "bim": {"eps": 0.1, "max_iter": 10},
    "submodular": {},
    "fass": {"top_n": 2},
    "smi": {},
    "scg": {},
    "scmi": {},
    "glister": {},
    "gradmatch": {},
    "typiclust": {"max_iter": 5},
    "probcover": {"max_iter": 5},
    "maxherding": {},
    "uherding": {},
    "dropquery": {"max_iter": 5},
    "epig": {"mc_samples": 4, "target_samples": 10},
    "alfamix": {"max_iter": 5},
    "bait": {},
    "cluster_margin": {},
    "stochastic": {"strategy": "entropy", "mode": "softmax"},
    "partition": {"strategy": "coreset", "parts": 2},
}


def test_sweep_covers_registry():
    assert set(SWEEP) == set(jaxal.strategies.REGISTRY)


@functools.cache
def _base():
    module = DropoutMLP()
    x = jax.random.normal(jax.random.key(3), (N, FEATURES))
    params = module.init(jax.random.key(4), x[:2], train=False)
    return module, params, x


def _scale_logits(params, x, module, largest):
    """Scale the last layer so that the largest |logit| over the pool is ``largest``."""
    logits, _ = module.apply(params, x, train=False)
    factor = largest / float(jnp.max(jnp.abs(logits)))
    return jax.tree_util.tree_map_with_path(
        lambda path, w: w * factor if "Dense_1" in jax.tree_util.keystr(path) else w, params
    )


def _first_layer(params, kernel, bias):
    layer = params["params"]["Dense_0"]
    new = {
        "kernel": jnp.full_like(layer["kernel"], kernel),
        "bias": jnp.full_like(layer["bias"], bias),
    }
    return {"params": {**params["params"], "Dense_0": new}}


@functools.cache
def _case(name):
    """(params, x, labeled mask (read-only), budget) of one extreme case; built once."""
    module, params, x = _base()
    labeled = np.zeros(N, bool)
    labeled[:LABELED] = True
    budget = 3
    if name.startswith("logits_"):
        params = _scale_logits(params, x, module, float(name.split("_")[1]))
    elif name in ("float16", "bfloat16"):
        dtype = jnp.dtype(name)
        params = jax.tree.map(lambda w: w.astype(dtype), params)
        x = x.astype(dtype)
    elif name == "zero_embeddings":
        params = _first_layer(params, 0.0, 0.0)
    elif name == "constant_embeddings":
        params = _first_layer(params, 0.0, 0.7)
    elif name == "identical_points":
        x = jnp.broadcast_to(x[:1], x.shape)
    elif name.startswith("unlabeled_"):
        budget = int(name.split("_")[1])
        labeled[:] = True
        labeled[N - budget :] = False
    labeled.flags.writeable = False
    return params, x, labeled, budget


CASES = [
    "logits_1e2",
    "logits_1e4",
    "logits_1e6",
    "float16",
    "bfloat16",
    "zero_embeddings",
    "constant_embeddings",
    "identical_points",
    "unlabeled_1",
    "unlabeled_2",
]


# Refused outside jit with a clear error, by design. Mutual information needs MC samples
# that differ: with all-zero embeddings the model's dropout has nothing to drop. Partition
# splits the budget by part sizes: a part of the pool without unlabeled points cannot
# give its share.
EXPECTED_ERRORS = {
    ("bald", "zero_embeddings"): "samples are identical",
    ("batchbald", "zero_embeddings"): "samples are identical",
    ("epig", "zero_embeddings"): "samples are identical",
    ("partition", "unlabeled_2"): "budget=1 is larger than the number of unlabeled points (0)",
}


@functools.cache
def sweep_strategy(name, budget):
    """(strategy, the strategy with select and score jitted) of ``SWEEP[name]``, built once
    per (name, budget) in a process: the jitted functions compile once per input dtype."""
    hparams = dict(SWEEP[name])
    if "parts" in hparams:  # at most one part per point of the budget
        hparams["parts"] = min(hparams["parts"], budget)
    model = model_for(name, jaxal.from_flax(DropoutMLP()))
    strategy = jaxal.strategies.get(name)(model, budget, batch_size=10, **hparams)
    return strategy, strategy._replace(
        select=jax.jit(strategy.select), score=jax.jit(strategy.score)
    )


def _inputs(strategy, dtype):
    """The strategy's extra inputs, floating ones in the pool's dtype."""
    cast = {
        k: v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v
        for k, v in INPUTS.items()
    }
    return {name: cast[name] for name in strategy.inputs}


def _violations(strategy, jitted, case):
    """What breaks the contract in one case, as text (empty when nothing does)."""
    params, x, labeled, budget = _case(case)
    pool = jaxal.Pool.create(x, labeled=jnp.asarray(labeled))
    inputs = _inputs(strategy, x.dtype)
    key = jax.random.key(5)
    again = np.asarray(jitted.select(params, pool, key, **inputs))
    refused = False
    try:
        eager = np.asarray(strategy.select(params, pool, key, **inputs))  # once per case
    except ValueError as error:
        refused = True
        expected = EXPECTED_ERRORS.get((strategy.name, case))
        if expected is None or expected not in str(error):
            return [f"{case}: {type(error).__name__}: {error}"]
        # The clear error outside jit; under jit the picks must still keep the contract.
        eager = again
        if strategy.name == "partition":  # a part's unfillable slots are -1 under jit
            eager = eager[eager >= 0]
            budget = len(eager)
    found = []
    if eager.dtype != np.int32 or eager.shape != (budget,):
        found.append(f"dtype/shape {eager.dtype} {eager.shape}")
    elif len(set(eager.tolist())) != budget or eager.min() < 0 or eager.max() >= N:
        found.append(f"not {budget} distinct in-range indices: {eager}")
    elif labeled[eager].any():
        found.append(f"a labeled point was picked: {eager}")
    if not refused and not np.array_equal(eager, again):
        found.append(f"jit {again} != eager {eager}")
    scores = jitted.score(params, pool, key, **inputs)
    if scores is not None and not np.all(np.isfinite(np.asarray(scores)[~labeled])):
        found.append(f"non-finite scores {np.asarray(scores)}")
    return [f"{case}: {problem}" for problem in found]


@pytest.mark.parametrize("name", sorted(SWEEP))
def test_extreme_cases(name):
    """Every case for one strategy; cases of one budget share one strategy, so its jitted
    functions compile once per input dtype."""
    found = []
    for case in CASES:
        found += _violations(*sweep_strategy(name, _case(case)[3]), case)
    assert not found, "\n".join(found)

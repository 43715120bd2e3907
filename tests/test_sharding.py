"""A pool sharded over devices gives the same indices as the unsharded pool: the first
case of every strategy in tests/test_contract.py's table (one per strategy name; a 4-device
program compiles slowly on a CPU, and the other cases differ in hyperparameters only)."""

from __future__ import annotations

import dataclasses

import chex
import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import jaxal
from tests.conftest import N_LABELED, labeled_mask
from tests.test_contract import IDS, TABLE, _build

pytestmark = pytest.mark.skipif(
    len(jax.devices()) < 4, reason="needs 4 devices (conftest sets 4 host devices)"
)


def _shard(pool: jaxal.Pool) -> jaxal.Pool:
    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    rows = NamedSharding(mesh, PartitionSpec("data"))
    return dataclasses.replace(
        pool,
        x=jax.device_put(pool.x, rows),
        y=jax.device_put(pool.y, rows),
        labeled=jax.device_put(pool.labeled, rows),
    )


def test_pool_is_really_sharded(pool):
    sharded = _shard(pool)
    assert len(sharded.x.sharding.device_set) == 4
    assert sharded.x.addressable_shards[0].data.shape[0] == pool.size // 4


def _first_case_per_name() -> list:
    seen: set[str] = set()
    cases = []
    for (name, hparams), case_id in zip(TABLE, IDS, strict=True):
        if name not in seen:
            seen.add(name)
            cases.append(pytest.param(name, hparams, id=case_id))
    return cases


@pytest.mark.parametrize(("name", "hparams"), _first_case_per_name())
def test_sharded_equals_unsharded(name, hparams, model, params, pool, key):
    """Every strategy name is here once (the table covers the registry)."""
    strategy = _build(name, hparams, model)
    select = jax.jit(strategy.select)
    expected = np.asarray(select(params, pool, key))
    got = np.asarray(select(params, _shard(pool), key))
    np.testing.assert_array_equal(got, expected)


def test_pool_create_shards_like_x_and_a_round_compiles_once(model, params, mlp, key):
    """Pool.create of row-sharded arrays: the default y and labeled follow x's rows, the
    offset is replicated, as the jitted round returns them, so later rounds reuse it."""
    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    rows = NamedSharding(mesh, PartitionSpec("data"))
    pool = jaxal.Pool.create(
        jax.device_put(mlp[2], rows), labeled=jax.device_put(labeled_mask(), rows)
    )
    assert pool.y.sharding.is_equivalent_to(rows, 1)
    assert pool.offset.sharding.is_equivalent_to(NamedSharding(mesh, PartitionSpec()), 0)
    np.testing.assert_array_equal(np.asarray(pool.y), -1)
    budget = 3
    strategy = jaxal.strategies.entropy(model, budget)
    al_round = jax.jit(chex.assert_max_traces(jaxal.make_round(strategy), n=1))
    try:
        for round_key in jax.random.split(key, 3):
            pool, indices = al_round(params, pool, round_key)
    finally:
        chex.clear_trace_counter()
    assert pool.labeled.sharding.is_equivalent_to(rows, 1)
    assert int(pool.labeled.sum()) == N_LABELED + 3 * budget

"""One process of tests/test_multi_process.py's cluster of two processes on this machine.

    python -m tests.multi_process_worker PORT PROCESS_ID OUT_JSON

Joins the cluster (coordinator at 127.0.0.1:PORT, gloo CPU collectives, one CPU device
per process), holds the first or the second half of the rows of conftest's pool (by
process id) and builds the global pool from them with ``jaxal.Pool.create``. Then, for the
first case of every strategy of tests/test_contract.py's table, it runs the jitted round
(``jax.jit(jaxal.make_round(strategy))``) and records the indices, or the error. Both
processes run the same programs in the same order, as every process of a cluster must.

OUT_JSON holds ``{"rows": [start, stop], "strategies": {name: record}, "checks": {...}}``;
a strategy's record is ``{"indices": [...], "replicated": bool, "rows_sharded": bool,
"local_labeled": [...], "seconds": float}`` or ``{"error": "Type: message"}``.
"""

from __future__ import annotations

import os
import re
import sys

# One CPU device per process; set before jax is imported (conftest keeps a count it finds).
os.environ["XLA_FLAGS"] = " ".join(
    re.sub(
        r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")
    ).split()
    + ["--xla_force_host_platform_device_count=1"]
)

import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import jaxal  # noqa: E402
from tests.conftest import KEY_SEED, N_POINTS, labeled_mask, tiny_mlp  # noqa: E402

PROCESSES = 2


def _error(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def main(port: int, process_id: int, out: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=PROCESSES, process_id=process_id)
    assert jax.process_count() == PROCESSES and jax.local_device_count() == 1
    from tests.test_contract import CASES, _build  # its inputs are arrays: after initialize

    module, params, x = tiny_mlp()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = NamedSharding(mesh, PartitionSpec("data"))
    # The rows this process holds, as make_array_from_process_local_data reads them.
    (index,) = rows.addressable_devices_indices_map((N_POINTS,)).values()
    start, stop, _ = index[0].indices(N_POINTS)
    assert stop - start == N_POINTS // PROCESSES

    def global_rows(values: Any) -> jax.Array:
        """[N, ...] from this process's rows [N / 2, ...] of ``values``."""
        local = np.asarray(values)[start:stop]
        return jax.make_array_from_process_local_data(rows, local, (N_POINTS, *local.shape[1:]))

    labeled = labeled_mask()
    pool = jaxal.Pool.create(global_rows(x), labeled=global_rows(labeled))
    assert not pool.x.is_fully_addressable and pool.y.sharding.is_equivalent_to(rows, 1)
    model = jaxal.from_flax(module)
    key = jax.random.key(KEY_SEED)

    strategies: dict[str, dict[str, Any]] = {}
    for name, cases in CASES.items():
        began = time.perf_counter()
        try:
            al_round = jax.jit(jaxal.make_round(_build(name, cases[0], model)))
            new_pool, indices = al_round(params, pool, key)
            strategies[name] = {
                "indices": np.asarray(indices).tolist(),
                "replicated": indices.is_fully_replicated,
                "rows_sharded": new_pool.labeled.sharding.is_equivalent_to(rows, 1),
                "local_labeled": np.asarray(new_pool.labeled.addressable_data(0)).tolist(),
            }
        except Exception as error:  # recorded: the parent says which strategy failed how
            strategies[name] = {"error": _error(error)}
        strategies[name]["seconds"] = round(time.perf_counter() - began, 2)

    checks: dict[str, Any] = {}
    entropy = _build("entropy", CASES["entropy"][0], model)
    # Three rounds, each on the pool the last one returned: one compilation.
    traces = []

    def entropy_round(params: Any, pool: jaxal.Pool, key: jax.Array) -> Any:
        traces.append(1)  # runs only while jax traces
        return jaxal.make_round(entropy)(params, pool, key)

    current, compiled_round = pool, jax.jit(entropy_round)
    for seed in range(3):
        current, _ = compiled_round(params, current, jax.random.key(seed))
    checks["round_traces"] = len(traces)
    checks["labeled_after_rounds"] = int(current.labeled.sum())

    # Outside jit: the compiled eager call, its value checks and Pool's, on every process.
    checks["eager_indices"] = np.asarray(entropy.select(params, pool, key)).tolist()
    four_unlabeled = jaxal.Pool.create(pool.x, labeled=global_rows(np.arange(N_POINTS) >= 4))
    checks["eager_budget_error"] = _raised(lambda: entropy.select(params, four_unlabeled, key))
    nan_x = np.array(x)
    nan_x[-1, 0] = np.nan  # on the last process's rows only
    checks["create_nan_error"] = _raised(lambda: jaxal.Pool.create(global_rows(nan_x)))
    labels = global_rows(np.where(labeled, 9, -1).astype(np.int32))
    checks["create_label_error"] = _raised(
        lambda: jaxal.Pool.create(pool.x, labels, global_rows(labeled), num_classes=4)
    )

    with open(out, "w") as file:
        json.dump({"rows": [start, stop], "strategies": strategies, "checks": checks}, file)


def _raised(call: Any) -> str | None:
    try:
        call()
    except ValueError as error:
        return _error(error)
    return None


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])

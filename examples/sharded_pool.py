"""A pool sharded over devices: the same jitted round, the same indices.

Puts the pool's rows on a 1-D mesh of every device (on a CPU, ask XLA for several host
devices: this script does so when run directly), runs each registered strategy on the
sharded and on the single-device pool, and checks that the picks agree.

    python examples/sharded_pool.py [--devices 4] [--strategies entropy,coreset,badge]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4, help="host devices on a CPU")
    parser.add_argument("--strategies", default="entropy,bald,coreset,badge,kmeans")
    parser.add_argument("--budget", type=int, default=20)
    args = parser.parse_args(argv)
    if "jax" in sys.modules:
        raise RuntimeError("run this example as a script: XLA_FLAGS must be set before jax")
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.devices}"
    )

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import jaxal
    from jaxal import data, train

    ds = data.load("digits", seed=0)
    n = len(ds.x_train) // len(jax.devices()) * len(jax.devices())  # rows divide evenly
    module = train.MLP(num_classes=ds.num_classes)
    initial = data.initial_indices(n, 30, seed=0)
    pool = jaxal.Pool.create(ds.x_train[:n], labeled=initial).label(initial, ds.y_train[initial])
    params = jax.jit(train.trainer(module).train)(pool.x, pool.y, pool.labeled, jax.random.key(0))

    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = NamedSharding(mesh, PartitionSpec("data"))
    sharded = dataclasses.replace(
        pool,
        x=jax.device_put(pool.x, rows),
        y=jax.device_put(pool.y, rows),
        labeled=jax.device_put(pool.labeled, rows),
    )
    print(f"{n} points on {len(mesh.devices)} devices, {len(pool.x) // len(mesh.devices)} each")
    model = jaxal.from_flax(module)
    for name in args.strategies.split(","):
        al_round = jax.jit(jaxal.make_round(jaxal.strategies.get(name)(model, args.budget)))
        key = jax.random.key(1)
        _, single = al_round(params, pool, key)
        new_pool, picked = al_round(params, sharded, key)
        same = bool(np.array_equal(np.asarray(single), np.asarray(picked)))
        print(f"{name:>10}: {args.budget} picks, identical to one device: {same}")
        if not same:
            raise SystemExit(f"{name}: the sharded pool picked other points")
        assert new_pool.labeled.sharding.is_equivalent_to(rows, 1)


if __name__ == "__main__":
    main()

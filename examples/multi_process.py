"""Many processes as one: a pool spread over the hosts of a cluster, the same jitted rounds.

Every process of the cluster (one per host, or one per accelerator) runs this script. It
joins the cluster with ``jax.distributed.initialize()``, keeps only the rows of the pool
that its own devices hold, and builds the global pool from them
(``jax.make_array_from_process_local_data``, then ``jaxal.Pool.create``). Then every
process runs the same jitted rounds: train on the labeled points, select, label. The
picks come back replicated, the same on every process; process 0 prints them.

On a cluster where ``jax.distributed.initialize()`` finds its settings (SLURM, Open MPI,
Kubernetes, Cloud TPU), on every host:

    python examples/multi_process.py [--strategy badge] [--rounds 5] [--budget 10]

elsewhere, name the coordinator (one of the hosts) on every host:

    python examples/multi_process.py --coordinator HOST:PORT --num-processes N --process-id I

On one machine, without a cluster: N local processes on the CPU (gloo collectives):

    python examples/multi_process.py --local 2 [--rounds 2] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", type=int, help="run N processes on this machine's CPU")
    parser.add_argument("--coordinator", help="HOST:PORT of process 0 (default: detected)")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--strategy", default="badge")
    parser.add_argument("--dataset", default="digits", help="digits, tfds:NAME or a .npz")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--steps", type=int, default=300, help="training steps per round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.local:
        sys.exit(run_locally(args.local, sys.argv[1:] if argv is None else list(argv)))
    run(args)


def run(args: argparse.Namespace) -> None:
    """One process of the cluster: every process calls this with the same arguments."""
    import jax

    # CPU devices need a collectives implementation to work across processes; GPUs and
    # TPUs bring their own.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)

    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import jaxal
    from jaxal import data, train

    mesh = Mesh(np.array(jax.devices()), ("data",))  # every device of every process
    rows = NamedSharding(mesh, PartitionSpec("data"))  # arrays [N, ...] split by rows
    replicated = NamedSharding(mesh, PartitionSpec())
    ds = data.load(args.dataset, seed=args.seed)
    n = len(ds.x_train) // jax.device_count() * jax.device_count()  # or pad: labeled rows
    mine = process_rows(rows, n)
    # This process's rows only. Here the whole (small) dataset is loaded and indexed; with
    # a large one, read these rows alone, e.g. np.load(path, mmap_mode="r")[mine].
    x_mine, y_mine = ds.x_train[mine], ds.y_train[mine]

    def global_array(local: np.ndarray) -> jax.Array:
        """[N, ...] over every process, from this process's rows [len(mine), ...]."""
        return jax.make_array_from_process_local_data(rows, local, (n, *local.shape[1:]))

    initial = data.initial_indices(n, args.initial, seed=args.seed)  # the same everywhere
    labeled = np.isin(mine, initial)
    pool = jaxal.Pool.create(
        global_array(x_mine),
        global_array(np.where(labeled, y_mine, -1).astype(np.int32)),
        global_array(labeled),
        num_classes=ds.num_classes,
    )
    # The annotator of this simulation: the true labels, each process holding its rows'.
    truth = global_array(y_mine)

    module = train.MLP(num_classes=ds.num_classes)
    trainer = train.trainer(module, steps=args.steps)
    strategy = jaxal.strategies.get(args.strategy)(jaxal.from_flax(module), args.budget)
    al_round = jaxal.make_round(strategy)
    fit = jax.jit(trainer.train, out_shardings=replicated)  # the model on every device
    accuracy = jax.jit(trainer.accuracy)

    traces = []

    @jax.jit
    def select_and_label(params, pool, truth, key):
        """One round: ``budget`` picks (replicated), labeled with their true labels."""
        traces.append(1)  # Python side effects run only while jax traces (compiles)
        pool, picked = al_round(params, pool, key)
        return pool.label(picked, truth[picked]), picked

    first = jax.process_index() == 0
    if first:
        print(
            f"{jax.process_count()} processes, {jax.device_count()} devices: {n} points, "
            f"{len(mine)} on process 0; {args.strategy}, {args.budget} per round"
        )
    key = jax.random.key(args.seed)
    for round_index in range(args.rounds):
        key, fit_key, select_key = jax.random.split(key, 3)
        params = fit(pool.x, pool.y, pool.labeled, fit_key)
        trained_on = int(pool.labeled.sum())
        test_accuracy = float(accuracy(params, ds.x_test, ds.y_test))
        began = time.perf_counter()
        pool, picked = select_and_label(params, pool, truth, select_key)
        picked = np.asarray(picked)  # replicated: every process reads the whole array
        seconds = time.perf_counter() - began
        multihost_utils.assert_equal(picked, "the processes picked different points")
        if first:
            print(
                f"round {round_index}: trained on {trained_on:>3} labeled, test accuracy "
                f"{test_accuracy:.3f}; picked {picked.tolist()} in {seconds:.2f} s"
            )
    if first:
        print(f"select_and_label compiled {len(traces)} time(s) for {args.rounds} rounds")


def process_rows(rows, n: int):
    """int [n / processes]: the global rows that this process's devices hold under the
    sharding ``rows``, in the order ``jax.make_array_from_process_local_data`` reads them
    (by position)."""
    import numpy as np

    spans = {
        index[0].indices(n)[:2] for index in rows.addressable_devices_indices_map((n,)).values()
    }
    return np.concatenate([np.arange(start, stop) for start, stop in sorted(spans)])


def run_locally(processes: int, argv: list[str]) -> int:
    """Start ``processes`` copies of this script on this machine's CPU as one cluster
    (coordinator on a free localhost port); return the first non-zero exit status."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    drop = {"--local"}
    kept = []
    skip = False
    for arg in argv:  # argv without --local N (or --local=N)
        if skip:
            skip = False
        elif arg in drop:
            skip = True
        elif not arg.startswith("--local="):
            kept.append(arg)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    children = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *kept]
            + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(processes)]
            + ["--process-id", str(i)],
            env=env,
        )
        for i in range(processes)
    ]
    try:
        while True:
            codes = [child.poll() for child in children]
            failed = [code for code in codes if code not in (None, 0)]
            if failed:
                return failed[0]  # the others would wait for it: the finally ends them
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()  # SIGKILL: JAX's distributed runtime catches SIGTERM
                child.wait()


if __name__ == "__main__":
    main()

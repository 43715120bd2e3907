"""Selection over a pool that is streamed from disk: time and peak memory.

Writes a seeded pool of N points x F features to a ``.npy`` memmap (default 1,000,000 x
128 float32, 512 MB), then, each in a fresh process so that peak memory is its own:

* entropy: ``jaxal.streaming.top_k`` of an entropy strategy, one pass over the memmap;
* coreset: ``jaxal.streaming.k_center_greedy`` (embeddings chunk by chunk, then greedy).

The model is an MLP F -> 128 -> 10 (plain jax.numpy, seeded). Reported: wall seconds of
the selection (compile included: one pass is the whole job) and the process's peak
resident memory (``ru_maxrss``). Prints a table and writes JSON.

    python benchmarks/streaming.py [--n 1000000] [--features 128] [--budget 1000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HIDDEN, CLASSES, LABELED = 128, 10, 1000


def _model_and_params(features: int):
    import jax
    import jax.numpy as jnp

    import jaxal

    keys = jax.random.split(jax.random.key(0), 2)
    params = {
        "w0": jax.random.normal(keys[0], (features, HIDDEN)) / jnp.sqrt(features),
        "w1": jax.random.normal(keys[1], (HIDDEN, CLASSES)) * 3 / jnp.sqrt(HIDDEN),
    }

    def apply(params, x, rng):
        del rng
        hidden = jax.nn.relu(x @ params["w0"])
        return hidden @ params["w1"], hidden

    return jaxal.Model(apply=apply), params


def _run_one(task: str, path: str, budget: int, chunk_size: int) -> dict:
    import jax

    import jaxal
    from jaxal import streaming

    x = np.load(path, mmap_mode="r")
    model, params = _model_and_params(x.shape[1])
    labeled = np.zeros(x.shape[0], bool)
    labeled[np.random.default_rng(1).choice(x.shape[0], LABELED, replace=False)] = True
    key = jax.random.key(2)
    start = time.perf_counter()
    if task == "entropy":
        strategy = jaxal.strategies.entropy(model, budget, batch_size=chunk_size)
        picked = streaming.top_k(strategy, params, x, key, labeled=labeled, chunk_size=chunk_size)
    else:
        picked = streaming.k_center_greedy(
            model, params, x, budget, key, labeled=labeled, chunk_size=chunk_size
        )
    seconds = time.perf_counter() - start
    assert len(set(picked.tolist())) == budget and not labeled[picked].any()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"task": task, "seconds": seconds, "peak_memory_mb": peak_mb}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--chunk-size", type=int, default=65536)
    parser.add_argument("--tasks", nargs="+", default=["entropy", "coreset"])
    parser.add_argument("--out", default="benchmarks/results/streaming.json")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = _run_one(args.child[0], args.child[1], args.budget, args.chunk_size)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pool.npy")
        pool = np.lib.format.open_memmap(path, "w+", np.float32, (args.n, args.features))
        rng = np.random.default_rng(0)
        for s in range(0, args.n, 100_000):
            rows = pool[s : s + 100_000]
            rows[:] = rng.normal(size=rows.shape).astype(np.float32)
        pool.flush()
        del pool
        results = []
        for task in args.tasks:
            command = [sys.executable, __file__, "--child", task, path]
            command += ["--budget", str(args.budget), "--chunk-size", str(args.chunk_size)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))

    print(f"\npool: {args.n:,} x {args.features} float32 memmap, budget {args.budget:,}\n")
    print("| task | seconds | peak memory MB |\n| --- | ---: | ---: |")
    for r in results:
        print(f"| {r['task']} | {r['seconds']:.2f} | {r['peak_memory_mb']:.0f} |")
    record = {
        "n": args.n,
        "features": args.features,
        "budget": args.budget,
        "chunk_size": args.chunk_size,
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Every jaxal strategy on a pool of a million points: time, peak memory, fraction of the floor.

The default workload is ``strategies.py``'s (an MLP 64 -> 128 -> 10 with dropout 0.5 on the
hidden units, a synthetic 10-class pool, 1,000 labeled points) at N = 1,000,000 and budget
1,000; ``--workload probe`` is the linear-probe setting of ``probe_workload.py`` (stored
[N, 128] embeddings, float32 or ``--storage bfloat16``, a linear head, 10,000 labeled).
Each strategy runs alone in a fresh process, so its peak resident memory (``VmHWM``) is
its own: the pool, the model, the compiled program and everything the call allocates.
In that process: ``jax.jit(select).lower(...).compile()`` (compile s), one warm-up call,
then ``--repeats`` timed calls with fresh keys, each ``jax.block_until_ready`` (median);
a strategy whose warm-up call takes longer than ``--long`` seconds is timed by that one
call alone (``runs`` = 1 in the JSON).

The floor. A first process measures this machine's sustainable read bandwidth (a jitted
sum over a 1 GiB float32 array, the best of several) and its matmul throughput (a jitted
[4096, 4096] x [4096, 4096] float32 product). ``work()`` states, per strategy, the bytes
it must read and the flops it must do at this N and budget, phase by phase; a phase
costs max(bytes / bandwidth, flops / matmul rate), the floor is their sum, and the table
reports time / floor. Strategies whose work has no such closed form (the attacks' early
exits, the submodular greedy's lazy evaluations) get no floor and a reason in the docs.

Usage::

    python benchmarks/million.py                                  # everything: about an hour
    python benchmarks/million.py --strategies entropy coreset     # some
    python benchmarks/million.py --n 100000 --budget 100 --quick  # a smoke run, 2 minutes
    python benchmarks/million.py --workload probe --storage bfloat16 --strategies coreset

Works unchanged on a GPU (``pip install "jax[cuda12]"``): the floors are then the GPU's.
Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import fmt, jaxal_commit  # noqa: E402

N_DEFAULT = 1_000_000
BUDGET_DEFAULT = 1000
GIB = 2**30
FLOAT = 4  # bytes of a float32
WORKLOADS = ("mlp", "probe")
STORAGE_BYTES = {"float32": 4, "bfloat16": 2}

# Benchmark name -> (registry name, hyperparameters). The strategies.py set, with the
# settings a user at a million points chooses: BatchBALD at the bar's budget of 100, BAIT
# at 100 (its cost is budget x N x (C D)^2), and for the strategies whose exact form is
# quadratic in N (a gain pass sums a kernel over every pair of points: 10^12 entries of
# 128 features per pass at N = 10^6) their scalable path, named in SCALABLE_PATHS.
PARTS = 100  # 10,000 points per part at N = 1,000,000: each part's kernel is stored (400 MB)


def _in_parts(strategy: str, **hparams: Any) -> tuple[str, dict[str, Any]]:
    return "partition", {"strategy": strategy, "parts": PARTS, "shuffle": True, **hparams}


OVERRIDES: dict[str, tuple[str, dict[str, Any]]] = {
    "submodular": ("submodular", {"optimizer": "stochastic", "represented": 20000}),
    "smi_fl1mi": _in_parts("smi", function="fl1mi"),
    "smi_logdetmi": _in_parts("smi", function="logdetmi"),
    "scg_flcg": _in_parts("scg", function="flcg"),
    "scg_gccg": _in_parts("scg", function="gccg"),
    "scg_logdetcg": _in_parts("scg", function="logdetcg"),
    "scmi_flcmi": _in_parts("scmi", function="flcmi"),
    "scmi_logdetcmi": _in_parts("scmi", function="logdetcmi"),
    "maxherding": _in_parts("maxherding"),
    "uherding": _in_parts("uherding"),
    # ProbCover chooses delta by the purity of every point's delta-ball, and covers with
    # the ball graph: both are all pairs within delta, N^2 distances.
    "probcover": _in_parts("probcover", normalize=True),
    # k-means++ seeding and one Lloyd iteration: the part of k-means with a fixed amount
    # of work (the full run's iterations until the tolerance depend on the data).
    "kmeans_1_iteration": ("kmeans", {"max_iter": 1}),
    # GLISTER with a held-out validation set (its paper's setting) instead of the default,
    # the whole pool: each greedy step's validation gradient is then over V = 10,000
    # points, not 1,000,000.
    "glister_validation": ("glister", {}),
}
VALIDATION_SIZES = {"glister_validation": 10_000}
SCALABLE_PATHS = {
    "submodular": "facility location over a 20,000-point sample of the points it represents",
    **{
        name: f"{PARTS} random parts of N / {PARTS} points, budget / {PARTS} each"
        for name, (registry, _) in OVERRIDES.items()
        if registry == "partition"
    },
    "glister_validation": "a held-out validation set of 10,000 labeled points",
}
BUDGET_OVERRIDES = {"batchbald": 100, "bait": 100}
SKIPPED = {"submodular_sampled"}  # the same as "submodular" here


def strategy_table() -> dict[str, tuple[str, dict[str, Any]]]:
    from strategies import STRATEGIES

    table = {name: spec for name, spec in STRATEGIES.items() if name not in SKIPPED}
    return {**table, **OVERRIDES}


# --- the floor ----------------------------------------------------------------------------


def measure_machine() -> dict[str, float]:
    """Read bandwidth (bytes/s) and float32 matmul rate (flop/s) of the default device."""
    import jax
    import jax.numpy as jnp

    def best(fn, *args, repeats=7):
        jax.block_until_ready(fn(*args))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
        return min(times)

    big = jnp.ones((GIB // FLOAT,), jnp.float32)
    read_s = best(jax.jit(jnp.sum), big)
    del big
    size = 4096
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    matmul_s = best(jax.jit(jnp.matmul), a, a)
    return {
        "read_bytes_per_s": GIB / read_s,
        "matmul_flops_per_s": 2.0 * size**3 / matmul_s,
        "device": str(jax.devices()[0].device_kind),
        "backend": jax.default_backend(),
    }


def work(
    name: str,
    n: int,
    budget: int,
    hparams: dict[str, Any],
    workload: str = "mlp",
    storage: str = "float32",
) -> list[tuple[str, float, float]]:
    """The phases a strategy cannot avoid at pool size ``n``: (what, bytes read, flops).

    F = 64 inputs, H = 128 embedding units, C = 10 classes. The MLP's forward pass reads
    the [N, F] inputs and does 2 N (F H + H C) flops; the linear probe's reads the stored
    [N, H] embeddings (``storage`` bytes each) and does 2 N H C. A greedy step over the
    embeddings reads [N, H] of them. Empty where no closed form bounds the work (see the
    docs).
    """
    from probe_workload import LABELED as PROBE_LABELED
    from strategies import CLASSES, FEATURES, HIDDEN, LABELED

    f, h, c = FEATURES, HIDDEN, CLASSES
    if workload == "probe":
        stored = STORAGE_BYTES[storage]
        forward = ("head pass over the stored embeddings", n * h * stored, 2.0 * n * h * c)
        embed = forward
    else:
        stored = FLOAT
        forward = ("forward pass", n * f * FLOAT, 2.0 * n * (f * h + h * c))
        embed = (
            "forward pass, embeddings written",
            n * (f + h) * FLOAT,
            2.0 * n * (f * h + h * c),
        )
    samples = hparams.get("mc_samples")
    if name in {"least_confidence", "margin", "entropy"}:
        return [forward]
    if name in {"least_confidence_mc", "margin_mc", "entropy_mc", "bald"}:
        return [forward, (f"{samples} head passes", 0.0, 2.0 * samples * n * h * c)]
    if name == "coreset":
        # Each point's distance to the nearest labeled point: [N, H] x [H, L] once.
        labeled = min(PROBE_LABELED if workload == "probe" else LABELED, n - 1)
        return [
            embed,
            (f"distances to the {labeled} labeled points", 0.0, 2.0 * n * h * labeled),
            (f"{budget} k-center steps over [N, H]", budget * n * h * stored, 0.0),
        ]
    if name == "badge":
        # ||g_i - g_j||^2 from the factors: [N, H] embeddings and [N, C] residuals.
        per_step = n * (h * stored + c * FLOAT)
        return [embed, (f"{budget} k-means++ steps over [N, H + C]", budget * per_step, 0.0)]
    if name == "kmeans_1_iteration":
        return [
            embed,
            (f"{budget} k-means++ steps over [N, H]", budget * n * h * stored, 0.0),
            ("one Lloyd iteration: [N, H] x [H, budget]", n * h * stored, 2.0 * n * h * budget),
        ]
    if name == "fass":
        return [forward]
    if name == "glister":
        # The default validation set is the pool: every greedy step's validation gradient
        # reads the [N, H + 1] right factors and does 2 N (C - 1) (H + 1) flops.
        per_step = (n * (h + 1) * FLOAT, 2.0 * n * (c - 1) * (h + 1))
        return [
            embed,
            (f"{budget} validation gradients over [N, H + 1]", *(budget * w for w in per_step)),
        ]
    if name == "epig":
        targets = hparams["target_samples"]
        return [
            forward,
            (f"{samples} head passes", 0.0, 2.0 * samples * n * h * c),
            (
                "joint predictive [N, C] x [C, M] per sample",
                0.0,
                2.0 * n * targets * c * c * samples,
            ),
        ]
    return []


def floor_seconds(phases: list[tuple[str, float, float]], machine: dict[str, float]) -> float:
    return sum(
        max(bytes_ / machine["read_bytes_per_s"], flops / machine["matmul_flops_per_s"])
        for _, bytes_, flops in phases
    )


# --- one strategy, in its own process -----------------------------------------------------


def reset_peak_resident() -> None:
    """Start ``VmHWM`` again from the current resident size (Linux >= 4.0), so the peak
    leaves out the temporaries of building the workload but keeps what stays resident."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return -1


def run_one(
    name: str,
    n: int,
    budget: int,
    seed: int,
    repeats: int,
    long_s: float,
    workload: str = "mlp",
    storage: str = "float32",
) -> dict:
    import jax
    import numpy as np
    from probe_workload import PROBE_MODEL, embed, make_probe_workload
    from strategies import MODEL, extra_inputs, make_params, make_pool

    import jaxal

    registry_name, hparams = strategy_table()[name]
    if workload == "probe":
        model = PROBE_MODEL
        params, pool, labeled = make_probe_workload(n, seed, storage)
    else:
        model = MODEL
        x, y, labeled = make_pool(n, seed)
        params = make_params(x, y, labeled, seed)
        pool = jaxal.Pool.create(x, labeled=labeled)
        del x, y
    reset_peak_resident()
    strategy = jaxal.strategies.get(registry_name)(model, budget, **hparams)
    inputs = extra_inputs(strategy, seed)
    if name in VALIDATION_SIZES:
        x, y, _ = make_pool(VALIDATION_SIZES[name], seed, seed + 3)
        inputs = {
            **inputs,
            "validation_x": jax.numpy.asarray(x),
            "validation_y": jax.numpy.asarray(y),
        }
    if workload == "probe":  # the model's inputs are embeddings
        inputs = {
            key: embed(params, np.asarray(value), storage) if key.endswith("_x") else value
            for key, value in inputs.items()
        }

    def select(params, pool, inputs, key):
        return strategy.select(params, pool, key, **inputs)

    key = jax.random.key(seed)
    start = time.perf_counter()
    compiled = jax.jit(select).lower(params, pool, inputs, key).compile()
    compile_s = time.perf_counter() - start
    keys = jax.random.split(key, repeats + 1)
    start = time.perf_counter()
    picks = jax.block_until_ready(compiled(params, pool, inputs, keys[0]))
    times = [time.perf_counter() - start]
    if times[0] <= long_s:
        times = []
        for k in keys[1:]:
            start = time.perf_counter()
            jax.block_until_ready(compiled(params, pool, inputs, k))
            times.append(time.perf_counter() - start)
    picked = set(int(i) for i in picks)
    valid = len(picked) == budget and not picked & set(int(i) for i in labeled)
    return {
        "strategy": name,
        "registry_name": registry_name,
        "hparams": hparams,
        "path": SCALABLE_PATHS.get(name, "exact"),
        "workload": workload,
        "storage": storage,
        "n": n,
        "budget": budget,
        "compile_s": compile_s,
        "median_s": statistics.median(times),
        "times_s": times,
        "runs": len(times),
        "peak_bytes": peak_resident_bytes(),
        "valid_batch": valid,
    }


def in_child(argv: list[str], timeout: float) -> tuple[dict | None, str]:
    """Run this script with ``argv`` in a fresh process; its last stdout line as JSON."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"over the {timeout:.0f} s limit"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"exit {done.returncode}: {last[:300]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


# --- the table ----------------------------------------------------------------------------


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| strategy | pool | path | N | budget | compile s | median s | runs | peak GB "
        "| floor s | time / floor | bar s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(
                f"| {row['strategy']} | {_pool(row)} | {_path(row)} | {row['n']:,} "
                f"| {row['budget']} | failed: {row['error']} "
                f"| | | | | | {fmt(row.get('bar_s'))} |"
            )
            continue
        ratio = row["median_s"] / row["floor_s"] if row.get("floor_s") else None
        lines.append(
            f"| {row['strategy']} | {_pool(row)} | {_path(row)} | {row['n']:,} "
            f"| {row['budget']} | {fmt(row['compile_s'])} "
            f"| {fmt(row['median_s'])} | {row['runs']} | {row['peak_bytes'] / 1e9:.2f} "
            f"| {fmt(row.get('floor_s'))} | {fmt(ratio)} | {fmt(row.get('bar_s'))} |"
        )
    return "\n".join(lines)


def _pool(row: dict) -> str:
    """The workload and, for the linear probe, the embeddings' storage dtype."""
    workload = row.get("workload", "mlp")
    return workload if workload == "mlp" else f"{workload} {row.get('storage', 'float32')}"


def _path(row: dict) -> str:
    path = row.get("path", "exact")
    if path == "exact":
        return "exact"
    return "partition" if "parts" in path else ("validation" if "validation" in path else "sample")


# The targets at N = 1,000,000 and budget 1,000 on a 2-core CPU, seconds.
BARS: dict[str, float] = {
    **dict.fromkeys(["least_confidence", "margin", "entropy"], 1.0),
    **dict.fromkeys(["least_confidence_mc", "margin_mc", "entropy_mc", "bald"], 5.0),
    **dict.fromkeys(
        ["coreset", "badge", "glister", "glister_validation", "gradmatch", "deepfool", "bim"], 60.0
    ),
    "kmeans": 120.0,
    "fass": 10.0,
    "batchbald": 300.0,
    **dict.fromkeys(
        [
            "submodular",
            "smi_fl1mi",
            "smi_fl2mi",
            "smi_gcmi",
            "smi_logdetmi",
            "smi_com",
            "scg_flcg",
            "scg_gccg",
            "scg_logdetcg",
            "scmi_flcmi",
            "scmi_logdetcmi",
        ],
        300.0,
    ),
}
MEMORY_BAR_BYTES = 4 * 10**9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=N_DEFAULT, help="pool size (default 1e6)")
    parser.add_argument("--budget", type=int, default=BUDGET_DEFAULT, help="default 1000")
    parser.add_argument("--strategies", nargs="+", default=None, metavar="NAME")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (default 3)")
    parser.add_argument(
        "--long", type=float, default=20.0, help="warm-up seconds above which one call is timed"
    )
    parser.add_argument("--timeout", type=float, default=1200.0, help="per strategy, seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="mlp",
        help="mlp: the MLP over 64 features, 1,000 labeled (default); probe: stored [N, 128] "
        "embeddings and a linear head, 10,000 labeled",
    )
    parser.add_argument(
        "--storage",
        choices=sorted(STORAGE_BYTES),
        default="float32",
        help="dtype of the probe workload's stored embeddings (default float32)",
    )
    parser.add_argument("--quick", action="store_true", help="one timed call each")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/million.json"))
    parser.add_argument(
        "--merge-into",
        type=Path,
        default=None,
        metavar="KEPT",
        help="also merge the rows into a kept report: same strategy replaced, others appended",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    names = strategy_table()
    unknown = sorted(set(args.strategies or []) - set(names))
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(names)}")
    if args.n <= 1000 or args.budget < 1 or args.repeats < 1:
        parser.error("need --n > 1000 (the labeled points), --budget >= 1, --repeats >= 1")
    if args.workload == "probe" and args.n <= 10_000:
        parser.error("the probe workload labels 10,000 points: need --n > 10000")
    if args.storage != "float32" and args.workload != "probe":
        parser.error("--storage applies to --workload probe (the MLP reads float32 inputs)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child == "machine":
        print(json.dumps(measure_machine()))
        return
    if args.child is not None:
        budget = BUDGET_OVERRIDES.get(args.child, args.budget)
        row = run_one(
            args.child,
            args.n,
            budget,
            args.seed,
            args.repeats,
            args.long,
            args.workload,
            args.storage,
        )
        print(json.dumps(row))
        return

    machine, error = in_child(["--child", "machine"], args.timeout)
    if machine is None:
        sys.exit(f"measuring the machine failed: {error}")
    print(
        f"{machine['device']} ({machine['backend']}): read "
        f"{machine['read_bytes_per_s'] / 1e9:.1f} GB/s, matmul "
        f"{machine['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s",
        file=sys.stderr,
    )
    table = strategy_table()
    rows = []
    for name in args.strategies or list(table):
        budget = BUDGET_OVERRIDES.get(name, args.budget)
        common = [f"--n={args.n}", f"--budget={args.budget}", f"--seed={args.seed}"]
        common += [f"--workload={args.workload}", f"--storage={args.storage}"]
        timing = [f"--repeats={args.repeats}", f"--long={args.long}"]
        row, error = in_child(["--child", name, *common, *timing], args.timeout)
        if row is None:
            row = {
                "strategy": name,
                "n": args.n,
                "budget": budget,
                "path": SCALABLE_PATHS.get(name, "exact"),
                "workload": args.workload,
                "storage": args.storage,
                "error": error,
            }
        phases = work(name, args.n, budget, table[name][1], args.workload, args.storage)
        row["work"] = [{"phase": p, "bytes": b, "flops": fl} for p, b, fl in phases]
        row["floor_s"] = floor_seconds(phases, machine) if phases else None
        row["machine"] = machine
        row["bar_s"] = (
            BARS.get(name) if (args.n, args.budget) == (N_DEFAULT, BUDGET_DEFAULT) else None
        )
        rows.append(row)
        message = row.get("error") or (
            f"{fmt(row['median_s'])} s, {row['peak_bytes'] / 1e9:.2f} GB, compile "
            f"{fmt(row['compile_s'])} s"
        )
        print(f"  {name:>20}: {message}", file=sys.stderr, flush=True)
        write(args, machine, rows)
    print(markdown_table(rows))
    if args.merge_into is not None:
        merge_into(args.merge_into, json.loads(args.out.read_text()))
        print(f"merged {len(rows)} rows into {args.merge_into}", file=sys.stderr)
    wrong = [row["strategy"] for row in rows if "error" in row or not row["valid_batch"]]
    if wrong:
        sys.exit(
            f"failed or returned an invalid batch (not budget distinct unlabeled points): {wrong}"
        )


def merge_into(kept_path: Path, report: dict[str, Any]) -> None:
    """Replace (or append) ``report``'s rows, by strategy, workload and storage, in the
    kept report at ``kept_path``; each merged row keeps the command, date and commit of
    its run."""
    kept = json.loads(kept_path.read_text())
    stamp = {key: report[key] for key in ("command", "date", "jaxal_commit")}
    fresh = {_row_key(row): {**row, "run": stamp} for row in report["results"]}
    rows = [fresh.pop(_row_key(row), row) for row in kept["results"]]
    kept["results"] = rows + list(fresh.values())
    kept["table_markdown"] = markdown_table(kept["results"])
    kept.setdefault("runs", []).append({**stamp, "machine": report["machine"]})
    kept_path.write_text(json.dumps(kept, indent=1, default=str) + "\n")


def _row_key(row: dict) -> tuple[str, str, str]:
    return row["strategy"], row.get("workload", "mlp"), row.get("storage", "float32")


def _without_out(argv: list[str]) -> list[str]:
    """The arguments without ``--out PATH`` (where a run writes does not change a number)."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--out="):
            skip = False
            continue
        skip = arg == "--out"
        if not skip:
            kept.append(arg)
    return kept


def write(args: argparse.Namespace, machine: dict, rows: list[dict]) -> None:
    report = {
        "command": " ".join(["python benchmarks/million.py", *_without_out(sys.argv[1:])]),
        "machine": {**machine, "cpu_count": os.cpu_count()},
        "jaxal_commit": jaxal_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {k: v for k, v in vars(args).items() if k not in {"out", "child"}},
        "memory_bar_bytes": MEMORY_BAR_BYTES,
        "results": rows,
        "table_markdown": markdown_table(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()

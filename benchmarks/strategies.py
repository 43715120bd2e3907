"""Selection time of every jaxal strategy on a fixed, seeded MLP workload.

The workload: a synthetic 10-class pool of N points with 64 features (1,000 of them
labeled) and an MLP 64 -> 128 -> 10 with dropout (rate 0.5) on the 128 hidden units,
written as plain ``jax.numpy`` functions over a params dict. ``apply`` returns the logits
and, as the embedding, the hidden activations after the ReLU and *before* dropout;
``head`` is the last Dense layer, so MC-dropout strategies take jaxal's cheap head path
(one deterministic pass, then S head passes with dropped embedding units).

For each (strategy, N, budget) the script measures

* compile s: ``jax.jit(strategy.select).lower(params, pool, key).compile()``;
* median s / min s: the compiled function, ``--warmup`` calls discarded, then
  ``--repeats`` calls (a fresh key each, same shapes), each ``jax.block_until_ready``;
* eager s: ``strategy.select(params, pool, key)`` called outside ``jit`` as a user would,
  the first call (which compiles and caches the program on the strategy) discarded, then
  ``--repeats`` calls with fresh keys (median); ``eager / jit`` is its ratio to median s;
* forward s: the jitted deterministic forward pass over the pool
  (``jaxal.model.forward``), the floor of every model-based strategy;
* MC pass s (MC strategies only): the jitted ``jaxal.model.mc_map`` with S = 10 and
  ``reduce=lambda p: p.mean(0)``, the floor of the ``*_mc`` strategies and BALD;

so the selection overhead on top of the network is visible. It prints a markdown table
and writes every number to JSON (``--out``); ``--merge-into`` also replaces the same rows
of a kept report (each marked with the date and jaxal commit of the rerun).

Usage::

    python benchmarks/strategies.py --quick
    python benchmarks/strategies.py --sizes 50000 --budgets 100 --strategies entropy
    python benchmarks/strategies.py            # the full matrix: minutes (k-means dominates)
    python benchmarks/strategies.py --sizes 50000 --budgets 100 --strategies submodular \
        --merge-into benchmarks/strategies_2026-11-25.json

Measure on a quiet machine: other processes on the same cores distort the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxal
from jaxal.model import forward, mc_map

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import fmt, jaxal_commit  # noqa: E402

FEATURES = 64
HIDDEN = 128
CLASSES = 10
DROPOUT = 0.5
LABELED = 1000
MC_SAMPLES = 10
QUERY_SIZE = 100  # points in the query and in the private set of smi / scg / scmi
ATTACK_BATCH_SIZE = 512

# Benchmark name -> (registry name, hyperparameters; a batch_size here overrides --batch-size).
STRATEGIES: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "least_confidence": ("least_confidence", {}),
    "margin": ("margin", {}),
    "entropy": ("entropy", {}),
    "least_confidence_mc": ("least_confidence", {"mc_samples": MC_SAMPLES}),
    "margin_mc": ("margin", {"mc_samples": MC_SAMPLES}),
    "entropy_mc": ("entropy", {"mc_samples": MC_SAMPLES}),
    "bald": ("bald", {"mc_samples": MC_SAMPLES}),
    "coreset": ("coreset", {}),
    "badge": ("badge", {}),
    "kmeans": ("kmeans", {}),
    # DISTIL's BatchBALDDropout defaults: n_drop 40, n_samples 1000.
    "batchbald": ("batchbald", {"mc_samples": 40, "max_configurations": 1000}),
    "fass": ("fass", {}),
    "submodular": ("submodular", {"optimizer": "stochastic"}),
    # The same over a 20,000-point sample of the points to represent (every point a candidate).
    "submodular_sampled": ("submodular", {"optimizer": "stochastic", "represented": 20000}),
    "glister": ("glister", {}),
    "gradmatch": ("gradmatch", {}),
    # SIMILAR measures with a query / private set of QUERY_SIZE points (DISTIL: LazyGreedy).
    "smi_fl1mi": ("smi", {"function": "fl1mi"}),
    "smi_fl2mi": ("smi", {"function": "fl2mi"}),
    "smi_gcmi": ("smi", {"function": "gcmi"}),
    "smi_logdetmi": ("smi", {"function": "logdetmi"}),
    "smi_com": ("smi", {"function": "com"}),
    "scg_flcg": ("scg", {"function": "flcg"}),
    "scg_gccg": ("scg", {"function": "gccg"}),
    "scg_logdetcg": ("scg", {"function": "logdetcg"}),
    "scmi_flcmi": ("scmi", {"function": "flcmi"}),
    "scmi_logdetcmi": ("scmi", {"function": "logdetcmi"}),
    # Cold start and coverage (Bae et al.'s herding, Gupte et al.'s DropQuery), defaults.
    "maxherding": ("maxherding", {}),
    "uherding": ("uherding", {}),
    "dropquery": ("dropquery", {}),
    # EPIG: S = 20 consistent MC-dropout samples, M = 1,000 targets drawn from the pool.
    "epig": ("epig", {"mc_samples": 20, "target_samples": 1000}),
    # ALFA-Mix, its defaults (closed form, the cap rising by 0.2; the MLP's head mixes).
    "alfamix": ("alfamix", {}),
    # The attacks' own default chunk (a vmapped loop waits for its slowest point).
    "deepfool": ("deepfool", {"batch_size": ATTACK_BATCH_SIZE}),
    "bim": ("bim", {"batch_size": ATTACK_BATCH_SIZE}),
    # Wrappers around another strategy: softmax-weighted sampling by entropy; CoreSet per part.
    "stochastic": ("stochastic", {"strategy": "entropy", "mode": "softmax"}),
    "partition": ("partition", {"strategy": "coreset", "parts": 4}),
    # Cold start on L2-normalised embeddings, as the papers' code: TypiClust with one
    # k-means run into min(|L| + budget, 500) clusters (the official code runs one);
    # ProbCover with delta chosen by purity (k-means into the model's 10 classes).
    "typiclust": ("typiclust", {"normalize": True, "n_init": 1}),
    "probcover": ("probcover", {"normalize": True}),
    # Fisher information of the last layer (D = 128, C = 10: E = 1,280), and the
    # smallest margins spread over average-linkage clusters: defaults.
    "bait": ("bait", {}),
    "cluster_margin": ("cluster_margin", {}),
}

# The largest budget each of these runs at: BAIT's cost grows as budget * N * C^2 D
# (2 * budget greedy steps over the pool), so the full matrix keeps it to budget 100.
MAX_BUDGET: dict[str, int] = {"bait": 100}

# DISTIL's select(budget=100) times in seconds, by benchmark name and N, with how they
# were measured (DISTIL commit d46f0b4, CPU PyTorch, a 2-core machine, batch_size 1000,
# each strategy's defaults): benchmarks/distil_timings.json. The "*_mc" rows are DISTIL's
# *Dropout variants with n_drop=10. KMeansSampling there runs scikit-learn-like defaults
# (n_init 10, max_iter 300); jaxal's kmeans defaults to n_init 1, max_iter 100.
DISTIL_TIMINGS = Path(__file__).resolve().parent / "distil_timings.json"
DISTIL_SOURCE = "benchmarks/distil_timings.json"


def load_distil_timings(path: Path = DISTIL_TIMINGS) -> dict[str, dict[int, float]]:
    """DISTIL's budget-100 times from ``path``: benchmark name -> {N: seconds}."""
    table = json.loads(path.read_text())["select_seconds"]
    return {name: {int(n): float(s) for n, s in sizes.items()} for name, sizes in table.items()}


DISTIL_BUDGET_100: dict[str, dict[int, float]] = load_distil_timings()


# --- the workload -------------------------------------------------------------------------


def mlp_apply(
    params: dict[str, jax.Array], x: jax.Array, rng: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    """(logits [B, 10], embedding [B, 128]); the embedding is ReLU output before dropout."""
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    dropped = hidden
    if rng is not None:
        keep = jax.random.bernoulli(rng, 1.0 - DROPOUT, hidden.shape)
        dropped = jnp.where(keep, hidden / (1.0 - DROPOUT), 0.0)
    return mlp_head(params, dropped), hidden


def mlp_head(params: dict[str, jax.Array], embedding: jax.Array) -> jax.Array:
    """The last Dense layer: logits [B, 10] from the hidden units [B, 128]."""
    return embedding @ params["w2"] + params["b2"]


MODEL = jaxal.Model(apply=mlp_apply, head=mlp_head, head_dropout=DROPOUT)


def make_pool(
    n: int, seed: int, draw_seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic 10-class pool: Gaussian blobs in 64 dimensions, overlapping.

    ``seed`` fixes the class means; ``draw_seed`` (default ``seed``) the points, so other
    draw seeds give fresh points of the same distribution (query and private sets).

    Returns (x float32 [n, 64], y int32 [n], labeled int [min(1000, n - 1)] indices).
    """
    means = np.random.default_rng(seed).normal(0.0, 1.0, (CLASSES, FEATURES))
    rng = np.random.default_rng([seed, seed if draw_seed is None else draw_seed])
    y = rng.integers(0, CLASSES, n).astype(np.int32)
    x = (means[y] + rng.normal(0.0, 2.0, (n, FEATURES))).astype(np.float32)
    labeled = rng.choice(n, size=min(LABELED, n - 1), replace=False)
    return x, y, labeled


def make_params(
    x: np.ndarray, y: np.ndarray, labeled: np.ndarray, seed: int
) -> dict[str, jax.Array]:
    """Seeded MLP weights with informative, non-degenerate logits.

    The hidden layer is a He-initialised random layer; the head is ridge regression of
    one-hot labels on the labeled points' hidden units (closed form, no training loop),
    rescaled so the logits spread over a few units: predictions range from confident to
    uncertain, so every score has something to rank.
    """
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, np.sqrt(2.0 / FEATURES), (FEATURES, HIDDEN)).astype(np.float32)
    b1 = np.zeros(HIDDEN, np.float32)
    hidden = np.maximum(x[labeled] @ w1 + b1, 0.0).astype(np.float64)
    design = np.concatenate([hidden, np.ones((hidden.shape[0], 1))], axis=1)
    targets = np.eye(CLASSES)[y[labeled]] - 1.0 / CLASSES
    gram = design.T @ design + 1.0 * np.eye(design.shape[1])
    solution = np.linalg.solve(gram, design.T @ targets)
    logits = design @ solution
    scale = 3.0 / max(float(logits.std()), 1e-6)  # logits with std ~3 on the labeled set
    solution *= scale
    return {
        "w1": jnp.asarray(w1),
        "b1": jnp.asarray(b1),
        "w2": jnp.asarray(solution[:-1].astype(np.float32)),
        "b2": jnp.asarray(solution[-1].astype(np.float32)),
    }


def extra_inputs(strategy: jaxal.strategies.Strategy, seed: int) -> dict[str, jax.Array]:
    """The query / private sets a strategy takes (``strategy.inputs``), QUERY_SIZE labeled
    points each from the pool's distribution; validation sets are left to their default."""
    inputs = {}
    for draw_seed, prefix in enumerate(("query", "private"), start=seed + 1):
        x, y, _ = make_pool(QUERY_SIZE, seed, draw_seed)
        if f"{prefix}_x" in strategy.inputs:
            inputs[f"{prefix}_x"] = jnp.asarray(x[:QUERY_SIZE])
            inputs[f"{prefix}_y"] = jnp.asarray(y[:QUERY_SIZE])
    return inputs


def prediction_stats(params: dict[str, jax.Array], x: np.ndarray, y: np.ndarray) -> dict:
    """Sanity numbers of the seeded model on the pool (not timed)."""
    logits, _ = jax.jit(lambda p, v: mlp_apply(p, v, None))(params, jnp.asarray(x))
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    return {
        "accuracy": float(np.mean(probs.argmax(-1) == y)),
        "mean_max_prob": float(probs.max(-1).mean()),
        "min_max_prob": float(probs.max(-1).min()),
        "logit_std": float(np.asarray(logits).std()),
    }


# --- timing -------------------------------------------------------------------------------


def time_calls(fn: Callable[[int], Any], warmup: int, repeats: int) -> list[float]:
    """Call ``fn(i)`` ``warmup`` times untimed, then ``repeats`` times; wall seconds each."""
    for i in range(warmup):
        jax.block_until_ready(fn(i))
    times = []
    for i in range(warmup, warmup + repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(i))
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def time_compiled(fn: Callable, args: tuple, vary_key: bool, warmup: int, repeats: int) -> dict:
    """Compile ``jax.jit(fn)`` for ``args`` (timed), then time the compiled calls.

    With ``vary_key`` the last argument is a PRNG key, replaced by a fresh one per call.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    if vary_key:
        keys = jax.random.split(args[-1], warmup + repeats)
        times = time_calls(lambda i: compiled(*args[:-1], keys[i]), warmup, repeats)
    else:
        times = time_calls(lambda i: compiled(*args), warmup, repeats)
    return {"compile_s": compile_s, **summary(times)}


def time_eager(strategy, params, pool: jaxal.Pool, inputs: dict, key, repeats: int) -> dict:
    """``strategy.select`` called outside ``jit``: the first call (it compiles) untimed,
    then ``repeats`` calls, a fresh key each."""
    keys = jax.random.split(jax.random.fold_in(key, 1), 1 + repeats)
    times = time_calls(
        lambda i: strategy.select(params, pool, keys[i], **inputs), warmup=1, repeats=repeats
    )
    return summary(times)


def time_passes(params, pool: jaxal.Pool, key, batch_size: int, warmup: int, repeats: int):
    """The deterministic forward pass and the MC-dropout pass (S = 10) over the pool."""

    def deterministic(p, x):
        return forward(MODEL, p, x, batch_size)

    def mc(p, x, k):
        return mc_map(MODEL, p, x, k, MC_SAMPLES, batch_size, lambda probs: probs.mean(0))

    return (
        time_compiled(deterministic, (params, pool.x), False, warmup, repeats),
        time_compiled(mc, (params, pool.x, key), True, warmup, repeats),
    )


def is_mc(name: str) -> bool:
    return STRATEGIES[name][1].get("mc_samples") is not None


def uses_model(name: str) -> bool:
    return name != "random"


# --- output -------------------------------------------------------------------------------


def markdown_table(rows: list[dict]) -> str:
    header = (
        "| strategy | N | budget | compile s | median s | min s | eager s | eager / jit "
        "| forward s | MC pass s | DISTIL s |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [header]
    for row in rows:
        cells = [
            row["strategy"],
            f"{row['n']:,}",
            str(row["budget"]),
            fmt(row["compile_s"]),
            fmt(row["median_s"]),
            fmt(row["min_s"]),
            fmt(row.get("eager_median_s")),
            fmt(row.get("eager_over_jit")),
            fmt(row["forward_median_s"]),
            fmt(row["mc_pass_median_s"]),
            fmt(row["distil_s"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    device = jax.devices()[0]
    return {
        "jax": jax.__version__,
        "jaxlib": _jaxlib_version(),
        "jaxal": jaxal.__version__,
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "jaxal_commit": jaxal_commit(),
    }


def _jaxlib_version() -> str | None:
    try:
        import jaxlib

        return jaxlib.__version__
    except (ImportError, AttributeError):
        return None


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[2000, 10000, 50000], help="pool sizes N"
    )
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 1000], help="budgets")
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(STRATEGIES),
        choices=list(STRATEGIES),
        metavar="NAME",
        help="strategies to run (default: all): " + ", ".join(STRATEGIES),
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8192,
        help="points per forward chunk (default 8192; the whole pool in one chunk is "
        "usually fastest on CPU)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/strategies.json"),
        help="JSON output (default benchmarks/results/strategies.json)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: N=2000, budget 100, 2 repeats"
    )
    parser.add_argument(
        "--merge-into",
        type=Path,
        default=None,
        metavar="KEPT",
        help="also merge these rows into a kept report (e.g. benchmarks/strategies_*.json):\n"
        "rows with the same strategy, N and budget are replaced and marked with the date\n"
        "and jaxal commit of this run; others are appended",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.budgets, args.repeats = [2000], [100], 2
    if args.repeats < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("need --repeats >= 1, --warmup >= 0, --batch-size >= 1")
    if min(args.sizes) <= LABELED:
        parser.error(f"every size must exceed the {LABELED} labeled points")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = environment()
    print(
        f"jax {env['jax']} on {env['device_kind']} ({env['backend']}), "
        f"{env['cpu_count']} CPUs, batch_size {args.batch_size}, "
        f"warmup {args.warmup}, repeats {args.repeats}",
        file=sys.stderr,
    )
    base_key = jax.random.key(args.seed)
    rows: list[dict] = []
    workloads: dict[int, dict] = {}

    for n in args.sizes:
        x, y, labeled = make_pool(n, args.seed)
        pool = jaxal.Pool.create(x, labeled=labeled)
        params = make_params(x, y, labeled, args.seed)
        key = jax.random.fold_in(base_key, n)
        stats = prediction_stats(params, x, y)
        deterministic, mc = time_passes(
            params, pool, key, args.batch_size, args.warmup, args.repeats
        )
        workloads[n] = {
            "n": n,
            "labeled": int(labeled.size),
            "model_stats": stats,
            "forward": deterministic,
            "mc_pass": mc,
        }
        print(
            f"N={n}: forward {fmt(deterministic['median_s'])} s, MC pass "
            f"{fmt(mc['median_s'])} s; accuracy {stats['accuracy']:.2f}, "
            f"mean max prob {stats['mean_max_prob']:.2f}",
            file=sys.stderr,
        )
        for budget in args.budgets:
            for name in args.strategies:
                registry_name, hparams = STRATEGIES[name]
                if registry_name not in jaxal.strategies.REGISTRY:
                    print(f"  {name:>20}: not in this jaxal's registry, skipped", file=sys.stderr)
                    continue
                if budget > MAX_BUDGET.get(name, budget):
                    limit = MAX_BUDGET[name]
                    print(f"  {name:>20}: budget {budget} > {limit}, skipped", file=sys.stderr)
                    continue
                strategy = jaxal.strategies.get(registry_name)(
                    MODEL, budget, **{"batch_size": args.batch_size, **hparams}
                )
                inputs = extra_inputs(strategy, args.seed)

                def select(params, pool, inputs, key, strategy=strategy):
                    return strategy.select(params, pool, key, **inputs)

                result = time_compiled(
                    select, (params, pool, inputs, key), True, args.warmup, args.repeats
                )
                eager = time_eager(strategy, params, pool, inputs, key, args.repeats)
                distil = DISTIL_BUDGET_100.get(name, {}).get(n) if budget == 100 else None
                row = {
                    "strategy": name,
                    "registry_name": registry_name,
                    "hparams": {"batch_size": args.batch_size, **hparams},
                    "n": n,
                    "budget": budget,
                    **result,
                    "eager_median_s": eager["median_s"],
                    "eager_min_s": eager["min_s"],
                    "eager_times_s": eager["times_s"],
                    "eager_over_jit": eager["median_s"] / result["median_s"],
                    "forward_median_s": deterministic["median_s"] if uses_model(name) else None,
                    "forward_min_s": deterministic["min_s"] if uses_model(name) else None,
                    "mc_pass_median_s": mc["median_s"] if is_mc(name) else None,
                    "mc_pass_min_s": mc["min_s"] if is_mc(name) else None,
                    "distil_s": distil,
                    "speedup_vs_distil": distil / result["median_s"] if distil else None,
                }
                rows.append(row)
                print(
                    f"  {name:>20} N={n} budget={budget}: compile {fmt(result['compile_s'])} s"
                    f", median {fmt(result['median_s'])} s, eager {fmt(eager['median_s'])} s",
                    file=sys.stderr,
                )

    table = markdown_table(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "environment": env,
        "settings": {
            "sizes": args.sizes,
            "budgets": args.budgets,
            "strategies": args.strategies,
            "batch_size": args.batch_size,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "seed": args.seed,
            "quick": args.quick,
            "mc_samples": MC_SAMPLES,
            "model": f"MLP {FEATURES} -> {HIDDEN} -> {CLASSES}, dropout {DROPOUT} on the "
            "hidden units; embedding = ReLU output before dropout; head = last Dense",
            "distil_source": DISTIL_SOURCE,
        },
        "workloads": list(workloads.values()),
        "results": rows,
        "table_markdown": table,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    if args.merge_into is not None:
        merge_into(args.merge_into, report)
        print(f"merged {len(rows)} rows into {args.merge_into}", file=sys.stderr)


def merge_into(kept_path: Path, report: dict[str, Any]) -> None:
    """Replace (or append) ``report``'s rows in the kept report at ``kept_path``.

    Each merged row carries ``rerun`` = {date, jaxal_commit} of the run (its environment);
    the run's settings and environment are appended to the kept report's ``reruns`` list.
    """
    kept = json.loads(kept_path.read_text())
    env = report["environment"]
    stamp = {"date": env["date"], "jaxal_commit": env.get("jaxal_commit")}
    fresh = {(r["strategy"], r["n"], r["budget"]): {**r, "rerun": stamp} for r in report["results"]}
    rows_key = "results" if "results" in kept else "rows"  # this script's reports / older ones
    merged = [fresh.pop((r["strategy"], r["n"], r["budget"]), r) for r in kept[rows_key]]
    kept[rows_key] = merged + list(fresh.values())
    if "table_markdown" in kept:
        kept["table_markdown"] = markdown_table(kept[rows_key])
    kept.setdefault("reruns", []).append(
        {
            "jaxal_commit": stamp["jaxal_commit"],
            "settings": report["settings"],
            "environment": report["environment"],
        }
    )
    kept_path.write_text(json.dumps(kept, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Labeling efficiency, jaxal against DISTIL: the same active-learning experiment in both.

scikit-learn's digits (8x8 = 64 features, 10 classes; one fixed stratified 75/25 split,
standardized), an MLP 64 -> 128 (ReLU) -> dropout -> 10, and for every strategy and seed:
train on the seed's initial labeled set (round 0), then ``--rounds`` rounds of selecting
``--budget`` points, revealing their labels, retraining from fresh weights and measuring
test accuracy. Both libraries get the same initial labeled set, the same fresh weights
every round and train on exactly the same minibatches and dropout masks (``--steps``
Adam steps of ``--train-batch-size`` points drawn with replacement from the labeled set,
learning rate ``--learning-rate``), all drawn here by NumPy. With the same labeled set
their models are therefore the same up to float rounding (round 0 checks it), and
differences in the learning curves come from what each library selects.

DISTIL runs first, in its own virtual environment (``_distil_efficiency_worker.py``:
its strategy classes, a plain PyTorch training loop); then jaxal in this process
(``jax.jit(strategy.select)`` and a jitted ``optax.adam`` loop over the same minibatches;
jaxal's own ``jaxal.train.trainer`` draws its minibatches itself, so it cannot replay
these). The two never run at the same time.

Reports test accuracy per round and the area under the learning curve (the trapezoid of
accuracy over labeled points, divided by the labeled range: a mean accuracy) per strategy,
mean ± std over seeds, each library's whole-experiment wall time (training, selection and
evaluation; jaxal's compile time given apart), and how many round-1
picks agree (both libraries select from the same round-0 model there). Writes ``--out``
(JSON) and ``--figure`` (both libraries' curves per strategy).

Usage::

    python benchmarks/efficiency.py --distil-src ../distil-src                 # 5 seeds
    python benchmarks/efficiency.py --seeds 1 --rounds 3 --strategies entropy badge
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import _workload  # noqa: E402
from compare_distil import distil_python, run_job, tail  # noqa: E402

STRATEGIES = ["random", "entropy", "margin", "least_confidence", "bald", "coreset", "badge", "fass"]
# jaxal registry name and hyperparameters; DISTIL: each strategy's defaults, BALD n_drop 10.
JAXAL = {
    "random": ("random", {}),
    "entropy": ("entropy", {}),
    "margin": ("margin", {}),
    "least_confidence": ("least_confidence", {}),
    "bald": ("bald", {"mc_samples": 10}),
    "coreset": ("coreset", {}),
    "badge": ("badge", {}),
    "fass": ("fass", {}),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--distil-src", type=Path, default=REPO.parent / "distil-src")
    parser.add_argument("--distil-venv", type=Path, default=REPO.parent / "distil-venv")
    parser.add_argument("--torch-spec", default="torch==2.13.0")
    parser.add_argument("--pip-args", default="")
    parser.add_argument(
        "--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES, metavar="NAME"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. SEEDS-1")
    parser.add_argument("--rounds", type=int, default=10, help="selection rounds after round 0")
    parser.add_argument("--budget", type=int, default=20, help="labels per round")
    parser.add_argument("--initial", type=int, default=20, help="initial labeled points")
    parser.add_argument("--steps", type=int, default=200, help="Adam steps per training")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--train-batch-size", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--mc-samples", type=int, default=10, help="BALD's MC samples")
    parser.add_argument("--timeout", type=float, default=3600.0, help="DISTIL's whole run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "efficiency.json")
    parser.add_argument("--figure", type=Path, default=HERE / "results" / "efficiency.png")
    parser.add_argument("--work-dir", type=Path, default=HERE / "results" / "efficiency")
    parser.add_argument(
        "--skip-distil", action="store_true", help="run jaxal only (no DISTIL columns)"
    )
    args = parser.parse_args(argv)
    if min(args.seeds, args.rounds, args.budget, args.initial, args.steps) < 1:
        parser.error("--seeds, --rounds, --budget, --initial and --steps must be >= 1")
    return args


# --- the shared experiment ---------------------------------------------------------------


def experiment_arrays(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The digits split, every seed's initial set, fresh weights and training schedule."""
    data = _workload.digits_split()
    n = len(data["y_train"])
    seeds, rounds = args.seeds, args.rounds
    initial = np.stack([_workload.initial_labeled(n, args.initial, s) for s in range(seeds)])
    weights = {k: [] for k in ("w1", "b1", "w2", "b2")}
    positions, keep = [], []
    for seed in range(seeds):
        per_round = [_workload.init_weights(seed, r) for r in range(rounds + 1)]
        for k in weights:
            weights[k].append(np.stack([w[k] for w in per_round]))
        pos_s, keep_s = [], []
        for r in range(rounds + 1):
            count = args.initial + r * args.budget
            schedule = _workload.training_schedule(
                np.arange(count), seed, r, args.steps, args.train_batch_size, args.dropout
            )
            pos_s.append(schedule["batches"].astype(np.int32))
            keep_s.append(np.packbits(schedule["keep"], axis=-1))
        positions.append(np.stack(pos_s))
        keep.append(np.stack(keep_s))
    settings = {
        "strategies": args.strategies,
        "seeds": seeds,
        "rounds": rounds,
        "budget": args.budget,
        "initial": args.initial,
        "steps": args.steps,
        "learning_rate": args.learning_rate,
        "train_batch_size": args.train_batch_size,
        "dropout": args.dropout,
        "mc_samples": args.mc_samples,
    }
    return {
        **data,
        "initial": initial,
        **{f"init_{k}": np.stack(v) for k, v in weights.items()},
        "positions": np.stack(positions),  # [seeds, rounds + 1, steps, batch] into the order
        "keep": np.stack(keep),  # packed bits of [seeds, rounds + 1, steps, batch, HIDDEN]
        "settings": np.array(json.dumps(settings)),
    }


# --- jaxal's side -----------------------------------------------------------------------------


def run_jaxal(data: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import optax

    import jaxal

    dropout = args.dropout
    x_train = jnp.asarray(data["x_train"])
    y_train_np = data["y_train"]
    y_train = jnp.asarray(y_train_np, jnp.int32)
    x_test, y_test = jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"])
    n = len(y_train_np)

    def apply(params, x, rng):
        hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
        dropped = hidden
        if rng is not None:
            keep = jax.random.bernoulli(rng, 1.0 - dropout, hidden.shape)
            dropped = jnp.where(keep, hidden / (1.0 - dropout), 0.0)
        return head(params, dropped), hidden

    def head(params, embedding):
        return embedding @ params["w2"] + params["b2"]

    model = jaxal.Model(apply=apply, head=head, head_dropout=dropout)
    tx = optax.adam(args.learning_rate)

    def train(params, batches, keep):
        """Adam over the given minibatches (global indices [steps, B]) and keep masks."""

        def loss_fn(p, xb, yb, kb):
            hidden = jax.nn.relu(xb @ p["w1"] + p["b1"])
            logits = head(p, hidden * kb / (1.0 - dropout))
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        def step(carry, batch):
            p, state = carry
            idx, kb = batch
            grads = jax.grad(loss_fn)(p, x_train[idx], y_train[idx], kb)
            updates, state = tx.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), (batches, keep))
        return params

    def accuracy(params):
        logits, _ = apply(params, x_test, None)
        return jnp.mean(jnp.argmax(logits, -1) == y_test)

    compile_start = time.perf_counter()
    steps, batch = data["positions"].shape[2:]
    example = {k: jnp.asarray(data[f"init_{k}"][0, 0]) for k in ("w1", "b1", "w2", "b2")}
    train_c = (
        jax.jit(train)
        .lower(
            example,
            jnp.zeros((steps, batch), jnp.int32),
            jnp.zeros((steps, batch, _workload.HIDDEN), jnp.float32),
        )
        .compile()
    )
    accuracy_c = jax.jit(accuracy).lower(example).compile()
    compile_s = {"train": time.perf_counter() - compile_start}

    strategies = args.strategies
    seeds, rounds, budget = args.seeds, args.rounds, args.budget
    acc = np.full((len(strategies), seeds, rounds + 1), np.nan)
    picks = np.full((len(strategies), seeds, rounds, budget), -1, np.int64)
    wall = np.zeros((len(strategies), seeds))
    train_s = np.zeros((len(strategies), seeds))
    select_s = np.zeros((len(strategies), seeds))

    def fit(seed, r, order):
        params = {k: jnp.asarray(data[f"init_{k}"][seed, r]) for k in ("w1", "b1", "w2", "b2")}
        order_np = np.asarray(order)
        batches = jnp.asarray(order_np[data["positions"][seed, r]], jnp.int32)
        keep = np.unpackbits(data["keep"][seed, r], axis=-1)[..., : _workload.HIDDEN]
        return jax.block_until_ready(train_c(params, batches, jnp.asarray(keep, jnp.float32)))

    for s, name in enumerate(strategies):
        registry_name, hparams = JAXAL[name]
        strategy = jaxal.strategies.get(registry_name)(model, budget, **hparams)
        start = time.perf_counter()
        pool0 = jaxal.Pool.create(x_train, y=np.full(n, -1), labeled=data["initial"][0])
        select_c = jax.jit(strategy.select).lower(example, pool0, jax.random.key(0)).compile()
        compile_s[name] = time.perf_counter() - start
        for seed in range(seeds):
            start = time.perf_counter()
            order = [int(i) for i in data["initial"][seed]]
            t0 = time.perf_counter()
            params = fit(seed, 0, order)
            train_s[s, seed] += time.perf_counter() - t0
            acc[s, seed, 0] = float(accuracy_c(params))
            for r in range(1, rounds + 1):
                y = np.full(n, -1)
                y[order] = y_train_np[order]
                pool = jaxal.Pool.create(x_train, y=y, labeled=np.asarray(order))
                key = jax.random.key(seed * 1000 + r)
                t0 = time.perf_counter()
                chosen = np.asarray(jax.block_until_ready(select_c(params, pool, key)))
                select_s[s, seed] += time.perf_counter() - t0
                picks[s, seed, r - 1] = chosen
                order += [int(i) for i in chosen]
                t0 = time.perf_counter()
                params = fit(seed, r, order)
                train_s[s, seed] += time.perf_counter() - t0
                acc[s, seed, r] = float(accuracy_c(params))
            wall[s, seed] = time.perf_counter() - start
            log(
                f"jaxal {name} seed {seed}: final accuracy {acc[s, seed, -1]:.3f}, "
                f"{wall[s, seed]:.1f} s"
            )
    return {
        "accuracy": acc,
        "picks": picks,
        "wall_s": wall,
        "train_s": train_s,
        "select_s": select_s,
        "compile_s": compile_s,
        "versions": {
            "jax": jax.__version__,
            "jaxal": jaxal.__version__,
            "optax": optax.__version__,
        },
    }


# --- report ----------------------------------------------------------------------------------


def auc(acc: np.ndarray, labeled: np.ndarray) -> np.ndarray:
    """Area under accuracy-vs-labeled (trapezoid) over the labeled range: a mean accuracy."""
    widths = np.diff(labeled)
    areas = ((acc[..., 1:] + acc[..., :-1]) / 2 * widths).sum(-1)
    return areas / (labeled[-1] - labeled[0])


def summarize(args, results: dict[str, dict], labeled: np.ndarray) -> list[dict]:
    rows = []
    for s, name in enumerate(args.strategies):
        row: dict[str, Any] = {"strategy": name}
        for lib, res in results.items():
            acc = res["accuracy"][s]
            areas = auc(acc, labeled)
            row[lib] = {
                "accuracy_mean": np.nanmean(acc, 0).tolist(),
                "accuracy_std": np.nanstd(acc, 0).tolist(),
                "accuracy": acc.tolist(),
                "auc_mean": float(np.mean(areas)),
                "auc_std": float(np.std(areas)),
                "final_mean": float(np.mean(acc[:, -1])),
                "wall_s": float(res["wall_s"][s].sum()),
                "train_s": float(res["train_s"][s].sum()),
                "select_s": float(res["select_s"][s].sum()),
                "picks": res["picks"][s].tolist(),
            }
        if "distil" in results:
            d_acc = results["distil"]["accuracy"][s][:, 0]
            j_acc = results["jaxal"]["accuracy"][s][:, 0]
            row["round0_max_abs_diff"] = float(np.max(np.abs(d_acc - j_acc)))
            d_first = results["distil"]["picks"][s][:, 0]
            j_first = results["jaxal"]["picks"][s][:, 0]
            row["round1_identical"] = float(
                np.mean(
                    [len(set(a) & set(b)) / len(a) for a, b in zip(d_first, j_first, strict=True)]
                )
            )
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], libs: list[str]) -> str:
    head = ["strategy"]
    for lib in libs:
        head += [f"AUC {lib}", f"final acc {lib}"]
    head += [f"wall s {lib}" for lib in libs]
    if "distil" in libs:
        head += ["round-1 picks identical"]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for row in rows:
        cells = [row["strategy"]]
        for lib in libs:
            r = row[lib]
            cells += [f"{r['auc_mean']:.4f} ± {r['auc_std']:.4f}", f"{r['final_mean']:.4f}"]
        cells += [f"{row[lib]['wall_s']:.1f}" for lib in libs]
        if "distil" in libs:
            cells.append(f"{row['round1_identical']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], labeled: np.ndarray, libs: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(rows))
    nrows = -(-len(rows) // cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(3.6 * cols, 2.9 * nrows), squeeze=False, sharex=True, sharey=True
    )
    colors = {"distil": "tab:orange", "jaxal": "tab:blue"}
    for ax, row in zip(axes.flat, rows, strict=False):
        for lib in libs:
            mean = np.asarray(row[lib]["accuracy_mean"])
            std = np.asarray(row[lib]["accuracy_std"])
            label = f"{'DISTIL' if lib == 'distil' else 'jaxal'} (AUC {row[lib]['auc_mean']:.3f})"
            ax.plot(labeled, mean, marker=".", color=colors[lib], label=label)
            ax.fill_between(labeled, mean - std, mean + std, color=colors[lib], alpha=0.2)
        ax.set_title(row["strategy"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.flat[len(rows) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("labeled points")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    data = experiment_arrays(args)
    data_path = work / "experiment.npz"
    _workload.save_npz(data_path, **data)
    labeled = args.initial + args.budget * np.arange(args.rounds + 1)
    results: dict[str, dict] = {}
    info: dict[str, Any] = {}

    if not args.skip_distil:
        python = distil_python(args)
        out = work / "distil.npz"
        out.unlink(missing_ok=True)
        command = [
            str(python),
            str(HERE / "_distil_efficiency_worker.py"),
            "--distil-src",
            str(args.distil_src),
            "--data",
            str(data_path),
            "--out",
            str(out),
        ]
        log(f"DISTIL: {len(args.strategies)} strategies x {args.seeds} seeds ...")
        status, seconds = run_job(command, args.timeout, work / "distil.log")
        if not out.exists():
            raise SystemExit(f"DISTIL's run failed ({status}): {tail(work / 'distil.log', 5)}")
        distil = _workload.load_npz(out)
        info["distil"] = json.loads(str(distil.pop("meta")))
        info["distil"]["status"] = status
        info["distil"]["process_s"] = seconds
        info["distil"]["peak_rss_mb"] = float(distil.pop("peak_rss_mb"))
        results["distil"] = distil
        log(f"DISTIL done in {seconds:.0f} s ({status})")

    log(f"jaxal: {len(args.strategies)} strategies x {args.seeds} seeds ...")
    jaxal_start = time.perf_counter()
    jaxal_res = run_jaxal(data, args)
    info["jaxal"] = {
        "versions": jaxal_res.pop("versions"),
        "compile_s": jaxal_res.pop("compile_s"),
        "process_s": time.perf_counter() - jaxal_start,
    }
    results["jaxal"] = jaxal_res

    libs = list(results)
    rows = summarize(args, results, labeled)
    table = markdown_table(rows, libs)
    print(table)
    totals = {lib: float(results[lib]["wall_s"].sum()) for lib in libs}
    compile_total = float(sum(info["jaxal"]["compile_s"].values()))
    print(
        "\nwhole experiment (training, selection, evaluation), wall s: "
        + ", ".join(f"{lib} {t:.1f}" for lib, t in totals.items())
        + f"; jaxal compile {compile_total:.1f} s on top. Processes: "
        + ", ".join(f"{lib} {info[lib]['process_s']:.1f} s" for lib in libs)
        + " (with imports and compilation)"
    )
    report = {
        "environment": {
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "distil_commit": subprocess.run(
                ["git", "-C", str(args.distil_src), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            or None,
            **info,
        },
        "settings": json.loads(str(data["settings"])),
        "labeled": labeled.tolist(),
        "total_wall_s": totals,
        "jaxal_compile_s": compile_total,
        "rows": rows,
        "table_markdown": table,
        "elapsed_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    title = (
        f"digits, MLP 64-128-10, {args.seeds} seed{'s' if args.seeds > 1 else ''}, "
        f"{args.initial} + {args.rounds} x "
        f"{args.budget} labels; mean ± std"
    )
    plot(rows, labeled, libs, args.figure, title)
    log(f"wrote {args.out} and {args.figure} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

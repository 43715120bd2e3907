"""One DISTIL selection job, run by ``compare_distil.py`` inside DISTIL's virtual environment.

It imports PyTorch and DISTIL (from ``--distil-src``, put first on ``sys.path``), never
jaxal. It reads the workload ``.npz`` written by the driver, loads the weights into a torch
module with DISTIL's model interface, builds one DISTIL strategy with ``batch_size`` 1000
and that strategy's defaults, and calls ``select(budget)`` up to ``--repeats`` times (each
after seeding Python's, NumPy's and torch's global generators with a known seed), timing
each call alone. After every call it rewrites ``--out`` (an ``.npz``, atomically): the
indices and seconds of the calls so far, the peak resident memory, and what the driver
needs to check agreement fairly: the MC-dropout probabilities the dropout strategies drew,
the uniforms BADGE drew, the per-point perturbations of DeepFool and BIM. A call that
raises ends the job with the error recorded; the driver enforces the time limit by killing
the process.

Usage (the driver builds this line)::

    python _distil_worker.py --distil-src PATH --workload W.npz --strategy NAME \
        --budget 100 --repeats 3 --timeout 600 --out OUT.npz
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload  # noqa: E402  (NumPy only)

BATCH_SIZE = 1000  # DISTIL's DataLoader batch size (as in distil_timings.json)
MC_SAMPLES = 10  # n_drop of the dropout variants and BALD
GRADIENTS_MAX_N = 20000  # record SMI / SCG / SCMI's gradient embeddings up to this pool


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distil-src", required=True, type=Path)
    parser.add_argument("--workload", required=True, type=Path)
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--budget", required=True, type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--memory-bytes", type=int, default=0, help="address-space cap (0: none)")
    parser.add_argument(
        "--min-calls",
        type=int,
        default=1,
        help="calls at least (if time allows), for strategies compared across seeds",
    )
    parser.add_argument("--out", required=True, type=Path)
    return parser.parse_args(argv)


# --- the model and the datasets ----------------------------------------------------------


def build_model(torch, weights: dict[str, np.ndarray]):
    """The MLP with DISTIL's interface: forward(x, last=False, freeze=False) and
    get_embedding_dim(); the last layer is named ``linear`` (BatchBALD's ``mod_inject``)."""
    nn = torch.nn

    class DistilMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear1 = nn.Linear(_workload.FEATURES, _workload.HIDDEN)
            self.dropout = nn.Dropout(float(weights["dropout"]))
            self.linear = nn.Linear(_workload.HIDDEN, _workload.CLASSES)

        def forward(self, x, last=False, freeze=False):
            x = x.reshape(x.shape[0], -1)
            if freeze:
                with torch.no_grad():
                    emb = torch.relu(self.linear1(x))
            else:
                emb = torch.relu(self.linear1(x))
            out = self.linear(self.dropout(emb))
            return (out, emb) if last else out

        def get_embedding_dim(self):
            return _workload.HIDDEN

    model = DistilMLP()
    with torch.no_grad():
        model.linear1.weight.copy_(torch.from_numpy(weights["w1"].T.copy()))
        model.linear1.bias.copy_(torch.from_numpy(weights["b1"]))
        model.linear.weight.copy_(torch.from_numpy(weights["w2"].T.copy()))
        model.linear.bias.copy_(torch.from_numpy(weights["b2"]))
    model.eval()
    return model


def datasets(torch, workload: dict[str, np.ndarray], image: bool):
    """(labeled, unlabeled, query, private) torch datasets: labeled ones yield (x, y),
    the unlabeled pool yields x alone. ``image``: inputs as [1, 8, 8] (DISTIL's DeepFool
    indexes ``image[None, :, :, :]`` and takes only 3-D inputs; the model flattens)."""
    from torch.utils.data import Dataset

    def tensor(x):
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        return t.reshape(-1, 1, 8, 8) if image else t

    class Unlabeled(Dataset):
        def __init__(self, x):
            self.x = tensor(x)

        def __getitem__(self, i):
            return self.x[i]

        def __len__(self):
            return len(self.x)

    class Labeled(Dataset):
        def __init__(self, x, y):
            self.x = tensor(x)
            self.y = torch.from_numpy(np.asarray(y, np.int64))

        def __getitem__(self, i):
            return self.x[i], self.y[i]

        def __len__(self):
            return len(self.x)

    w = workload
    return (
        Labeled(w["x_labeled"], w["y_labeled"]),
        Unlabeled(w["x_pool"]),
        Labeled(w["x_query"], w["y_query"]),
        Labeled(w["x_private"], w["y_private"]),
    )


# --- the strategies -----------------------------------------------------------------------


class Recorder:
    """Wraps a bound method of a strategy instance and keeps what it returns."""

    def __init__(self, strategy, method: str):
        self.values = []
        inner = getattr(strategy, method)

        def wrapped(*args, **kwargs):
            value = inner(*args, **kwargs)
            self.values.append(value)
            return value

        setattr(strategy, method, wrapped)


def build_strategy(name: str, torch, model, data, budget: int):
    """(DISTIL strategy instance, select keyword arguments, what to record) for ``name``.

    Every strategy gets ``batch_size`` 1000, ``device`` cpu and its own defaults; the
    dropout variants and BALD get n_drop 10. BatchBALD, BIM and DeepFool replace ``args``
    by an empty dict in their constructors (DISTIL's behaviour: batch size 1).
    """
    import distil.active_learning_strategies as S

    labeled, unlabeled, query, private = data
    args = {"batch_size": BATCH_SIZE, "device": "cpu"}
    c = _workload.CLASSES
    common = (labeled, unlabeled, model, c)
    mc = {"n_drop": MC_SAMPLES}
    simple = {
        "random": (S.RandomSampling, {}),
        "entropy": (S.EntropySampling, {}),
        "margin": (S.MarginSampling, {}),
        "least_confidence": (S.LeastConfidenceSampling, {}),
        "entropy_mc": (S.EntropySamplingDropout, mc),
        "margin_mc": (S.MarginSamplingDropout, mc),
        "least_confidence_mc": (S.LeastConfidenceSamplingDropout, mc),
        "bald": (S.BALDDropout, mc),
        "batchbald": (S.BatchBALDDropout, {}),
        "coreset": (S.CoreSet, {}),
        "badge": (S.BADGE, {}),
        "kmeans": (S.KMeansSampling, {}),
        "fass": (S.FASS, {}),
        "deepfool": (S.AdversarialDeepFool, {}),
        "bim": (S.AdversarialBIM, {}),
        "submodular": (S.SubmodularSampling, {}),
        "gradmatch": (S.GradMatchActive, {}),
    }
    if name in simple:
        cls, extra = simple[name]
        strategy = cls(*common, {**args, **extra})
    elif name == "glister":
        strategy = S.GLISTER(*common, {**args, "lr": 0.01})
    elif name in ("fl1mi", "fl2mi"):
        strategy = S.SMI(labeled, unlabeled, query, model, c, {**args, "smi_function": name})
    elif name == "flcg":
        strategy = S.SCG(labeled, unlabeled, private, model, c, {**args, "scg_function": name})
    elif name == "flcmi":
        strategy = S.SCMI(
            labeled, unlabeled, query, private, model, c, {**args, "scmi_function": name}
        )
    else:
        raise ValueError(f"no DISTIL strategy for {name!r}")
    records = {}
    if name in ("entropy_mc", "margin_mc", "least_confidence_mc"):
        records["mc_mean_probs"] = Recorder(strategy, "predict_prob_dropout")
    elif name == "bald":
        records["mc_probs"] = Recorder(strategy, "predict_prob_dropout_split")
    elif name == "batchbald":
        records["mc_probs"] = Recorder(strategy, "do_MC_dropout_before_linear")
    elif name == "deepfool":
        records["perturbation"] = Recorder(strategy, "deepfool")
    elif name == "bim":
        records["perturbation"] = Recorder(strategy, "cal_dis")
    elif name in ("fl1mi", "fl2mi", "flcg", "flcmi") and len(unlabeled) <= GRADIENTS_MAX_N:
        records["gradients"] = Recorder(strategy, "get_grad_embedding")
    return strategy, records


def recorded_arrays(name: str, records) -> dict[str, np.ndarray]:
    """The recorded values of one call as NumPy arrays, in pool order."""
    out = {}
    for key, recorder in records.items():
        values = recorder.values
        if key == "perturbation":
            out[key] = np.array([float(v) for v in values], np.float64)
        elif key == "gradients":  # the pool's, then the query set's and / or private set's
            sets = {"fl1mi": ["query"], "fl2mi": ["query"], "flcg": ["private"]}
            names = ["pool", *sets.get(name, ["query", "private"])]
            for set_name, value in zip(names, values, strict=True):
                out[f"gradients_{set_name}"] = value.detach().cpu().numpy()
        elif key == "mc_mean_probs":  # chunks [B, C] of the stream, in order
            out[key] = np.concatenate([v.detach().cpu().numpy() for v in values], axis=0)
        elif name == "batchbald":  # [N, T, C] -> [T, N, C]
            out[key] = np.concatenate([v.detach().cpu().numpy() for v in values], 0).swapaxes(0, 1)
        else:  # BALD: chunks [T, B, C]
            out[key] = np.concatenate([v.detach().cpu().numpy() for v in values], axis=1)
    return out


def as_indices(chosen, budget: int) -> np.ndarray:
    """DISTIL's picks (a list, numpy array or tensor; KMeans may hold None) as int64
    [budget], -1 for a missing slot."""
    if hasattr(chosen, "detach"):
        chosen = chosen.detach().cpu().numpy()
    values = [-1 if v is None else int(v) for v in list(chosen)]
    values = values[:budget] + [-1] * max(0, budget - len(values))
    return np.asarray(values, np.int64)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- main ---------------------------------------------------------------------------------


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory_bytes, args.memory_bytes))
    sys.path.insert(0, str(args.distil_src.resolve()))
    import torch

    torch.set_num_threads(args.threads)
    import distil  # noqa: F401

    workload = _workload.load_npz(args.workload)
    data = datasets(torch, workload, image=args.strategy == "deepfool")
    meta = {
        "strategy": args.strategy,
        "budget": args.budget,
        "n": int(workload["x_pool"].shape[0]),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "import_s": time.perf_counter() - started,
    }
    indices, times, extras, error = [], [], {}, ""
    uniforms = []

    def write() -> None:
        arrays = {
            "indices": np.asarray(indices, np.int64).reshape(len(indices), args.budget),
            "times": np.asarray(times, np.float64),
            "peak_rss_mb": np.float64(peak_rss_mb()),
            "meta": np.array(json.dumps({**meta, "error": error})),
            **extras,
        }
        if uniforms:
            arrays["badge_uniforms"] = np.asarray(uniforms, np.float64)
        _workload.save_npz(args.out, **arrays)

    write()
    for repeat in range(max(args.repeats, args.min_calls)):
        elapsed = time.perf_counter() - started
        if times and elapsed + 1.1 * max(times) > args.timeout:
            break  # another call would not finish in time
        seed = args.seed * 1000 + repeat
        model = build_model(torch, workload)
        try:
            strategy, records = build_strategy(args.strategy, torch, model, data, args.budget)
            random.seed(seed)
            np.random.seed(seed)  # noqa: NPY002  (DISTIL draws from the global RandomState)
            torch.manual_seed(seed)
            start = time.perf_counter()
            chosen = strategy.select(args.budget)
            seconds = time.perf_counter() - start
        except Exception as exc:  # DISTIL's own failures are results too
            error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            traceback.print_exc()
            write()
            sys.exit(3)
        indices.append(as_indices(chosen, args.budget))
        times.append(seconds)
        if repeat == 0:
            extras = recorded_arrays(args.strategy, records)
        if args.strategy == "badge":
            # BADGE's D^2 draws are scipy rv_discrete.rvs calls on NumPy's global
            # RandomState, one uniform each: replay them from the seed, and check that
            # exactly budget - 1 were consumed.
            replay = np.random.RandomState(seed)
            drawn = replay.random_sample(args.budget - 1)
            consumed = np.random.get_state()[1:3]  # noqa: NPY002
            matches = bool(
                np.array_equal(replay.get_state()[1], consumed[0])
                and replay.get_state()[2] == consumed[1]
            )
            uniforms.append(drawn if matches else np.full(args.budget - 1, np.nan))
        write()
        print(
            f"distil {args.strategy} N={meta['n']} budget={args.budget} call {repeat}: "
            f"{seconds:.4g} s",
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    main()

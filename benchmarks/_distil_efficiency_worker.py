"""DISTIL's side of the labeling-efficiency experiment, run by ``efficiency.py`` inside
DISTIL's virtual environment (PyTorch and DISTIL; never jaxal).

For every strategy and seed: train the MLP on the initial labeled set (round 0), then
``--rounds`` times select ``--budget`` points with DISTIL's strategy, reveal their labels,
retrain from the round's fresh weights and evaluate on the test split. Training is a plain
PyTorch loop over exactly the minibatches and dropout masks that ``efficiency.py`` wrote
(the jaxal side trains on the same ones), with ``torch.optim.Adam``. Results go to
``--out`` (``.npz``), rewritten after every (strategy, seed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _workload  # noqa: E402  (NumPy only)
from _distil_worker import build_model, peak_rss_mb  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distil-src", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path, help="the experiment's .npz")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    return parser.parse_args(argv)


def make_strategy(name, S, labeled, unlabeled, model, classes, settings):
    args = {"batch_size": 1000, "device": "cpu"}
    table = {
        "random": (S.RandomSampling, {}),
        "entropy": (S.EntropySampling, {}),
        "margin": (S.MarginSampling, {}),
        "least_confidence": (S.LeastConfidenceSampling, {}),
        "bald": (S.BALDDropout, {"n_drop": settings["mc_samples"]}),
        "coreset": (S.CoreSet, {}),
        "badge": (S.BADGE, {}),
        "fass": (S.FASS, {}),
    }
    cls, extra = table[name]
    return cls(labeled, unlabeled, model, classes, {**args, **extra})


def main(argv=None) -> None:
    args = parse_args(argv)
    sys.path.insert(0, str(args.distil_src.resolve()))
    import distil.active_learning_strategies as S
    import torch
    from torch.utils.data import Dataset

    torch.set_num_threads(args.threads)
    data = _workload.load_npz(args.data)
    settings = json.loads(str(data["settings"]))
    x_train = torch.from_numpy(data["x_train"])
    y_train = torch.from_numpy(data["y_train"])
    x_test = torch.from_numpy(data["x_test"])
    y_test = data["y_test"]
    dropout = settings["dropout"]
    strategies, seeds, rounds = settings["strategies"], settings["seeds"], settings["rounds"]
    budget = settings["budget"]

    class Unlabeled(Dataset):
        def __init__(self, indices):
            self.indices = indices

        def __getitem__(self, i):
            return x_train[self.indices[i]]

        def __len__(self):
            return len(self.indices)

    class Labeled(Unlabeled):
        def __getitem__(self, i):
            j = self.indices[i]
            return x_train[j], y_train[j]

    def train(seed: int, round_: int, labeled_order: list[int]):
        weights = {k: data[f"init_{k}"][seed, round_] for k in ("w1", "b1", "w2", "b2")}
        model = build_model(torch, {**weights, "dropout": np.float32(dropout)})
        optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
        positions = torch.from_numpy(data["positions"][seed, round_].astype(np.int64))
        keep = np.unpackbits(data["keep"][seed, round_], axis=-1)[..., : _workload.HIDDEN]
        scale = torch.from_numpy(keep.astype(np.float32) / (1.0 - dropout))
        order = torch.tensor(labeled_order, dtype=torch.int64)
        model.train()
        for step in range(positions.shape[0]):
            batch = order[positions[step]]
            hidden = torch.relu(model.linear1(x_train[batch]))
            logits = model.linear(hidden * scale[step])
            loss = torch.nn.functional.cross_entropy(logits, y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        return model

    def accuracy(model) -> float:
        with torch.no_grad():
            return float(np.mean(model(x_test).argmax(1).numpy() == y_test))

    n_train = len(x_train)
    acc = np.full((len(strategies), seeds, rounds + 1), np.nan)
    picks = np.full((len(strategies), seeds, rounds, budget), -1, np.int64)
    wall = np.zeros((len(strategies), seeds))
    train_s = np.zeros((len(strategies), seeds))
    select_s = np.zeros((len(strategies), seeds))
    errors: dict[str, str] = {}

    def save() -> None:
        _workload.save_npz(
            args.out,
            accuracy=acc,
            picks=picks,
            wall_s=wall,
            train_s=train_s,
            select_s=select_s,
            peak_rss_mb=np.float64(peak_rss_mb()),
            meta=np.array(
                json.dumps({"torch": torch.__version__, "numpy": np.__version__, "errors": errors})
            ),
        )

    for s, name in enumerate(strategies):
        for seed in range(seeds):
            start = time.perf_counter()
            order = [int(i) for i in data["initial"][seed]]
            t0 = time.perf_counter()
            model = train(seed, 0, order)
            train_s[s, seed] += time.perf_counter() - t0
            acc[s, seed, 0] = accuracy(model)
            try:
                for r in range(1, rounds + 1):
                    labeled_mask = np.zeros(n_train, bool)
                    labeled_mask[order] = True
                    unlabeled_idx = np.flatnonzero(~labeled_mask)
                    strategy = make_strategy(
                        name,
                        S,
                        Labeled(np.asarray(order)),
                        Unlabeled(unlabeled_idx),
                        model,
                        _workload.CLASSES,
                        settings,
                    )
                    call_seed = seed * 1000 + r
                    random.seed(call_seed)
                    np.random.seed(call_seed)  # noqa: NPY002  (DISTIL's global RandomState)
                    torch.manual_seed(call_seed)
                    t0 = time.perf_counter()
                    chosen = strategy.select(budget)
                    select_s[s, seed] += time.perf_counter() - t0
                    chosen = unlabeled_idx[np.asarray([int(i) for i in chosen], np.int64)]
                    picks[s, seed, r - 1] = chosen
                    order += [int(i) for i in chosen]
                    t0 = time.perf_counter()
                    model = train(seed, r, order)
                    train_s[s, seed] += time.perf_counter() - t0
                    acc[s, seed, r] = accuracy(model)
            except Exception as exc:  # record DISTIL's failure, go on with the others
                errors[f"{name}/{seed}"] = f"{type(exc).__name__}: {exc}"[:300]
            wall[s, seed] = time.perf_counter() - start
            save()
            print(
                f"distil {name} seed {seed}: final accuracy {acc[s, seed, -1]:.3f}, "
                f"{wall[s, seed]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    save()


if __name__ == "__main__":
    main()

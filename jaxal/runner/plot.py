"""Learning curves from ``results.json``: test accuracy against labeled count.

One line per strategy, the mean over seeds, with a band from the lowest to the highest
seed. matplotlib draws through its Agg canvas directly (no pyplot, no display, no global
backend switch).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from jaxal.runner import checkpoint


def curves(results: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Per strategy: ``labeled`` [R], and ``mean``, ``low``, ``high`` accuracy [R] over seeds.

    Rounds that not every seed has finished (a stopped run) are left out.
    """
    by_strategy: dict[str, list[list[dict[str, Any]]]] = {}
    for experiment in results["experiments"]:
        by_strategy.setdefault(experiment["strategy"], []).append(experiment["rounds"])
    out = {}
    for name, runs in by_strategy.items():
        finished = min(len(rows) for rows in runs)
        if finished == 0:
            continue
        accuracy = np.array([[row["test_accuracy"] for row in rows[:finished]] for rows in runs])
        out[name] = {
            "labeled": np.array([row["labeled"] for row in runs[0][:finished]]),
            "mean": accuracy.mean(axis=0),
            "low": accuracy.min(axis=0),
            "high": accuracy.max(axis=0),
            "seeds": np.array(len(runs)),
        }
    return out


def plot(results: dict[str, Any], path: str) -> None:
    """Draw the learning curves of ``results`` (a ``results.json`` dict) to ``path`` (PNG).

    Raises:
        ValueError: no finished round to draw, or matplotlib is missing.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError("drawing the figure needs matplotlib: pip install matplotlib") from None
    lines = curves(results)
    if not lines:
        raise ValueError("the results hold no finished round to plot")
    config = results.get("config", {})
    figure = Figure(figsize=(7.0, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, line in lines.items():
        label = f"{name} ({line['mean'][-1]:.3f})"
        (drawn,) = axes.plot(line["labeled"], line["mean"], marker="o", markersize=3, label=label)
        if int(line["seeds"]) > 1:
            axes.fill_between(
                line["labeled"], line["low"], line["high"], color=drawn.get_color(), alpha=0.2
            )
    seeds = max(int(line["seeds"]) for line in lines.values())
    band = ", band: min-max over seeds" if seeds > 1 else ""
    axes.set_title(
        f"{results.get('dataset', {}).get('name', config.get('dataset', '?'))}, "
        f"model {results.get('model', config.get('model', '?'))}, "
        f"budget {config.get('budget', '?')} per round, {seeds} seed{'s' * (seeds > 1)}"
        f"\nmean test accuracy{band}",
        fontsize=10,
    )
    axes.set_xlabel("labeled points")
    axes.set_ylabel("test accuracy")
    axes.grid(alpha=0.3)
    axes.legend(title="strategy (final accuracy)", fontsize=9, title_fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    checkpoint.atomic_write_bytes(path, buffer.getvalue())


def read_results(directory: str) -> dict[str, Any]:
    """``DIR/results.json`` as a dict.

    Raises:
        ValueError: missing or unreadable file, or one without experiments.
    """
    path = os.path.join(directory, "results.json")
    try:
        with open(path) as file:
            results = json.load(file)
    except FileNotFoundError:
        raise ValueError(
            f"{path} does not exist: run `jaxal run --out {directory}` first"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(results, dict) or not isinstance(results.get("experiments"), list):
        raise ValueError(f"{path} is not a jaxal results file (no 'experiments' list)")
    return results

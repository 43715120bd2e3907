"""Learning curves from ``results.json``: test accuracy against labeled count.

One line per strategy, the mean over the seeds that reached each labeled count, with a band
from the lowest to the highest of them; a stopped run's figure says which seeds stopped
where. matplotlib draws through its Agg canvas directly (no pyplot, no display, no global
backend switch).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from jaxal.runner import checkpoint


def planned_rows(results: dict[str, Any]) -> int | None:
    """Rows a finished experiment has: ``config.rounds + 1`` (round 0 is the initial
    training), or None when ``results`` has no such config."""
    rounds = results.get("config", {}).get("rounds")
    return rounds + 1 if isinstance(rounds, int) and not isinstance(rounds, bool) else None


def curves(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per strategy with at least one finished round, the mean over the seeds that reached
    each labeled count.

    A stopped run's seeds reach different rounds: each point averages the seeds that got
    there, and says how many they are.

    Returns:
        strategy -> ``labeled`` int [R] (sorted), ``mean``, ``low``, ``high`` float [R]
        (mean, min and max test accuracy over the seeds at that point), ``count`` int [R]
        (those seeds), ``seeds`` (int: seeds with at least one round), ``stopped``
        (list of (seed, last finished round) for seeds with rounds but fewer than the
        run's), ``not_started`` (list of seeds with none).
    """
    planned = planned_rows(results)
    by_strategy: dict[str, list[tuple[int, list[dict[str, Any]]]]] = {}
    for experiment in results["experiments"]:
        runs = by_strategy.setdefault(experiment["strategy"], [])
        runs.append((int(experiment["seed"]), list(experiment["rounds"])))
    out = {}
    for name, runs in by_strategy.items():
        started = [(seed, rows) for seed, rows in runs if rows]
        if not started:
            continue
        full = planned or max(len(rows) for _, rows in started)
        accuracies: dict[int, list[float]] = {}
        for _, rows in started:
            for row in rows:
                accuracies.setdefault(int(row["labeled"]), []).append(float(row["test_accuracy"]))
        labeled = sorted(accuracies)
        out[name] = {
            "labeled": np.array(labeled),
            "mean": np.array([np.mean(accuracies[n]) for n in labeled]),
            "low": np.array([np.min(accuracies[n]) for n in labeled]),
            "high": np.array([np.max(accuracies[n]) for n in labeled]),
            "count": np.array([len(accuracies[n]) for n in labeled]),
            "seeds": len(started),
            "stopped": [
                (seed, int(rows[-1]["round"])) for seed, rows in started if len(rows) < full
            ],
            "not_started": [seed for seed, rows in runs if not rows],
        }
    return out


def seeds_text(line: dict[str, Any]) -> str:
    """How many seeds a curve averages and which stopped early, for the legend:
    ``"3 seeds"``, ``"2 seeds; seed 1 stopped at round 3; seed 2 not started"``."""
    seeds = int(line["seeds"])
    parts = [f"{seeds} seed{'s' * (seeds != 1)}"]
    parts += [f"seed {seed} stopped at round {last}" for seed, last in line["stopped"]]
    missing = line["not_started"]
    if missing:
        parts.append(f"seed{'s' * (len(missing) > 1)} {', '.join(map(str, missing))} not started")
    return "; ".join(parts)


def progress_text(results: dict[str, Any]) -> str | None:
    """For a run that did not finish (``complete`` is not true), e.g. ``"incomplete run:
    27 of 33 rounds finished"``; None for a finished run."""
    if results.get("complete") is True:
        return None
    planned = planned_rows(results)
    done = sum(len(e["rounds"]) for e in results["experiments"])
    if planned is None:
        return "incomplete run"
    config = results.get("config", {})
    strategies, seeds = config.get("strategy"), config.get("seeds")
    experiments = len(results["experiments"])
    if isinstance(strategies, list) and isinstance(seeds, int):
        experiments = len(strategies) * seeds
    return f"incomplete run: {done} of {experiments * planned} rounds finished"


def plot(results: dict[str, Any], path: str) -> None:
    """Draw the learning curves of ``results`` (a ``results.json`` dict) to ``path`` (PNG),
    atomically; see :func:`figure`.

    Raises:
        ValueError: no finished round to draw, or matplotlib is missing.
    """
    buffer = io.BytesIO()
    figure(results).savefig(buffer, format="png")
    checkpoint.atomic_write_bytes(path, buffer.getvalue())


def figure(results: dict[str, Any]) -> Any:
    """The learning curves of ``results`` as a matplotlib ``Figure`` (Agg canvas).

    Per strategy, the mean over the seeds that reached each labeled count, with a min-max
    band; the legend gives the seeds per strategy and those that stopped early, the part
    of a curve averaged over fewer seeds is dashed, and the title says when the run is
    incomplete. The labeled-points axis has integer ticks.

    Raises:
        ValueError: no finished round to draw, or matplotlib is missing.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ValueError("drawing the figure needs matplotlib: pip install matplotlib") from None
    lines = curves(results)
    if not lines:
        raise ValueError("the results hold no finished round to plot")
    config = results.get("config", {})
    drawing = Figure(figsize=(7.0, 4.5), dpi=120)
    FigureCanvasAgg(drawing)
    axes = drawing.add_subplot()
    for name, line in lines.items():
        label = f"{name}: {line['mean'][-1]:.3f} ({seeds_text(line)})"
        # Points with every seed first (all started seeds have round 0), then fewer.
        every = int(np.sum(line["count"] == line["seeds"]))
        x, mean = line["labeled"], line["mean"]
        (drawn,) = axes.plot(x[:every], mean[:every], marker="o", markersize=3, label=label)
        if every < len(x):  # averaged over fewer seeds: dashed, hollow markers
            axes.plot(
                x[every - 1 :],
                mean[every - 1 :],
                linestyle="--",
                marker="o",
                markersize=3,
                markerfacecolor="none",
                color=drawn.get_color(),
            )
        if line["seeds"] > 1:
            axes.fill_between(x, line["low"], line["high"], color=drawn.get_color(), alpha=0.2)
    counts = sorted({int(line["seeds"]) for line in lines.values()})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    band = ", band: min-max over seeds" if counts[-1] > 1 else ""
    title = (
        f"{results.get('dataset', {}).get('name', config.get('dataset', '?'))}, "
        f"model {results.get('model', config.get('model', '?'))}, "
        f"budget {config.get('budget', '?')} per round, {seeds} seed{'s' * (counts[-1] > 1)}"
        f"\nmean test accuracy over the seeds at each point{band}"
    )
    progress = progress_text(results)
    if progress:
        title = f"{progress.upper()[:1]}{progress[1:]} (dashed: fewer seeds)\n{title}"
    axes.set_title(title, fontsize=10, color="black")
    axes.set_xlabel("labeled points")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("test accuracy")
    axes.grid(alpha=0.3)
    axes.legend(title="strategy: final accuracy (seeds)", fontsize=8, title_fontsize=8)
    drawing.tight_layout()
    return drawing


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

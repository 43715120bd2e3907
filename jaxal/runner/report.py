"""What a run shows and writes: the progress bar, the per-strategy and summary tables,
``results.json`` and the learning-curve figure.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import IO, Any

import numpy as np

import jaxal
from jaxal.runner import checkpoint, plot
from jaxal.runner.experiment import Compiled, initial_set
from jaxal.runner.setup import Setup

RESULTS = "results.json"
FIGURE = "learning_curves.png"


class Progress:
    """A progress bar over rounds on ``stream``: redrawn in place on a terminal, one line
    per finished experiment otherwise."""

    def __init__(self, total: int, done: int = 0, stream: IO[str] | None = None) -> None:
        self.total, self.done = total, done
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.start = time.perf_counter()
        self.started_at = done
        self.shown = False

    def begin(self, label: str) -> None:
        """Show the bar before the first round finishes (on a terminal)."""
        if self.live:
            self._draw(label)

    def advance(self, label: str, last: bool) -> None:
        """One more round finished; ``last``: it ended an experiment."""
        self.done += 1
        if self.live:
            self._draw(label)
        elif last:
            print(f"[{self.done:>{len(str(self.total))}}/{self.total}] {label}", file=self.stream)
            self.stream.flush()

    def drop(self, count: int) -> None:
        """``count`` planned rounds will not run (an experiment that a stopping rule
        ended)."""
        self.total -= count

    def _draw(self, label: str) -> None:
        width = 24
        filled = round(width * self.done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self.started_at) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "#" * filled + "-" * (width - filled)
        line = f"[{bar}] {self.done}/{self.total} {_clock(elapsed)}<{_clock(eta)} {label}"
        columns = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r\x1b[2K" + line[: columns - 1])
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Erase the bar (before other output) on a terminal."""
        if self.live and self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def strategy_table(
    name: str,
    runs: list[list[dict[str, Any]]],
    stopped: list[dict[str, Any] | None] | None = None,
) -> str:
    """Per round over seeds: labeled, accuracy mean ± std, mean select and train seconds.

    ``stopped``: per seed, the record of the stopping rule that ended its experiment
    (``{"rule", "round", "reason"}``) or None, for a run with stopping rules. Then each
    round averages the seeds that reached it, two more columns give their count and the
    seeds that stopped there (and by which rule), and a line per seed below the table
    says where and why it stopped, or that no rule fired.
    """
    if stopped is None:
        rounds = min(len(rows) for rows in runs)
        extra = ""
    else:
        rounds = max(len(rows) for rows in runs)
        extra = f" {'seeds':>5} stopped"
    lines = [
        f"{name}: {len(runs)} seed{'s' * (len(runs) > 1)}, test accuracy mean ± std, seconds mean",
        f"{'round':>5} {'labeled':>7} {'accuracy':>15} {'select s':>9} {'train s':>8}{extra}",
    ]
    for r in range(rounds):
        rows = [run[r] for run in runs if len(run) > r]
        accuracy = np.array([row["test_accuracy"] for row in rows])
        selects = [row["select_seconds"] for row in rows if row["select_seconds"] is not None]
        select = f"{np.mean(selects):.3f}" if selects else "-"
        train_seconds = np.mean([row["train_seconds"] for row in rows])
        line = (
            f"{r:>5} {rows[0]['labeled']:>7} {accuracy.mean():>7.3f} ± {accuracy.std():.3f} "
            f"{select:>9} {train_seconds:>8.3f}"
        )
        if stopped is not None:
            here = [
                f"seed {seed} ({record['rule']})"
                for seed, record in enumerate(stopped)
                if record is not None and record["round"] == r
            ]
            line += f" {len(rows):>5} {', '.join(here)}".rstrip()
        lines.append(line)
    for seed, record in enumerate(stopped or []):
        if record is None:
            lines.append(f"seed {seed}: no stopping rule fired in {len(runs[seed]) - 1} rounds")
        else:
            lines.append(
                f"seed {seed}: stopped at round {record['round']} by {record['rule']}: "
                f"{record['reason']}"
            )
    return "\n".join(lines)


def summary_table(experiments: list[dict[str, Any]]) -> str:
    """Mean test accuracy by labeled count (rows) and strategy (columns); a cell is the
    mean over the seeds that reached that count (blank where none did)."""
    lines = plot.curves({"experiments": experiments})
    names = list(lines)
    width = max(8, *(len(n) for n in names))
    seeds = max(int(line["seeds"]) for line in lines.values())
    means = {
        n: dict(zip(lines[n]["labeled"].tolist(), lines[n]["mean"], strict=True)) for n in names
    }
    out = [
        f"mean test accuracy over {seeds} seed{'s' * (seeds > 1)}",
        f"{'labeled':>7} " + " ".join(f"{n:>{width}}" for n in names),
    ]
    for labeled in sorted({count for n in names for count in means[n]}):
        cells = [
            f"{means[n][labeled]:>{width}.3f}" if labeled in means[n] else " " * width
            for n in names
        ]
        out.append(f"{labeled:>7} " + " ".join(cells))
    return "\n".join(out)


def with_progress(experiment: dict[str, Any], planned_rows: int) -> dict[str, Any]:
    """``experiment`` with ``complete`` (all ``planned_rows`` rounds, round 0 included,
    finished, or a stopping rule ended it: ``stopped`` is not None) and ``last_round``
    (the last finished round, None before round 0)."""
    rows = experiment["rounds"]
    return {
        **experiment,
        "complete": len(rows) >= planned_rows or experiment.get("stopped") is not None,
        "last_round": int(rows[-1]["round"]) if rows else None,
    }


def with_source_rows(
    experiment: dict[str, Any], train_rows: np.ndarray, initial: np.ndarray
) -> dict[str, Any]:
    """``experiment`` (``strategy``, ``seed``, ``rounds``) with its initial labeled set and
    every selected point also given as the row of the user's data it came from.

    Args:
        experiment: as the run loop keeps it; its rows are not modified.
        train_rows: int [N], the source row of each pool point (see
            :class:`jaxal.runner.prepare.Prepared`).
        initial: int [initial], the pool indices of the initial labeled set.

    Returns:
        A new dict: ``initial`` and ``initial_rows`` added, and every round's row with
        ``selected_rows`` (``train_rows[selected]``) next to ``selected``.
    """
    rounds = [
        {**row, "selected_rows": [int(train_rows[i]) for i in row["selected"]]}
        for row in experiment["rounds"]
    ]
    return {
        **experiment,
        "initial": [int(i) for i in initial],
        "initial_rows": [int(train_rows[i]) for i in initial],
        "rounds": rounds,
    }


def results_dict(
    setup: Setup,
    experiments: list[dict[str, Any]],
    complete: bool,
    compiled: Compiled,
    wall_seconds: float,
) -> dict[str, Any]:
    """The ``results.json`` content.

    ``complete`` is true once every experiment has finished every round or been ended by
    a stopping rule; each experiment says whether it has (``complete``), its
    ``last_round``, and ``stopped``: the rule that ended it, ``{"rule", "round",
    "reason"}``, or None. With stopping rules, every round's ``stopping`` gives each
    rule's state in words. Pool indices (``initial``,
    ``selected``) index each seed's pool; ``initial_rows`` and
    ``selected_rows`` are the same points as rows of the user's data, which
    ``dataset.rows_of`` names (before any split or subset).
    """
    dataset = setup.datasets[0]
    config = setup.config
    described = [
        with_source_rows(
            with_progress(experiment, config.rounds + 1),
            setup.train_rows[experiment["seed"]],
            initial_set(setup.datasets[experiment["seed"]], config.initial, experiment["seed"]),
        )
        for experiment in experiments
    ]
    return {
        "jaxal_version": jaxal.__version__,
        "complete": complete,
        "config": setup.config.to_dict(),
        "dataset": {
            "name": setup.config.dataset,
            "train_points": len(dataset.x_train),
            "test_points": len(dataset.x_test),
            "input_shape": list(dataset.x_train.shape[1:]),
            "num_classes": dataset.num_classes,
            "normalization": setup.config.normalization,
            "normalization_reason": setup.normalization_reason,
            "rows_of": setup.rows_of,
        },
        "model": setup.model_name,
        "compile_seconds": dict(compiled.seconds),
        "wall_seconds": wall_seconds,
        "experiments": described,
    }


def write_results(directory: str, results: dict[str, Any]) -> None:
    """Write ``results`` to ``DIR/results.json``, atomically."""
    checkpoint.atomic_write_json(os.path.join(directory, RESULTS), results)


def draw_figure(directory: str, output: str | None = None) -> str:
    """Draw the learning curves of ``DIR/results.json`` to ``output`` (default
    ``DIR/learning_curves.png``) and return that path.

    Raises:
        ValueError: no readable results, no finished round, or no matplotlib.
    """
    output = output or os.path.join(directory, FIGURE)
    plot.plot(plot.read_results(directory), output)
    return output

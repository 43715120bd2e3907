"""The run loop of ``jaxal run``: start a run in a fresh output directory or continue one
(``--resume``), then run every experiment (strategy x seed) round by round.

Every finished round is saved to its experiment's checkpoint and to ``results.json``
before the next one starts, so a run stopped at any point continues from its last
finished round with the numbers an uninterrupted run gives.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from typing import IO, Any

from jaxal.runner import checkpoint, experiment, report, stop
from jaxal.runner.config import CONFIG, RunConfig, read_run_config, resumed_config
from jaxal.runner.setup import Setup, make_setup

RUN_FILES = (CONFIG, report.RESULTS, report.FIGURE)


def earlier_run(directory: str) -> str | None:
    """What ``directory`` holds of an earlier run: ``"finished"`` (its ``results.json``
    says complete), ``"unfinished"`` (any other trace of a run: a ``config.json``,
    ``results.json``, figure or ``checkpoints/``), or None (no run there)."""
    traces = [os.path.join(directory, name) for name in RUN_FILES]
    if not any(os.path.exists(path) for path in traces) and not os.path.isdir(
        os.path.join(directory, "checkpoints")
    ):
        return None
    try:
        with open(os.path.join(directory, report.RESULTS)) as file:
            finished = json.load(file).get("complete") is True
    except (OSError, ValueError, AttributeError):
        finished = False
    return "finished" if finished else "unfinished"


def prepare_out(directory: str, overwrite: bool) -> None:
    """Make ``directory`` ready for a new run.

    A directory that holds an earlier run (see :func:`earlier_run`), finished or not, is
    left untouched and refused unless ``overwrite``; with ``overwrite`` that run's files
    (``config.json``, ``results.json``, the figure, ``checkpoints/``) are deleted. Other
    files in the directory are never touched.

    Raises:
        ValueError: an earlier run is there and ``overwrite`` is False; the message says
            how to continue or extend it, or to choose another ``--out``.
    """
    found = earlier_run(directory)
    if found is not None and not overwrite:
        if found == "finished":
            raise ValueError(
                f"--out {directory} holds a finished run, which jaxal run never replaces: "
                f"choose another --out, extend it with `jaxal run --resume {directory} "
                f"--rounds N`, or pass --overwrite to delete it and start over"
            )
        raise ValueError(
            f"--out {directory} holds an unfinished run: continue it with "
            f"`jaxal run --resume {directory}` (add --rounds N to extend it), choose "
            "another --out, or pass --overwrite to delete it and start over"
        )
    checkpoints = os.path.join(directory, "checkpoints")
    if os.path.isdir(checkpoints):
        shutil.rmtree(checkpoints)
    for name in RUN_FILES:
        if os.path.exists(os.path.join(directory, name)):
            os.remove(os.path.join(directory, name))
    os.makedirs(directory, exist_ok=True)


def new_run(config: RunConfig, overwrite: bool) -> Setup:
    """The setup of a new run of ``config``, its output directory prepared (see
    :func:`prepare_out`) and its ``config.json`` written (with the normalization used, an
    ``auto`` resolved; the choice is also printed on stderr).

    Nothing is written before the whole setup is checked.
    """
    setup = make_setup(config)
    prepare_out(config.out, overwrite)
    checkpoint.atomic_write_json(os.path.join(config.out, CONFIG), setup.config.to_dict())
    print(
        f"jaxal: normalization {setup.config.normalization} "
        f"({setup.normalization_reason}; --normalization to change it)",
        file=sys.stderr,
    )
    return setup


def resume_run(directory: str, rounds: int | None) -> Setup:
    """The setup that continues the run in ``directory`` with its saved settings, extended
    to ``rounds`` rounds when given (then its ``config.json`` is updated to match). The
    normalization's reason is the one the run recorded (see
    :func:`saved_normalization_reason`).

    Raises:
        ValueError: no readable run there, or ``rounds`` fewer than the saved rounds.
    """
    saved = read_run_config(directory)
    config = resumed_config(saved, directory, rounds)
    setup = make_setup(config)
    if config.rounds != saved.rounds:
        checkpoint.atomic_write_json(
            os.path.join(directory, CONFIG),
            dataclasses.replace(saved, rounds=config.rounds).to_dict(),
        )
    reason = saved_normalization_reason(directory, setup.config.normalization)
    return dataclasses.replace(setup, normalization_reason=reason)


def saved_normalization_reason(directory: str, normalization: str) -> str:
    """Why the run in ``directory`` uses ``normalization``: the reason its ``results.json``
    gives (chosen from the data, or as given), else that ``config.json`` says so."""
    try:
        with open(os.path.join(directory, report.RESULTS)) as file:
            dataset = json.load(file)["dataset"]
        if dataset["normalization"] == normalization:
            return str(dataset["normalization_reason"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "as the run's config.json gives"


def execute(setup: Setup, stop_after: int | None = None, out: IO[str] | None = None) -> int:
    """Run (or continue) every experiment of ``setup``; write results and figure.

    An experiment continues from its checkpoint, which holds the state after its last
    finished round; one that already has ``config.rounds`` rounds is skipped, one that has
    fewer (a killed run, or a finished one whose rounds were extended) runs the rest. With
    stopping rules (``config.stop``), an experiment ends after the round at which one of
    them fires, and stays ended when the run is resumed or extended.

    Args:
        stop_after: stop after this many rounds run in this call (for tests of resume:
            the state stays as a killed run leaves it).
        out: where tables go (default stdout).

    Returns:
        The exit status, 0.
    """
    out = out or sys.stdout
    config = setup.config
    start = time.perf_counter()
    settings = experiment.Settings(config.rounds, config.budget, config.initial, config.warm_start)
    compiled = experiment.Compiled()
    rounds_per_experiment = config.rounds + 1
    stopping = setup.stopping
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    stopped: dict[tuple[str, int], dict[str, Any] | None] = {}
    for name in config.strategy:
        for seed in range(config.seeds):
            path = experiment.checkpoint_path(config.out, name, seed)
            exists = os.path.exists(path)
            rows[name, seed] = experiment.read_rows(path) if exists else []
            stopped[name, seed] = stop.read_stopped(path) if exists else None
    progress = report.Progress(
        total=sum(
            rounds_per_experiment if stopped[key] is None else len(r) for key, r in rows.items()
        ),
        done=sum(min(len(r), rounds_per_experiment) for r in rows.values()),
    )

    def experiments() -> list[dict[str, Any]]:
        return [
            {"strategy": n, "seed": s, "rounds": r, "stopped": stopped[n, s]}
            for (n, s), r in rows.items()
        ]

    def write_results(complete: bool) -> None:
        results = report.results_dict(
            setup, experiments(), complete, compiled, time.perf_counter() - start
        )
        report.write_results(config.out, results)

    ran = 0
    progress.begin("compiling ...")
    for name in config.strategy:
        strategy = setup.strategies[name]
        for seed in range(config.seeds):
            if len(rows[name, seed]) >= rounds_per_experiment or stopped[name, seed] is not None:
                continue
            dataset = setup.datasets[seed]
            path = experiment.checkpoint_path(config.out, name, seed)
            stop_state = None
            if os.path.exists(path):
                state, _, arrays = experiment.load_state(path, dataset, setup.trainer)
                if stopping is not None:
                    stop_state = stop.restore(stopping, arrays, state, seed, path)
            else:
                state = experiment.initial_state(dataset, settings, seed, setup.trainer)
            while len(state.rows) < rounds_per_experiment:
                if stop_after is not None and ran >= stop_after:
                    write_results(complete=False)
                    progress.clear()
                    print(
                        f"jaxal: stopped after {ran} rounds (--stop-after); continue with "
                        f"jaxal run --resume {config.out}",
                        file=sys.stderr,
                    )
                    return 0
                inputs = setup.inputs[name][seed] if name in setup.inputs else None
                previous = state.train_state.params
                state = experiment.run_round(
                    state, dataset, settings, strategy, setup.trainer, compiled, name, inputs
                )
                arrays = {}
                if stopping is not None:
                    state, stop_state, stopped[name, seed] = stop.after_round(
                        stopping, compiled, stop_state, state, previous, seed
                    )
                    arrays = stop.state_arrays(stop_state)
                meta = {"strategy": name, "seed": seed, "stopped": stopped[name, seed]}
                experiment.save_state(path, state, meta, arrays)
                rows[name, seed] = state.rows
                write_results(complete=False)
                ran += 1
                row = state.rows[-1]
                fired = stopped[name, seed]
                if fired is not None:
                    progress.drop(rounds_per_experiment - len(state.rows))
                progress.advance(
                    f"{name} seed {seed} round {row['round']}: {row['labeled']} labeled, "
                    f"accuracy {row['test_accuracy']:.3f}"
                    + (f", stopped by {fired['rule']}" if fired else ""),
                    last=len(state.rows) == rounds_per_experiment or fired is not None,
                )
                if fired is not None:
                    break
        progress.clear()
        seeds = range(config.seeds)
        print(
            report.strategy_table(
                name,
                [rows[name, s] for s in seeds],
                [stopped[name, s] for s in seeds] if stopping is not None else None,
            ),
            file=out,
        )
        print(file=out)
    write_results(complete=True)
    figure = report.draw_figure(config.out)
    print(report.summary_table(experiments()), file=out)
    print(
        f"\nwrote {os.path.join(config.out, report.RESULTS)} and {figure} "
        f"({time.perf_counter() - start:.1f} s)",
        file=out,
    )
    return 0

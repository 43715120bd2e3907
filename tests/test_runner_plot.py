"""The figure and results of a run that did not finish: each labeled count averages the
seeds that reached it, the legend names the seeds that stopped, the title says the run is
incomplete, and ``results.json`` records every experiment's last finished round."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jaxal import cli
from jaxal.runner import experiment as _experiment
from jaxal.runner import plot


def rows(accuracies, initial=10, budget=5):
    """Rows of rounds 0..len-1 with these test accuracies."""
    return [
        {"round": r, "labeled": initial + r * budget, "test_accuracy": a, "selected": []}
        for r, a in enumerate(accuracies)
    ]


def stopped_results():
    """3 rounds planned (4 rows), 3 seeds: entropy's seed 0 finished, seed 1 stopped after
    round 1, seed 2 not started; random finished on every seed."""
    experiments = [
        {"strategy": "entropy", "seed": 0, "rounds": rows([0.5, 0.6, 0.7, 0.8])},
        {"strategy": "entropy", "seed": 1, "rounds": rows([0.3, 0.4])},
        {"strategy": "entropy", "seed": 2, "rounds": []},
    ]
    experiments += [
        {"strategy": "random", "seed": s, "rounds": rows([0.5, 0.55, 0.6, 0.65 + s / 100])}
        for s in range(3)
    ]
    return {
        "complete": False,
        "config": {"strategy": ["entropy", "random"], "seeds": 3, "rounds": 3, "budget": 5},
        "dataset": {"name": "digits"},
        "model": "mlp",
        "experiments": experiments,
    }


def test_curves_average_the_seeds_that_reached_each_point():
    lines = plot.curves(stopped_results())
    entropy = lines["entropy"]  # a strategy with one finished and one partial seed is kept
    np.testing.assert_array_equal(entropy["labeled"], [10, 15, 20, 25])
    np.testing.assert_allclose(entropy["mean"], [0.4, 0.5, 0.7, 0.8])
    np.testing.assert_allclose(entropy["low"], [0.3, 0.4, 0.7, 0.8])
    np.testing.assert_array_equal(entropy["count"], [2, 2, 1, 1])
    assert entropy["seeds"] == 2
    assert entropy["stopped"] == [(1, 1)] and entropy["not_started"] == [2]
    assert plot.seeds_text(entropy) == "2 seeds; seed 1 stopped at round 1; seed 2 not started"
    random = lines["random"]
    np.testing.assert_array_equal(random["count"], [3, 3, 3, 3])
    assert plot.seeds_text(random) == "3 seeds"
    # 4 + 2 + 0 of 6 x 4 rows.
    assert plot.progress_text(stopped_results()) == "incomplete run: 18 of 24 rounds finished"
    assert plot.progress_text({**stopped_results(), "complete": True}) is None


def test_the_figure_says_what_it_averages():
    drawing = plot.figure(stopped_results())
    axes = drawing.axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend == [
        "entropy: 0.800 (2 seeds; seed 1 stopped at round 1; seed 2 not started)",
        "random: 0.660 (3 seeds)",
    ]
    title = axes.get_title()
    assert title.startswith("Incomplete run: 18 of 24 rounds finished (dashed: fewer seeds)")
    assert "2-3 seeds" in title
    # The part of entropy's curve averaged over one seed is dashed.
    styles = [(tuple(line.get_xdata()), line.get_linestyle()) for line in axes.get_lines()]
    assert ((10, 15), "-") in styles and ((15, 20, 25), "--") in styles
    ticks = axes.get_xticks()
    assert len(ticks) >= 2 and np.all(ticks == np.round(ticks))
    finished = plot.figure({**stopped_results(), "complete": True}).axes[0].get_title()
    assert not finished.startswith("Incomplete")


def test_integer_ticks_on_a_narrow_range():
    results = {
        "complete": True,
        "config": {"rounds": 2, "budget": 1},
        "experiments": [{"strategy": "random", "seed": 0, "rounds": rows([0.5, 0.6, 0.7], 3, 1)}],
    }
    ticks = plot.figure(results).axes[0].get_xticks()
    assert np.all(ticks == np.round(ticks)), ticks  # 3, 4, 5 labeled: no 3.5


def read(directory):
    with open(os.path.join(directory, "results.json")) as file:
        return json.load(file)


@pytest.mark.slow
def test_a_run_stopped_by_ctrl_c(capsys, tmp_path, monkeypatch):
    """Ctrl-C in entropy's seed 1, round 2: results and figure show what was finished."""
    real_run_round = _experiment.run_round
    calls = []

    def run_round(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # entropy: seed 0 rounds 0-2, seed 1 rounds 0-1, then Ctrl-C
            raise KeyboardInterrupt
        return real_run_round(*args, **kwargs)

    monkeypatch.setattr(_experiment, "run_round", run_round)
    out = tmp_path / "out"
    args = ["run", "--strategy", "entropy,random", "--seeds", "2", "--rounds", "2"]
    args += ["--budget", "5", "--initial", "10", "--steps", "10", "--out", str(out)]
    status = cli.main(args)
    err = capsys.readouterr().err
    assert status == 130
    assert f"figure of the finished rounds: {out}/learning_curves.png" in err
    assert f"jaxal run --resume {out}" in err
    results = read(out)
    assert results["complete"] is False
    progress = [
        (e["strategy"], e["seed"], e["complete"], e["last_round"]) for e in results["experiments"]
    ]
    assert progress == [
        ("entropy", 0, True, 2),
        ("entropy", 1, False, 1),
        ("random", 0, False, None),
        ("random", 1, False, None),
    ]
    monkeypatch.setattr(_experiment, "run_round", real_run_round)
    status = cli.main(["plot", str(out)])
    assert status == 0
    legend = [t.get_text() for t in plot.figure(results).axes[0].get_legend().get_texts()]
    assert len(legend) == 1 and legend[0].startswith("entropy: ")
    assert legend[0].endswith("(2 seeds; seed 1 stopped at round 1)")
    # Resumed, the run finishes: every experiment complete, one curve per strategy.
    assert cli.main(["run", "--resume", str(out)]) == 0
    results = read(out)
    assert results["complete"] is True
    assert all(e["complete"] and e["last_round"] == 2 for e in results["experiments"])
    axes = plot.figure(results).axes[0]
    assert not axes.get_title().startswith("Incomplete")
    assert [t.get_text().split(" (")[1] for t in axes.get_legend().get_texts()] == [
        "2 seeds)",
        "2 seeds)",
    ]

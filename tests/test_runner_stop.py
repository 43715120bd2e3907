"""``jaxal run --stop`` and ``[stop]`` tables end each experiment at the round a reference
predicts, record the rule in ``results.json`` and the table, resume with the rules' state,
and refuse bad settings before anything runs; each round gives the rules what they read."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import Pool, cli
from jaxal.runner import stop
from jaxal.stopping import RoundOutputs
from jaxal.train import MLP, trainer
from tests import reference_stopping as reference

ROUNDS = 4
TINY = ["--strategy", "random", "--seeds", "1", "--rounds", ROUNDS, "--budget", "5"]
TINY += ["--initial", "10", "--steps", "15"]
TIMING_KEYS = ("select_seconds", "train_seconds", "compile_seconds", "wall_seconds")


def run(capsys, *args):
    """``jaxal`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read(directory):
    with open(os.path.join(directory, "results.json")) as file:
        return json.load(file)


def numbers(rows):
    """The rows without timings or the rules' sentences."""
    drop = (*TIMING_KEYS, "stopping")
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The rows of a run without stopping rules."""
    out = tmp_path_factory.mktemp("full")
    assert cli.main([str(a) for a in ["run", *TINY, "--out", out]]) == 0
    (experiment,) = read(out)["experiments"]
    assert experiment["stopped"] is None and len(experiment["rounds"]) == ROUNDS + 1
    return experiment["rounds"]


def plateau_settings(accuracies):
    """A min_delta at which validation_plateau (patience 1) fires before the last round by
    the reference, away from every accuracy difference; and that round."""
    gaps = np.abs(np.subtract.outer(accuracies, accuracies)).ravel()
    fits = []
    for min_delta in np.linspace(0.0, 0.1, 201):
        if np.min(np.abs(gaps - min_delta)) < 1e-4:
            continue
        stops, _ = reference.validation_plateau(accuracies, 1, float(min_delta), "max")
        if True in stops[:-1]:
            fits.append((stops.index(True), float(min_delta)))
    fired, min_delta = max(fits)  # the latest round the grid reaches
    return min_delta, fired


# The end-to-end runs go to one xdist worker: they share the run without rules.
ONE_WORKER = pytest.mark.xdist_group("runner-stop")


@pytest.mark.slow
@ONE_WORKER
def test_stop_ends_the_run_at_the_round_the_reference_predicts(capsys, tmp_path, full):
    accuracies = [row["test_accuracy"] for row in full]
    min_delta, expected = plateau_settings(accuracies)
    kwargs = {"validation_plateau": {"patience": 1, "min_delta": min_delta}}
    status, out, err = run(
        capsys,
        "run",
        *TINY,
        "--stop",
        "validation_plateau",
        "--stop-kwargs",
        json.dumps(kwargs),
        "--out",
        tmp_path,
    )
    assert status == 0, err
    results = read(tmp_path)
    assert results["complete"] is True
    assert results["config"]["stop"] == kwargs
    (experiment,) = results["experiments"]
    assert experiment["complete"] is True and experiment["last_round"] == expected
    stopped = experiment["stopped"]
    assert stopped["rule"] == "validation_plateau" and stopped["round"] == expected
    assert stopped["reason"].startswith("no improvement for 1 round (")
    # The rules never change a round: the rounds run equal the run without rules.
    assert numbers(experiment["rounds"]) == numbers(full[: expected + 1])
    assert all("validation_plateau" in row["stopping"] for row in experiment["rounds"])
    assert f"seed 0: stopped at round {expected} by validation_plateau" in out
    last_line = [line for line in out.splitlines() if line.startswith(f"{expected:>5} ")][0]
    assert last_line.endswith("1 seed 0 (validation_plateau)")
    assert "stopped by validation_plateau" in err  # the progress line


CONFIG = """
stop_set = 30
[stop.stabilizing_predictions]
threshold = -1.0
window = 2
[stop.labeling_budget]
budget = 10
"""


@pytest.mark.slow
@ONE_WORKER
def test_a_stop_table_and_resume(capsys, tmp_path, full):
    config = tmp_path / "stop.toml"
    config.write_text(CONFIG)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    status, _, err = run(capsys, "run", "--config", config, *TINY, "--out", whole)
    assert status == 0, err
    (experiment,) = read(whole)["experiments"]
    # Both rules fire after round 2 (2 kappas >= -1; 10 labels spent): the first one named.
    assert experiment["stopped"]["rule"] == "stabilizing_predictions"
    assert experiment["stopped"]["round"] == 2
    assert numbers(experiment["rounds"]) == numbers(full[:3])
    said = [row["stopping"] for row in experiment["rounds"]]
    assert said[0]["stabilizing_predictions"].startswith("first predictions on the stop set")
    assert said[1]["stabilizing_predictions"].startswith("kappa ")
    assert said[1]["labeling_budget"] == "5 of 10 labels spent"
    assert said[2]["labeling_budget"] == "labeling budget spent: 10 labels of 10"
    # Killed after round 1, then resumed: the rules' state comes back from the checkpoint.
    status, _, err = run(
        capsys, "run", "--config", config, *TINY, "--out", resumed, "--stop-after", 2
    )
    assert status == 0 and read(resumed)["complete"] is False
    status, _, err = run(capsys, "run", "--resume", resumed)
    assert status == 0, err
    (again,) = read(resumed)["experiments"]
    assert again["stopped"] == experiment["stopped"]
    assert numbers(again["rounds"]) == numbers(experiment["rounds"])
    assert [row["stopping"] for row in again["rounds"]] == said
    # More rounds: the stopped experiment stays stopped.
    status, _, err = run(capsys, "run", "--resume", resumed, "--rounds", ROUNDS + 1)
    assert status == 0, err
    assert read(resumed)["experiments"] == [again]
    status, _, err = run(capsys, "run", "--resume", resumed, "--stop", "labeling_budget")
    assert status == 2 and "drop --stop" in err


@pytest.mark.parametrize(
    ("args", "toml", "message"),
    [
        (["--stop", "kappa"], None, "unknown stopping rule 'kappa'"),
        (["--stop", "labeling_budget"], None, "--stop labeling_budget needs budget"),
        (
            ["--stop", "max_confidence", "--stop-kwargs", '{"max_confidence": {"threshold": 2}}'],
            None,
            "--stop max_confidence: threshold must lie in (0, 1], got 2",
        ),
        (
            ["--stop", "max_confidence", "--stop-kwargs", '{"labeling_budget": {"budget": 2}}'],
            None,
            "--stop-kwargs sets hyperparameters of 'labeling_budget', which is not a stopping",
        ),
        (["--stop-kwargs", "{budget: 3}"], None, "--stop-kwargs must be a JSON object"),
        ([], "[stop.labeling_budget]\nbudgt = 3\n", "[stop.labeling_budget]: unknown hyper"),
        ([], "[stop.labeling_budget]\nbudgt = 3\n", "(did you mean 'budget'?)"),
        ([], "stop = 3\n", "stop must be a table of tables, [stop.<rule>]"),
        ([], "stop_sets = 3\n", "unknown field 'stop_sets' (did you mean 'stop_set'?)"),
        (["--stop-set", "0"], None, "--stop-set must be >= 1"),
    ],
)
def test_bad_stop_settings_are_refused(capsys, tmp_path, args, toml, message):
    if toml is not None:
        (tmp_path / "run.toml").write_text(toml)
        args = ["--config", tmp_path / "run.toml", *args]
    status, out, err = run(capsys, "run", *args, "--out", tmp_path / "out")
    assert status == 2 and out == ""
    assert err.startswith("jaxal: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_round_outputs_give_each_rule_what_it_reads():
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    y = np.arange(40, dtype=np.int32) % 3
    train = trainer(MLP(num_classes=3, hidden=8), steps=1)
    params = train.init(jax.random.key(0), jnp.asarray(x)).params
    previous = train.init(jax.random.key(1), jnp.asarray(x)).params
    labeled = np.array([0, 5, 9, 12])
    pool = Pool.create(x).label(labeled, y[labeled])
    stop_set = stop.stop_set(40, 10, seed=3)
    batch = np.array([5, 12, -1], np.int32)
    needs = RoundOutputs._fields
    outputs = jax.jit(stop.outputs_function(train, needs))(
        params, previous, pool, stop_set, batch, np.float32(0.75)
    )
    probs = np.asarray(jax.nn.softmax(train.predict(params, jnp.asarray(x))))
    assert int(outputs.labeled) == 4 and float(outputs.validation) == 0.75
    np.testing.assert_allclose(outputs.stop_probs, probs[stop_set], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs.pool_probs, probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs.unlabeled, ~np.isin(np.arange(40), labeled))
    before = np.argmax(np.asarray(train.predict(previous, jnp.asarray(x))), axis=1)
    np.testing.assert_array_equal(outputs.batch_predictions[:2], before[[5, 12]])
    np.testing.assert_array_equal(outputs.batch_labels, [y[5], y[12], -1])
    only = stop.outputs_function(train, ("labeled",))(params, previous, pool, stop_set, batch, 0.0)
    assert only.stop_probs is None and only.pool_probs is None and int(only.labeled) == 4
    # The stop set: distinct, sorted, by seed, the whole pool when it is smaller.
    assert len(set(stop_set)) == 10 and list(stop_set) == sorted(stop_set)
    np.testing.assert_array_equal(stop_set, stop.stop_set(40, 10, seed=3))
    assert not np.array_equal(stop_set, stop.stop_set(40, 10, seed=4))
    np.testing.assert_array_equal(stop.stop_set(40, 1000, seed=3), np.arange(40))

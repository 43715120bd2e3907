"""The ``jaxal`` command end to end on digits (2 rounds, tiny budgets): results, figure,
config files, resume (after a stop, a SIGKILL, or with more rounds), and clear errors without
tracebacks."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxal import cli
from jaxal.runner import checkpoint as _checkpoint
from jaxal.runner import experiment as _experiment
from jaxal.runner.config import make_config, read_toml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--rounds", "2", "--budget", "5", "--initial", "10", "--steps", "15"]
TIMING_KEYS = ("select_seconds", "train_seconds", "compile_seconds", "wall_seconds")


def run(capsys, *args):
    """``jaxal`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read(directory):
    with open(os.path.join(directory, "results.json")) as file:
        return json.load(file)


def without_timing(value):
    """``value`` with every timing field dropped (they differ from run to run)."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One run of two strategies x two seeds from a config file overridden by flags."""
    directory = tmp_path_factory.mktemp("run")
    config = directory / "config.toml"
    config.write_text('strategy = ["margin"]\nrounds = 7\nseeds = 2\nsteps = 15\n')
    out = directory / "out"
    status = cli.main(
        ["run", "--config", str(config), "--strategy", "entropy,random", *TINY, "--out", str(out)]
    )
    return status, str(out)


def test_run_writes_every_round(finished):
    status, out = finished
    assert status == 0
    results = read(out)
    assert results["complete"] is True
    assert results["config"]["strategy"] == ["entropy", "random"]  # the flag won
    assert results["config"]["seeds"] == 2  # from the file
    assert results["config"]["rounds"] == 2  # the flag won over the file's 7
    assert results["model"] == "mlp"
    assert [(e["strategy"], e["seed"]) for e in results["experiments"]] == [
        ("entropy", 0),
        ("entropy", 1),
        ("random", 0),
        ("random", 1),
    ]
    for experiment in results["experiments"]:
        rows = experiment["rounds"]
        assert [row["round"] for row in rows] == [0, 1, 2]
        assert [row["labeled"] for row in rows] == [10, 15, 20]
        assert all(0.0 <= row["test_accuracy"] <= 1.0 for row in rows)
        assert rows[0]["select_seconds"] is None and rows[0]["selected"] == []
        picked = [i for row in rows for i in row["selected"]]
        assert len(picked) == 10 and len(set(picked)) == 10
        assert all(row["train_seconds"] >= 0 for row in rows)
    # Same seed, same initial set and round-0 model, whatever the strategy.
    by_seed = {}
    for experiment in results["experiments"]:
        by_seed.setdefault(experiment["seed"], set()).add(experiment["rounds"][0]["test_accuracy"])
    assert all(len(accuracies) == 1 for accuracies in by_seed.values())


def test_run_writes_figure_config_and_checkpoints(finished):
    _, out = finished
    with open(os.path.join(out, "learning_curves.png"), "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(out, "config.json")) as file:
        assert json.load(file)["budget"] == 5
    assert len(glob.glob(os.path.join(out, "checkpoints", "*.npz"))) == 4
    assert not glob.glob(os.path.join(out, "**", ".tmp-*"), recursive=True)


def test_plot_redraws_the_figure(finished, capsys, tmp_path):
    _, out = finished
    target = tmp_path / "again.png"
    status, stdout, _ = run(capsys, "plot", out, "--output", target)
    assert status == 0 and "wrote" in stdout
    assert target.read_bytes()[:4] == b"\x89PNG"


def test_tables_and_progress(capsys, tmp_path):
    status, out, err = run(
        capsys, "run", "--strategy", "random", "--seeds", "1", *TINY, "--out", tmp_path
    )
    assert status == 0
    assert "round labeled" in out and "select s" in out and "train s" in out
    assert "mean test accuracy over 1 seed" in out
    assert "[3/3] random seed 0 round 2" in err  # the progress line (stderr is no terminal)


def test_resume_ends_with_the_same_results(capsys, tmp_path):
    common = ["--strategy", "badge,entropy", "--seeds", "1", "--warm-start", *TINY]
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    assert run(capsys, "run", *common, "--out", full)[0] == 0
    # Killed after 4 of 6 rounds: in the middle of the second experiment.
    status, _, err = run(capsys, "run", *common, "--out", stopped, "--stop-after", 4)
    assert status == 0 and "--resume" in err
    partial = read(stopped)
    assert partial["complete"] is False
    assert [len(e["rounds"]) for e in partial["experiments"]] == [3, 1]
    # A corrupt checkpoint is a clear error.
    broken = tmp_path / "broken"
    shutil.copytree(stopped, broken)
    (broken / "checkpoints" / "entropy-seed0.npz").write_bytes(b"PK\x03\x04 truncated")
    status, _, err = run(capsys, "run", "--resume", broken)
    assert status == 2 and "entropy-seed0.npz is unreadable" in err
    # A new run into the unfinished directory is refused; --resume continues it.
    status, _, err = run(capsys, "run", *common, "--out", stopped)
    assert status == 2 and "unfinished run" in err
    status, _, err = run(capsys, "run", "--resume", stopped)
    assert status == 0, err
    resumed = read(stopped)
    assert resumed["complete"] is True
    expected = read(full)
    assert resumed["config"].pop("out") != expected["config"].pop("out")
    assert without_timing(resumed) == without_timing(expected)


def test_config_files_in_examples_are_valid():
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "configs", "*.toml")))
    assert paths
    for path in paths:
        config = make_config(read_toml(path), path)
        assert config.strategy


def test_user_model_from_a_file(capsys, tmp_path):
    source = tmp_path / "my_model.py"
    source.write_text(
        "import flax.linen as nn\n\n"
        "class Tiny(nn.Module):\n"
        "    num_classes: int = 2\n\n"
        "    @nn.compact\n"
        "    def __call__(self, x, train: bool):\n"
        "        h = nn.relu(nn.Dense(8)(x.reshape(x.shape[0], -1)))\n"
        "        h = nn.Dropout(0.1, deterministic=not train)(h)\n"
        "        return nn.Dense(self.num_classes)(h), h\n"
    )
    status, _, err = run(
        capsys,
        "run",
        "--model",
        f"{source}:Tiny",
        "--strategy",
        "margin",
        "--seeds",
        "1",
        "--rounds",
        "1",
        "--budget",
        "5",
        "--steps",
        "5",
        "--out",
        tmp_path / "out",
    )
    assert status == 0, err
    assert read(tmp_path / "out")["model"] == f"{source}:Tiny"


def test_npz_dataset(capsys, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "blobs.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(60, 4)),
        y_train=rng.integers(0, 3, 60),
        x_test=rng.normal(size=(20, 4)),
        y_test=rng.integers(0, 3, 20),
    )
    status, _, err = run(
        capsys,
        "run",
        "--dataset",
        path,
        "--strategy",
        "random",
        "--seeds",
        "1",
        *TINY,
        "--normalization",
        "features",
        "--out",
        tmp_path / "out",
    )
    assert status == 0, err
    assert read(tmp_path / "out")["dataset"]["train_points"] == 60


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "entropy,nope"], "unknown strategy 'nope'"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--budget", "5000"], "budget too large for the pool"),
        (["--rounds", "-1"], "--rounds must be >= 0"),
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--model", "no_such_module_x:Net"], "cannot import no_such_module_x"),
        (["--config", "missing.toml"], "config file missing.toml does not exist"),
        (["--resume", "nowhere"], "no run there"),
    ],
)
def test_errors_are_one_clear_line(capsys, tmp_path, args, message):
    out_flag = [] if "--resume" in args else ["--out", tmp_path / "out"]
    status, out, err = run(capsys, "run", *args, *out_flag)
    assert status == 2
    assert err.startswith("jaxal: error: ") and message in err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "out").exists()  # nothing written before the input is checked


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rounds = \n", "is not valid TOML"),
        ('rounds = "ten"\n', "rounds must be an integer, got 'ten'"),
        ("roundz = 3\n", "unknown field 'roundz' (did you mean 'rounds'?)"),
        ("strategy = [1, 2]\n", "strategy must be a list of strategy names"),
        ("[hparams.entropy]\nbogus = 1\n", "strategy 'entropy' with {'bogus': 1}"),
        ("[hparams.nope]\nx = 1\n", "unknown strategy 'nope'"),
    ],
)
def test_config_errors(capsys, tmp_path, text, message):
    status, _, err = run(capsys, "run", "--config", write(tmp_path, text))
    assert status == 2 and message in err and "Traceback" not in err


def test_resume_with_a_broken_config_json(capsys, finished, tmp_path):
    _, out = finished
    broken = tmp_path / "broken"
    broken.mkdir()
    with open(os.path.join(out, "config.json")) as file:
        config = json.load(file)
    del config["budget"]
    (broken / "config.json").write_text(json.dumps(config))
    status, _, err = run(capsys, "run", "--resume", broken)
    assert status == 2 and "missing field 'budget'" in err
    (broken / "config.json").write_text("{not json")
    status, _, err = run(capsys, "run", "--resume", broken)
    assert status == 2 and "not readable JSON" in err
    status, _, err = run(capsys, "run", "--resume", out, "--rounds", "3", "--budget", "4")
    assert status == 2 and "drop --budget" in err and "--rounds" not in err.split("drop")[1]


def test_python_dash_m_exit_status_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "jaxal", "run", "--strategy", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("jaxal: error: unknown strategy 'nope'")
    assert "Traceback" not in result.stderr


# Resume with more rounds, and after a SIGKILL: both must end with the numbers of an
# uninterrupted run of four rounds with the settings of ``finished``.
FOUR_ROUNDS = ["--strategy", "entropy,random", "--seeds", "2", *TINY, "--rounds", "4"]


@pytest.fixture(scope="module")
def four_rounds(tmp_path_factory):
    """``results.json`` of an uninterrupted run of four rounds."""
    out = tmp_path_factory.mktemp("four") / "out"
    assert cli.main(["run", *FOUR_ROUNDS, "--out", str(out)]) == 0
    return read(out)


def numbers(results):
    """``results`` without timing fields and without the output directory."""
    config = dict(results["config"])
    del config["out"]
    return without_timing({**results, "config": config})


def saved_rounds(directory):
    with open(os.path.join(directory, "config.json")) as file:
        return json.load(file)["rounds"]


def test_resume_with_more_rounds_extends_a_finished_run(capsys, tmp_path, finished, four_rounds):
    out = tmp_path / "out"
    shutil.copytree(finished[1], out)  # 2 rounds, finished
    two = read(out)
    status, _, err = run(capsys, "run", "--resume", out, "--rounds", 4)
    assert status == 0, err
    extended = read(out)
    assert extended["complete"] is True and saved_rounds(out) == 4
    for before, after in zip(two["experiments"], extended["experiments"], strict=True):
        assert after["rounds"][:3] == before["rounds"]  # kept as they were, timings too
        assert [row["round"] for row in after["rounds"]] == [0, 1, 2, 3, 4]
    assert numbers(extended) == numbers(four_rounds)
    # The saved number of rounds again: a plain resume, with nothing left to run.
    status, _, err = run(capsys, "run", "--resume", out, "--rounds", 4)
    assert status == 0, err
    assert numbers(read(out)) == numbers(four_rounds)


def test_resume_rounds_can_only_grow_within_the_pool(capsys, finished):
    _, out = finished  # 2 rounds
    status, _, err = run(capsys, "run", "--resume", out, "--rounds", 1)
    assert status == 2 and "Traceback" not in err
    assert "--rounds 1 is fewer than the saved rounds (2)" in err and "can only grow" in err
    # 1347 pool points, 10 initial, 5 per round: at most 267 rounds.
    status, _, err = run(capsys, "run", "--resume", out, "--rounds", 1000)
    assert status == 2 and "budget too large for the pool" in err
    assert "--rounds can be at most 267" in err
    assert saved_rounds(out) == 2 and read(out)["complete"] is True


# Runs ``jaxal`` as ``python -m jaxal`` does, with ``_experiment.run_round`` wrapped: after
# ``after`` rounds are saved, the next round runs, then the process touches ``marker`` and
# hangs before saving that round, so that the test's SIGKILL lands inside a round.
HANG_IN_A_ROUND = """
import runpy, sys, time
from jaxal.runner import experiment as _experiment

marker, after = sys.argv[1], int(sys.argv[2])
real_run_round = _experiment.run_round
saved = 0


def run_round(*args, **kwargs):
    global saved
    state = real_run_round(*args, **kwargs)
    if saved == after:
        open(marker, "w").close()
        time.sleep(600)
    saved += 1
    return state


_experiment.run_round = run_round
sys.argv = ["jaxal", *sys.argv[3:]]
runpy.run_module("jaxal", run_name="__main__", alter_sys=True)
"""


def test_resume_after_sigkill_in_a_round(capsys, tmp_path, four_rounds):
    out, marker = tmp_path / "out", tmp_path / "hanging"
    script = tmp_path / "hang.py"
    script.write_text(HANG_IN_A_ROUND)
    # 12 rounds saved: entropy's (2 seeds x 5) and random's rounds 0 and 1 for seed 0;
    # killed in that experiment's round 2.
    command = [sys.executable, str(script), str(marker), "12"]
    command += ["run", *FOUR_ROUNDS, "--out", str(out)]
    with open(tmp_path / "log", "w") as log:
        # The script runs from tmp_path: put this checkout's jaxal first on its path.
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
        }
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not marker.exists() and process.poll() is None:
                assert time.monotonic() < deadline, "the run never reached its 13th round"
                time.sleep(0.05)
            assert process.poll() is None, (tmp_path / "log").read_text()
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    checkpoints = out / "checkpoints"
    rows = {path.name: len(_experiment.read_rows(str(path))) for path in checkpoints.iterdir()}
    assert rows == {"entropy-seed0.npz": 5, "entropy-seed1.npz": 5, "random-seed0.npz": 2}
    assert read(out)["complete"] is False
    status, _, err = run(capsys, "run", "--resume", out)
    assert status == 0, err
    resumed = read(out)
    assert resumed["complete"] is True
    assert numbers(resumed) == numbers(four_rounds)
    assert not glob.glob(os.path.join(out, "**", ".tmp-*"), recursive=True)


def test_atomic_writes_keep_the_umask_and_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    previous = os.umask(0o027)
    try:
        _checkpoint.atomic_write_json(str(path), {"round": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    with pytest.raises(TypeError):
        _checkpoint.atomic_write_bytes(str(path), "not bytes")  # fails mid-write
    assert json.loads(path.read_text()) == {"round": 1}
    assert os.listdir(tmp_path) == ["state.json"]

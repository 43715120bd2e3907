"""The ``jaxal`` command end to end on digits (2 rounds, tiny budgets): results, figure,
config files, resume, and clear errors without tracebacks."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxal import cli

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
        config = cli.make_config(cli.read_toml(path), path)
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
    status, _, err = run(capsys, "run", "--resume", out, "--rounds", "3")
    assert status == 2 and "drop --rounds" in err


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

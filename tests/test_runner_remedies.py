"""Errors that ``jaxal run`` can surface never advise only a Python call: each names the
command's own way too (a flag or a config key), and that way works."""

from __future__ import annotations

import json
import os
import re

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

import jaxal
from jaxal import cli
from jaxal.runner.config import FIELD_NAMES, RunConfig, make_config

BATCH_NORM_MODEL = """
import flax.linen as nn


class BNNet(nn.Module):
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool, mc_dropout: bool = False):
        h = nn.Dense(16)(x.reshape(x.shape[0], -1))
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
        h = nn.Dropout(0.2, deterministic=not (train or mc_dropout))(h)
        return nn.Dense(self.num_classes)(h), h
"""


def run(capsys, *args):
    """``jaxal`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_every_remedy_names_flags_that_exist():
    parser = cli.build_parser()
    for python_remedy, cli_remedy in cli.CLI_REMEDIES:
        message = cli.with_cli_remedy(f"something failed: use {python_remedy}...).")
        assert message.endswith(cli_remedy) and "with jaxal run:" in message
        flags = re.findall(r"--[a-z][a-z-]+", cli_remedy)
        assert flags
        for flag in flags:
            _, unknown = parser.parse_known_args(["run", flag, "{}"])
            assert flag not in unknown
    assert cli.with_cli_remedy("budget too large") == "budget too large"


@pytest.mark.slow
def test_batch_norm_with_mc_dropout_names_the_flag_and_the_flag_works(capsys, tmp_path):
    source = tmp_path / "bn_model.py"
    source.write_text(BATCH_NORM_MODEL)
    out = tmp_path / "out"
    args = ["run", "--model", f"{source}:BNNet", "--strategy", "bald", "--seeds", "1"]
    args += ["--rounds", "1", "--budget", "5", "--initial", "10", "--steps", "5", "--out", out]
    status, _, err = run(capsys, *args)
    assert status == 2 and "Traceback" not in err
    assert "from_flax(module, mc_kwargs={...})" in err  # the library's own advice, kept
    assert "with jaxal run:" in err
    assert """--mc-kwargs '{"train": false, "mc_dropout": true}'""" in err
    assert "mc_kwargs = {train = false, mc_dropout = true} in the --config file" in err
    # The advice, followed: the flag ...
    flag = ["--mc-kwargs", '{"train": false, "mc_dropout": true}', "--overwrite"]
    status, _, err = run(capsys, *args, *flag)
    assert status == 0, err
    with open(os.path.join(out, "config.json")) as file:
        assert json.load(file)["mc_kwargs"] == {"train": False, "mc_dropout": True}
    # ... or the config key.
    config = tmp_path / "run.toml"
    config.write_text("mc_kwargs = {train = false, mc_dropout = true}\n")
    status, _, err = run(capsys, *args, "--config", config, "--overwrite")
    assert status == 0, err
    with open(os.path.join(out, "results.json")) as file:
        assert json.load(file)["config"]["mc_kwargs"] == {"train": False, "mc_dropout": True}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{train: false}", "--mc-kwargs must be a JSON object such as"),
        ("[1, 2]", "--mc-kwargs must be a table of keyword arguments"),
    ],
)
def test_bad_mc_kwargs_are_one_clear_line(capsys, tmp_path, value, message):
    status, _, err = run(capsys, "run", "--mc-kwargs", value, "--out", tmp_path / "out")
    assert status == 2 and err.startswith("jaxal: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_a_config_json_from_before_mc_kwargs_still_loads():
    saved = RunConfig().to_dict()
    del saved["mc_kwargs"]
    assert make_config(saved, "config.json", require_all=True).mc_kwargs is None
    del saved["budget"]
    with pytest.raises(ValueError, match="missing field 'budget'"):
        make_config(saved, "config.json", require_all=True)
    assert "mc_kwargs" in FIELD_NAMES


def test_the_librarys_missing_inputs_message_gets_the_cli_way():
    module = jaxal.train.MLP(num_classes=3)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    params = jaxal.train.trainer(module, steps=1).init(jax.random.key(0), x).params
    strategy = jaxal.strategies.smi(jaxal.from_flax(module), 2)
    with pytest.raises(TypeError) as error:
        strategy.select(params, jaxal.Pool.create(x), jax.random.key(1))
    message = str(error.value)
    assert "jaxal.select(..., inputs=...)" in message  # the Python way
    shown = cli.with_cli_remedy(message)
    assert shown.startswith(message.rstrip("."))
    assert "--inputs STRATEGY.SET=FILE.npz (e.g. --inputs smi.query=query.npz)" in shown
    assert '[inputs.STRATEGY] SET = "FILE.npz" in the --config file' in shown


def digits_of_class(path, label, count=10):
    digits = load_digits()
    keep = digits.target == label
    np.savez(path, x=digits.data[keep][:count], y=digits.target[keep][:count])
    return str(path)


SMI = ["--seeds", "1", "--rounds", "2", "--budget", "10", "--initial", "20", "--steps", "50"]


def test_smi_without_its_query_set_says_how_to_give_it(capsys, tmp_path):
    out = tmp_path / "out"
    status, _, err = run(capsys, "run", "--strategy", "smi", *SMI, "--out", out)
    assert status == 2 and "Traceback" not in err
    assert "strategy 'smi' needs the set query besides the pool" in err
    assert "--inputs smi.query=FILE.npz" in err
    assert '[inputs.smi] query = "FILE.npz" in the --config file' in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("smi", "--inputs takes STRATEGY.SET=FILE.npz (e.g. smi.query=query.npz), got 'smi'"),
        ("nope.query=q.npz", "unknown strategy 'nope'"),
        ("entropy.query=q.npz", "inputs (--inputs) of 'entropy', which this run does not use"),
    ],
)
def test_bad_inputs_are_one_clear_line(capsys, tmp_path, value, message):
    out = tmp_path / "out"
    status, _, err = run(capsys, "run", "--strategy", "smi", "--inputs", value, "--out", out)
    assert status == 2 and err.startswith("jaxal: error: ") and message in err
    assert not out.exists()


@pytest.mark.slow
def test_smi_with_a_query_set_from_the_command_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    digits_of_class(tmp_path / "threes.npz", 3)
    args = ["run", "--strategy", "smi", "--inputs", "smi.query=threes.npz", *SMI]
    status, _, err = run(capsys, *args, "--out", "out")
    assert status == 0, err
    with open("out/results.json") as file:
        results = json.load(file)
    assert results["config"]["inputs"] == {"smi": {"query": str(tmp_path / "threes.npz")}}
    picked = [r for row in results["experiments"][0]["rounds"] for r in row["selected_rows"]]
    labels = load_digits().target[picked]
    assert len(labels) == 20 and np.mean(labels == 3) >= 0.8, labels  # random: about 0.1
    # A set the strategy does not take is named.
    status, _, err = run(
        capsys, "run", "--strategy", "smi", "--inputs", "smi.private=threes.npz", "--out", "x"
    )
    assert status == 2 and "--inputs smi.private: strategy 'smi' takes query" in err

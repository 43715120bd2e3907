"""The ``jaxal`` command's options that need no experiment: ``--version``."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

import jaxal
from jaxal import cli
from jaxal.runner.config import check_hparams, make_config, read_toml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxal {jaxal.__version__}"


def test_python_dash_m_version():
    result = subprocess.run(
        [sys.executable, "-m", "jaxal", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"jaxal {jaxal.__version__}"
    assert jaxal.__version__.count(".") >= 1


def run(capsys, *args):
    """``jaxal`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    ("text", "flags", "unused", "strategies"),
    [
        ('strategy = ["entropy"]\n[hparams.bald]\nmc_samples = 4\n', [], "'bald'", "entropy"),
        # The flag replaces the file's strategies: the file's table no longer applies.
        (
            'strategy = ["bald"]\n[hparams.bald]\nmc_samples = 4\n',
            ["--strategy", "margin,random"],
            "'bald'",
            "margin, random",
        ),
        # No strategy in the file: the defaults (entropy, badge, random).
        ("[hparams.coreset]\n[hparams.bald]\n", [], "'coreset', 'bald'", "entropy, badge, random"),
    ],
)
def test_hparams_of_an_unused_strategy_are_refused(
    capsys, tmp_path, text, flags, unused, strategies
):
    config = tmp_path / "run.toml"
    config.write_text(text)
    out = tmp_path / "out"
    status, stdout, err = run(capsys, "run", "--config", config, *flags, "--out", out)
    assert status == 2 and stdout == ""
    assert err.startswith(f"jaxal: error: config file {config}: [hparams.")
    assert f"sets hyperparameters of {unused}, which this run does not use" in err
    assert f"(its strategies: {strategies})" in err
    assert "to strategy (--strategy) or remove the table" in err
    assert not out.exists()


def test_example_configs_set_hparams_only_of_their_strategies():
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "configs", "*.toml")))
    assert paths
    for path in paths:
        check_hparams(make_config(read_toml(path), path), path)

"""The ``jaxal`` command's options that need no experiment: ``--version``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import jaxal
from jaxal import cli

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

"""``jaxal run``'s output directory: an earlier run there, finished or not, is never
deleted or replaced without ``--overwrite``; every file written takes the user's umask."""

from __future__ import annotations

import json
import os
import stat

import pytest

from jaxal import cli
from jaxal.runner import loop

TINY = ["--strategy", "random", "--seeds", "1", "--rounds", "1", "--budget", "5"]
TINY += ["--initial", "10", "--steps", "5"]


def run(capsys, *args):
    """``jaxal`` in-process: (exit status, stdout, stderr)."""
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def snapshot(directory):
    """Every file under ``directory``: relative path -> (bytes, mtime_ns)."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                files[os.path.relpath(path, directory)] = (file.read(), os.stat(path).st_mtime_ns)
    return files


@pytest.mark.slow
def test_a_finished_run_is_never_replaced_without_overwrite(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "run", *TINY)  # the default --out, results
    assert status == 0, err
    before = snapshot("results")
    assert {"results.json", "config.json", "learning_curves.png"} <= set(before)
    assert "checkpoints/random-seed0.npz" in before
    for args in (["--strategy", "entropy"], ["--strategy", "entropy", "--out", "results"]):
        status, out, err = run(capsys, "run", *TINY, *args)
        assert status == 2 and out == ""
        assert "--out results holds a finished run" in err
        assert "--overwrite" in err and "jaxal run --resume results --rounds N" in err
        assert snapshot("results") == before  # nothing deleted, rewritten or added
    status, _, err = run(capsys, "run", *TINY, "--strategy", "entropy", "--overwrite")
    assert status == 0, err
    with open("results/results.json") as file:
        results = json.load(file)
    assert results["config"]["strategy"] == ["entropy"]
    assert sorted(os.listdir("results/checkpoints")) == ["entropy-seed0.npz"]


def test_an_unfinished_or_partial_run_is_refused_too(tmp_path):
    for name in ("config.json", "results.json", "learning_curves.png", "checkpoints"):
        directory = tmp_path / name.replace(".", "_")
        directory.mkdir()
        target = directory / name
        target.mkdir() if name == "checkpoints" else target.write_text("{}")
        assert loop.earlier_run(str(directory)) == "unfinished"
        with pytest.raises(ValueError, match="holds an unfinished run") as error:
            loop.prepare_out(str(directory), overwrite=False)
        assert f"jaxal run --resume {directory}" in str(error.value)
        assert target.exists()
        loop.prepare_out(str(directory), overwrite=True)
        assert not target.exists()


def test_other_files_in_out_are_kept(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert loop.earlier_run(str(tmp_path)) is None
    loop.prepare_out(str(tmp_path), overwrite=False)
    (tmp_path / "results.json").write_text(json.dumps({"complete": True, "experiments": []}))
    assert loop.earlier_run(str(tmp_path)) == "finished"
    loop.prepare_out(str(tmp_path), overwrite=True)
    assert os.listdir(tmp_path) == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_every_written_file_takes_the_umask(capsys, tmp_path):
    out = tmp_path / "out"
    previous = os.umask(0o022)
    try:
        status, _, err = run(capsys, "run", *TINY, "--out", out)
        assert status == 0, err
        status, _, err = run(capsys, "plot", out, "--output", out / "again.png")
        assert status == 0, err
    finally:
        os.umask(previous)
    modes = {
        os.path.relpath(os.path.join(root, name), out): stat.S_IMODE(
            os.stat(os.path.join(root, name)).st_mode
        )
        for root, _, names in os.walk(out)
        for name in names
    }
    assert set(modes) == {
        "config.json",
        "results.json",
        "learning_curves.png",
        "again.png",
        "checkpoints/random-seed0.npz",
    }
    assert all(mode == 0o644 for mode in modes.values()), modes

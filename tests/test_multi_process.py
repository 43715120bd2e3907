"""Two processes as one JAX cluster pick exactly what one process picks.

Two worker processes (tests/multi_process_worker.py) form a cluster on this machine
(localhost coordinator, gloo CPU collectives, one CPU device each), each holding half of
the rows of conftest's pool, and run the jitted round of the first case of every strategy
of tests/test_contract.py's table; this process computes the same selections on the whole,
unsharded pool and compares.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import jaxal
from tests.conftest import N_POINTS, labeled_mask
from tests.test_contract import BUDGET, CASES, _built

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 2
TIMEOUT_S = 600  # both workers, start to end (about 1-2 minutes on two busy cores)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["JAX_PLATFORMS"] = "cpu"
    # No persistent compilation cache: two processes that loaded their programs from one
    # hung (jax 0.10, gloo), and so did sharing one compilation between them through it.
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _run_workers(tmp_path: Path, while_running) -> list[dict]:
    """Start the workers, call ``while_running()`` meanwhile, wait for both; kill both
    when one fails or the time is up. Returns both workers' records."""
    port = _free_port()
    outs = [tmp_path / f"worker{i}.json" for i in range(PROCESSES)]
    logs = [tmp_path / f"worker{i}.log" for i in range(PROCESSES)]
    procs = []
    try:
        for i in range(PROCESSES):
            with open(logs[i], "w") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.multi_process_worker"]
                        + [str(port), str(i), str(outs[i])],
                        cwd=ROOT,
                        env=_worker_env(),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        while_running()
        deadline = time.monotonic() + TIMEOUT_S
        while any(p.poll() is None for p in procs):
            failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if failed:
                i = failed[0]
                pytest.fail(f"worker {i} exited with {procs[i].returncode}:\n{_tail(logs[i])}")
            if time.monotonic() > deadline:
                pytest.fail(f"workers still running after {TIMEOUT_S} s:\n{_tail(logs[0])}")
            time.sleep(0.2)
        for i, p in enumerate(procs):
            assert p.returncode == 0, f"worker {i} exited with {p.returncode}:\n{_tail(logs[i])}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [json.loads(out.read_text()) for out in outs]


def test_two_processes_pick_what_one_process_picks(model, params, pool, key, tmp_path):
    expected: dict[str, list[int]] = {}

    def single_process():
        # The select that tests/test_contract.py compiles (in this process, or in the
        # persistent cache) for the same pool, key and strategy.
        for name, cases in CASES.items():
            indices = _built(name, cases[0], model).select(params, pool, key)
            expected[name] = np.asarray(indices).tolist()

    workers = _run_workers(tmp_path, single_process)

    half = N_POINTS // PROCESSES
    assert [w["rows"] for w in workers] == [[0, half], [half, N_POINTS]]
    assert set(expected) == set(jaxal.strategies.REGISTRY)
    for name, want in expected.items():
        for i, worker in enumerate(workers):
            got = worker["strategies"][name]
            assert "error" not in got, f"{name}, process {i}: {got['error']}"
            assert got["indices"] == want, f"{name}, process {i}"
            assert got["replicated"] and got["rows_sharded"], f"{name}, process {i}"
            # The round's new pool: this process's rows of the labeled mask, picks marked.
            start, stop = worker["rows"]
            mask = labeled_mask()
            mask[want] = True
            assert got["local_labeled"] == mask[start:stop].tolist(), f"{name}, process {i}"

    for i, worker in enumerate(workers):
        checks = worker["checks"]
        assert checks["round_traces"] == 1, f"process {i}"
        assert checks["labeled_after_rounds"] == labeled_mask().sum() + 3 * BUDGET, f"process {i}"
        assert checks["eager_indices"] == expected["entropy"], f"process {i}"
        assert f"budget={BUDGET} is larger than the number of unlabeled points (4)" in str(
            checks["eager_budget_error"]
        ), f"process {i}"
        assert "x must be finite" in str(checks["create_nan_error"]), f"process {i}"
        assert "y must lie in [-1, num_classes=4); got 9" in str(checks["create_label_error"]), (
            f"process {i}"
        )

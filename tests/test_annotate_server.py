"""``jaxal annotate`` as a process: killed with SIGKILL while labels arrive and while the
worker trains, then started again on its store, nothing submitted is lost and labeling
continues where it stopped."""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading

import httpx
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from jaxal.annotate import server  # noqa: E402
from tests.annotate_support import FAST, tiny_digits, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Served:
    """A ``jaxal annotate`` process and the address it printed."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jaxal", "annotate", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""
        while not self.url:
            try:
                line = self.lines.get(timeout=120)
            except queue.Empty:
                self.kill()
                raise AssertionError("no address printed:\n" + "".join(self.output)) from None
            if "serving http://" in line:
                self.url = line.split("serving ", 1)[1].split()[0]
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def state(self) -> dict:
        return self.client.get("/api/state").json()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        if hasattr(self, "client"):
            self.client.close()


@pytest.fixture
def env(request):
    """The tests' environment, with the persistent compilation cache of the test run."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(cache.mkdir("jax"))
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    return env


def label(served: Served, tab: str, point: dict, value: int) -> httpx.Response:
    return served.client.post(
        "/api/label",
        json={
            "client": tab,
            "round": point["round"],
            "index": point["index"],
            "label": value,
            "annotator": "tester",
        },
    )


def stored_labels(path: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute(
            "SELECT idx, label, round, annotator, created_at FROM labels "
            "WHERE undone_at IS NULL ORDER BY id"
        ).fetchall()
    finally:
        db.close()


def test_kill_and_restart_lose_no_label(tmp_path, env):
    dataset, truth = tiny_digits(str(tmp_path / "digits.npz"))
    store = str(tmp_path / "labels.sqlite")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    first = Served(["--dataset", dataset, "--store", store, "--rounds", "3", *flags], env)
    try:
        wait_for(lambda: first.state()["round"], what="the first batch")
        point = first.client.post("/api/next", json={"client": "a"}).json()["point"]
        answered = []
        for _ in range(3):
            answer = label(first, "a", point, int(truth[point["index"]]))
            assert answer.status_code == 200
            answered.append(point["index"])
            point = answer.json()["point"]
        # A fourth label on its way while the process is killed.
        late: list[httpx.Response | Exception] = []

        def send() -> None:
            try:
                late.append(label(first, "a", point, int(truth[point["index"]])))
            except httpx.HTTPError as error:
                late.append(error)

        sender = threading.Thread(target=send)
        sender.start()
        first.kill()
        sender.join(30)
    finally:
        if first.process.poll() is None:
            first.kill()
    before = stored_labels(store)
    indices = [row[0] for row in before]
    assert indices[:3] == answered  # every answered label is on disk
    if late and isinstance(late[0], httpx.Response) and late[0].status_code == 200:
        assert indices == [*answered, point["index"]]
    assert len(indices) in (3, 4)

    # Started again with the store alone: its own settings, the same batch, the same labels.
    second = Served(["--store", store], env)
    try:
        state = wait_for(lambda: (s := second.state())["round"] and s, what="the store's batch")
        assert state["round"]["index"] == 0 and state["round"]["resolved"] == len(indices)
        assert state["labeled"] == len(indices) and state["budget"] == FAST["budget"]
        assert stored_labels(store) == before
        point = second.client.post("/api/next", json={"client": "b"}).json()["point"]
        while point is not None and point["round"] == 0:
            assert point["index"] not in indices
            answer = label(second, "b", point, int(truth[point["index"]]))
            assert answer.status_code == 200
            point = answer.json()["point"]
        # Killed right after the batch closed, while the worker trains and picks.
        second.kill()
    finally:
        if second.process.poll() is None:
            second.kill()
    closed = stored_labels(store)
    assert len(closed) == FAST["budget"] and closed[: len(before)] == before

    third = Served(["--store", store], env)
    try:
        state = wait_for(
            lambda: (s := third.state())["round"] and s["round"]["index"] == 1 and s,
            what="the second batch",
        )
        assert state["labeled"] == FAST["budget"] and len(state["chart"]) == 1
        assert stored_labels(store) == closed
    finally:
        third.kill()


def test_a_store_refuses_other_settings(tmp_path, env):
    dataset, _ = tiny_digits(str(tmp_path / "digits.npz"))
    store = str(tmp_path / "labels.sqlite")
    given = {"dataset": dataset, **FAST}
    opened, _, data = server.open_project(store, given)
    server.save_project(opened, server.project_config.resolve(given, None, store), data)
    result = subprocess.run(
        [sys.executable, "-m", "jaxal", "annotate", "--store", store, "--budget", "7"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--budget 7 (the store has 5)" in result.stderr
    assert "give a new --store" in result.stderr


def test_a_new_store_needs_a_dataset_and_is_not_left_behind(tmp_path):
    store = tmp_path / "labels.sqlite"
    with pytest.raises(ValueError, match="give --dataset"):
        server.open_project(str(store), {})
    with pytest.raises(ValueError, match="names no classes"):
        import numpy as np

        np.savez(tmp_path / "x.npz", x=np.ones((4, 3)))
        server.open_project(str(store), {"dataset": str(tmp_path / "x.npz")})
    assert not store.exists()


def test_only_loopback_hosts_go_without_a_token():
    assert server.is_loopback("127.0.0.1") and server.is_loopback("localhost")
    assert server.is_loopback("::1") and server.is_loopback("127.0.0.2")
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("192.168.1.5")
    assert not server.is_loopback("example.org")
    assert server.address("::1", 80) == "http://[::1]:80/"


def test_serve_is_the_default_action(tmp_path, capsys):
    from jaxal import cli
    from jaxal.annotate.cli import with_default_action

    assert with_default_action(["annotate", "--dataset", "d"]) == [
        "annotate",
        "serve",
        "--dataset",
        "d",
    ]
    assert with_default_action(["annotate", "export", "--format", "csv"])[1] == "export"
    assert with_default_action(["run", "--budget", "3"]) == ["run", "--budget", "3"]
    store = tmp_path / "new.sqlite"
    assert cli.main(["annotate", "--store", str(store)]) == 2
    assert "is new: give --dataset" in capsys.readouterr().err
    assert not store.exists()
    assert cli.main(["annotate", "export", "--store", str(store), "--format", "csv"]) == 2
    assert "does not exist" in capsys.readouterr().err

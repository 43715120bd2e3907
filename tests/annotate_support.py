"""Shared pieces of the ``jaxal annotate`` tests: a tiny digits pool, the settings that keep
rounds fast, a project built around a store, and a real uvicorn server in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

POOL = 60
HELDOUT = 40
FAST = {
    "budget": 5,
    "steps": 10,
    "train_batch_size": 16,
    "cold_start": "random",
    "strategy": "margin",
}


def tiny_digits(path: str, pool: int = POOL) -> tuple[str, np.ndarray]:
    """An ``.npz`` of ``pool`` digits (x, no labels used) and a held-out split; returns the
    path and the pool's true labels (what a person would answer)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(
        path,
        x=digits.data[:pool],
        x_test=digits.data[pool : pool + HELDOUT],
        y_test=digits.target[pool : pool + HELDOUT],
        classes=np.array([str(c) for c in range(10)]),
    )
    return path, digits.target[:pool]


def project(
    store_path: str,
    dataset: str,
    learner: Any = None,
    annotator: str = "tester",
    lease: float = 120.0,
    **settings: Any,
) -> Any:
    """A :class:`jaxal.annotate.app.Project` on a new store (a given learner is reused, so
    its compiled functions are)."""
    from jaxal.annotate.app import Project
    from jaxal.annotate.learner import Learner
    from jaxal.annotate.server import open_project, save_project
    from jaxal.annotate.worker import Worker

    store, config, data = open_project(store_path, {"dataset": dataset, **FAST, **settings})
    save_project(store, config, data)
    if learner is None:
        learner = Learner(config, data)
    else:
        learner.config = config
    worker = Worker(store, learner, rounds=config.rounds, poll=0.2)
    return Project(config, data, store, worker, annotator, lease)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_for(condition: Callable[[], Any], timeout: float = 90.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.1)

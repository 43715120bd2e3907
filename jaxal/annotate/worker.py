"""The background worker: whenever the store has no open round, train on the labels so
far, pick the next batch with the jitted round and store it, in a thread of its own, so
the page keeps answering while the model trains.

A status hook turns each round's numbers into the sentence the page shows under its
title, e.g. "labeled 40 of 200; accuracy 0.91 on the held-out split". Any callable
``(RoundReport) -> str`` can take the default's place, for instance one that feeds each
round's predictions to a stopping rule and reports its state.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from jaxal.annotate.learner import Learner
from jaxal.annotate.store import Store


class RoundReport(NamedTuple):
    """What a status hook sees after each round's training.

    Attributes:
        round: the round about to be labeled (or the final entry).
        labeled: the labels the model was trained on.
        skipped: the points skipped so far.
        pool_size: N, the pool's points.
        accuracy: the held-out accuracy (None without a held-out split or a label).
        history: the held-out accuracy of every round so far, this one last.
        probabilities: float32 [N, C], the model's softmax over the pool (None before any
            label).
        picks: int32 [K], the batch picked (empty in the final entry).
        final: True when nothing is left to pick (pool or rounds used up).
    """

    round: int
    labeled: int
    skipped: int
    pool_size: int
    accuracy: float | None
    history: tuple[float | None, ...]
    probabilities: np.ndarray | None
    picks: np.ndarray
    final: bool


StatusHook = Callable[[RoundReport], str]


def default_status(report: RoundReport) -> str:
    """ "labeled 40 of 200; accuracy 0.91 on the held-out split" (and "done" at the end)."""
    parts = [f"labeled {report.labeled} of {report.pool_size}"]
    if report.skipped:
        parts.append(f"{report.skipped} skipped")
    if report.accuracy is not None:
        parts.append(f"accuracy {report.accuracy:.2f} on the held-out split")
    if report.final:
        parts.append("done: nothing left to pick")
    return "; ".join(parts)


class Worker:
    """Makes rounds for ``store`` with ``learner`` in a daemon thread.

    Args:
        store: the labeling store.
        learner: trains and picks.
        rounds: rounds with picks to make, or None until the pool is used up.
        status: the status hook (default :func:`default_status`).
        poll: seconds between looks at the store when nothing wakes the worker (labels
            imported by another process close rounds too).
        log: where failures are reported (default: print to stderr).
    """

    def __init__(
        self,
        store: Store,
        learner: Learner,
        rounds: int | None = None,
        status: StatusHook = default_status,
        poll: float = 1.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.learner = learner
        self.rounds = rounds
        self.status = status
        self.poll = poll
        self.log = log or _print_error
        self.busy = ""
        self.error = ""
        self._failed_at: tuple[int, int] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="jaxal-annotate", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end after its current round, and wait up to ``timeout``."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look at the store now (a round may have closed)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as error:  # reported on the page and in the terminal
                self.busy = ""
                self.error = f"{type(error).__name__}: {error}"
                self._failed_at = self.store.labels_version()
                self.log(
                    "jaxal annotate: the worker failed; it tries again when the labels change\n"
                    + traceback.format_exc()
                )
            self._wake.wait(self.poll)
            self._wake.clear()

    def step(self) -> bool:
        """Make the next round if the store needs one.

        Returns:
            True if a round (or the final entry) was stored.
        """
        while self.store.needs_round():
            version = self.store.labels_version()
            if version == self._failed_at:
                return False
            latest = self.store.latest_round()
            round_index = 0 if latest is None else latest.round + 1
            labels = [(label.point, label.label) for label in self.store.labels()]
            with_class = sum(label is not None for _, label in labels)
            pick = self.rounds is None or round_index < self.rounds
            budget = self.learner.config.budget
            self.busy = f"training on {with_class} label{'s' * (with_class != 1)}" + (
                f" and picking the next {budget} points" if pick else ""
            )
            result = self.learner.run(labels, round_index, pick=pick)
            history = tuple(r.accuracy for r in self.store.rounds()) + (result.accuracy,)
            final = len(result.picks) == 0
            report = RoundReport(
                round_index,
                result.labeled,
                result.skipped,
                self.learner.data.size,
                result.accuracy,
                history,
                result.probabilities,
                result.picks,
                final,
            )
            status = self.status(report)
            stored = self.store.add_round(
                round_index,
                result.strategy,
                result.labeled,
                result.accuracy,
                {**{f"{k}_seconds": round(v, 3) for k, v in result.seconds.items()}},
                status,
                result.picks.tolist(),
                None if result.predicted is None else result.predicted.tolist(),
                None if result.confidence is None else result.confidence.tolist(),
                labels_version=version,
            )
            self.busy = ""
            if stored:
                self.error = ""
                self._failed_at = None
                return True
            time.sleep(0.05)  # the labels changed meanwhile: compute the round again
        return False


def _print_error(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)

"""The labeling page's status line with a stopping rule's state in it."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxal import stopping
from jaxal.annotate.worker import RoundReport, default_status

# The rules a labeling project can show, and the round outputs each is fed from.
RULES = ("stabilizing_predictions", "labeling_budget", "validation_plateau")
STOP_SET = 1000


class StoppingStatus:
    """A status hook (``(RoundReport) -> str``) that also updates a stopping rule.

    After every round with a trained model it feeds the rule what the round gave: the
    softmax on a fixed stop set of at most ``STOP_SET`` pool points (drawn once from
    ``seed``) for stabilizing predictions, the number of labels for the labeling budget,
    the held-out accuracy for the validation plateau, and appends the rule's sentence
    (``jaxal.stopping.describe``) to :func:`default_status`'s, with "stop labeling" once
    the rule fires. The rule's state lives in the server process: after a restart it
    starts again from the next round.

    Args:
        name: one of ``RULES``.
        hparams: the rule's hyperparameters (``jaxal.stopping.get(name)``'s keywords).
        seed: draws the stop set.

    Raises:
        ValueError: a rule the page cannot feed, or bad hyperparameters.
    """

    def __init__(self, name: str, hparams: dict[str, Any] | None = None, seed: int = 0):
        if name not in RULES:
            raise ValueError(f"--stop must be one of {', '.join(RULES)} on the labeling page")
        self.rule = stopping.get(name)(**(hparams or {}))
        self.seed = seed
        self.stop_set: np.ndarray | None = None
        self.state: Any = None

    def __call__(self, report: RoundReport) -> str:
        line = default_status(report)
        if report.probabilities is None:
            return line
        if self.rule.name == "validation_plateau" and report.accuracy is None:
            return f"{line}; {self.rule.name} needs a held-out split"
        outputs = self._outputs(report)
        if self.state is None:
            self.state = self.rule.init(outputs)
        self.state, stop, _ = self.rule.update(self.state, outputs)
        sentence = stopping.describe(self.rule, self.state)
        if bool(stop):
            sentence = f"stop labeling: {sentence}"
        return f"{line}; {sentence}"

    def _outputs(self, report: RoundReport) -> stopping.RoundOutputs:
        probabilities = np.asarray(report.probabilities, np.float32)
        if self.stop_set is None:
            n = probabilities.shape[0]
            rng = np.random.default_rng(self.seed)
            self.stop_set = np.sort(rng.choice(n, size=min(STOP_SET, n), replace=False))
        accuracy = None if report.accuracy is None else jnp.float32(report.accuracy)
        return stopping.RoundOutputs(
            labeled=jnp.int32(report.labeled),
            stop_probs=jnp.asarray(probabilities[self.stop_set]),
            validation=accuracy,
        )

"""The labeling page's status line with a stopping rule: fed from each round's report."""

from __future__ import annotations

import numpy as np
import pytest

from jaxal.annotate.stopping import StoppingStatus
from jaxal.annotate.worker import RoundReport


def report(round_, probabilities, accuracy=None, labeled=10):
    return RoundReport(
        round=round_,
        labeled=labeled,
        skipped=0,
        pool_size=len(probabilities),
        accuracy=accuracy,
        history=(),
        probabilities=probabilities,
        picks=np.zeros(0, np.int32),
        final=False,
    )


def softmax_of(classes, c=3):
    return np.eye(c, dtype=np.float32)[classes] * 0.9 + 0.1 / c


def test_stable_predictions_fire_after_the_window():
    """The same predictions every round: kappa 1 from the second round on, so a window
    of 2 fills (and fires) at the third report, not before."""
    rng = np.random.default_rng(0)
    probabilities = softmax_of(rng.integers(0, 3, 50))
    status = StoppingStatus("stabilizing_predictions", {"window": 2}, seed=1)
    lines = [status(report(r, probabilities)) for r in range(3)]
    assert [line.count("stop labeling") for line in lines] == [0, 0, 1]
    assert lines[0].startswith("labeled 10 of 50")


def test_changing_predictions_never_fire():
    rng = np.random.default_rng(1)
    status = StoppingStatus("stabilizing_predictions", {"window": 2}, seed=1)
    for r in range(5):
        line = status(report(r, softmax_of(rng.integers(0, 3, 50))))
        assert "stop labeling" not in line


def test_labeling_budget_counts_labels_since_the_first_round():
    probabilities = softmax_of(np.zeros(20, int))
    status = StoppingStatus("labeling_budget", {"budget": 15})
    assert "stop labeling" not in status(report(0, probabilities, labeled=10))
    assert "stop labeling" not in status(report(1, probabilities, labeled=20))
    assert "stop labeling" in status(report(2, probabilities, labeled=25))


def test_no_model_yet_and_no_heldout_split():
    status = StoppingStatus("validation_plateau")
    no_model = report(0, np.zeros((4, 3), np.float32))._replace(probabilities=None)
    assert status(no_model) == "labeled 10 of 4"
    assert "needs a held-out split" in status(report(1, softmax_of(np.zeros(4, int))))


def test_rules_the_page_cannot_feed_are_refused():
    with pytest.raises(ValueError, match="--stop must be one of"):
        StoppingStatus("overall_uncertainty")
    with pytest.raises(TypeError):
        StoppingStatus("labeling_budget", {"budgets": 3})

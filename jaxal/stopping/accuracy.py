"""Selected accuracy (Zhu, Wang and Hovy, COLING 2008, there called min-error; "selected
accuracy" in their 2010 article): stop when the model already predicts the labels of the
points it selects."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal.stopping._rule import CONTINUE, RoundOutputs, StoppingRule, field, number_in


class AccuracyState(NamedTuple):
    """The state of :func:`selected_accuracy`.

    Attributes:
        accuracy: float32 []: the share of the last batch's labeled points whose label the
            model predicted; 0 when it had none.
        checked: int32 []: the last batch's labeled points (labels >= 0); -1 before the
            first update.
        reason: int32 []: the last update's reason code.
    """

    accuracy: jax.Array
    checked: jax.Array
    reason: jax.Array


def selected_accuracy(*, threshold: float = 0.9) -> StoppingRule:
    """Stop when the model's predictions on the batch just labeled match its labels.

    accuracy = the share of the batch's points with a label (``batch_labels >= 0``) where
    ``batch_predictions`` (made by the model that selected the batch, before the labels
    were known) equals the label; stop when accuracy >= ``threshold``. A round without a
    labeled batch point (round 0) never stops. The batch comes from the strategy, so the
    rule measures accuracy where the strategy looks (the uncertain points, under
    uncertainty sampling), not on the pool at large.

    Args:
        threshold: in (0, 1] (default 0.9, chosen here; the papers' values are not
            reproduced).

    Returns:
        A :class:`StoppingRule` reading ``outputs.batch_predictions`` and
        ``outputs.batch_labels`` (int [B] each), with state :class:`AccuracyState`;
        reason 1: the accuracy reached the threshold.
    """
    threshold = number_in(threshold, "threshold", 0.0, 1.0, open_low=True)
    name = "selected_accuracy"

    def init(outputs: RoundOutputs) -> AccuracyState:
        del outputs
        return AccuracyState(jnp.float32(0.0), jnp.int32(-1), jnp.int32(0))

    def update(
        state: AccuracyState, outputs: RoundOutputs
    ) -> tuple[AccuracyState, jax.Array, jax.Array]:
        del state
        predictions = field(outputs, "batch_predictions", 1, name)
        labels = field(outputs, "batch_labels", 1, name)
        if predictions.shape != labels.shape:
            raise ValueError(
                f"outputs.batch_predictions {predictions.shape} and outputs.batch_labels "
                f"{labels.shape} must have one shape"
            )
        known = labels >= 0
        checked = jnp.sum(known).astype(jnp.int32)
        right = jnp.sum(known & (predictions == labels))
        accuracy = (right / jnp.maximum(checked, 1)).astype(jnp.float32)
        stop = (checked > 0) & (accuracy >= threshold)
        reason = stop.astype(jnp.int32)
        return AccuracyState(accuracy, checked, reason), stop, reason

    def describe(state: AccuracyState) -> str:
        checked = int(state.checked)
        if checked < 0:
            return "no round seen yet"
        if checked == 0:
            return "no labeled batch to check yet"
        accuracy = float(state.accuracy)
        reached = "reached" if int(state.reason) else "below"
        return (
            f"the model predicted {accuracy:.3f} of the {checked} labels just given "
            f"({reached} {threshold:g})"
        )

    reasons = (CONTINUE, "selected accuracy reached the threshold")
    needs = ("batch_predictions", "batch_labels")
    return StoppingRule(name, {"threshold": threshold}, init, update, describe, reasons, needs)

"""Stabilizing predictions (Bloodgood and Vijay-Shanker, "A Method for Stopping Active
Learning Based on Stabilizing Predictions and the Need for User-Adjustable Stopping",
CoNLL 2009): stop once successive models agree on a fixed stop set, by Cohen's kappa."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal.stopping._rule import CONTINUE, RoundOutputs, StoppingRule, field, number_in, rounds

AGGREGATES = ("mean", "min")


def cohen_kappa(a: jax.Array, b: jax.Array, num_classes: int) -> jax.Array:
    """Cohen's kappa between two labelings of the same S points over C classes.

    kappa = (p_o - p_e) / (1 - p_e), with p_o the share of points where ``a`` and ``b``
    agree (the trace of their confusion matrix over S) and p_e = sum_c pa_c pb_c the
    agreement expected from the two marginals (the confusion matrix's row and column
    sums over S). Written as 1 - q_o / q_e with the disagreements q_o = 1 - p_o and
    q_e = 1 - p_e = sum_c pa_c (1 - pb_c), a sum of non-negative terms: no cancellation
    near p_e = 1. The marginals are all the confusion matrix contributes, so it is never
    built: O(S + C).

    q_e = 0 only when ``a`` and ``b`` predict one and the same class everywhere; kappa is
    then 0 / 0 (scikit-learn's ``cohen_kappa_score`` returns NaN) and this function
    returns 1.0, as small-text does: the two labelings agree completely.

    Args:
        a, b: int [S], S >= 1, values in [0, num_classes).
        num_classes: C, a Python int >= 1 (fixes the marginals' shape).

    Returns:
        float32 [], in [-1, 1].
    """
    num_classes = _checks.positive_int(num_classes, "num_classes")
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim != 1 or a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(
            f"a and b must be int [S] of one shape with S >= 1, got {a.shape} and {b.shape}"
        )
    count = a.shape[0]
    share_a = jnp.bincount(a, length=num_classes).astype(jnp.float32) / count
    other_b = (count - jnp.bincount(b, length=num_classes)).astype(jnp.float32) / count
    expected = jnp.sum(share_a * other_b)
    observed = jnp.mean((a != b).astype(jnp.float32))
    safe = jnp.where(expected > 0, expected, 1.0)
    return jnp.where(expected > 0, 1.0 - observed / safe, 1.0)


class KappaState(NamedTuple):
    """The state of :func:`stabilizing_predictions`.

    Attributes:
        previous: int32 [S]: the classes predicted on the stop set at the last update.
        kappas: float32 [window]: the last ``window`` kappas, a ring: comparison i (the
            i-th kappa, from 0) sits in slot i % window.
        seen: int32 []: the updates so far; the comparisons are seen - 1.
        reason: int32 []: the last update's reason code.
    """

    previous: jax.Array
    kappas: jax.Array
    seen: jax.Array
    reason: jax.Array


def stabilizing_predictions(
    *, threshold: float = 0.99, window: int = 3, aggregate: str = "mean"
) -> StoppingRule:
    """Stop when the predictions on a fixed stop set have stabilized.

    Each update predicts the stop set (the argmax of ``outputs.stop_probs``) and, from the
    second update on, computes Cohen's kappa (:func:`cohen_kappa`) between these
    predictions and the previous update's. Once ``window`` kappas exist, stop when their
    ``aggregate`` over the last ``window`` is >= ``threshold``. The first stop can come at
    update ``window + 1``.

    The paper's rule, and small-text's ``KappaAverage``: the mean of the last 3 kappas
    >= 0.99, with window and threshold left to the user (lower thresholds stop earlier).
    Bloodgood and Grothendieck (2013) bound the F-measure change between two models whose
    kappa exceeds T by 4(1 - T) / T. ``aggregate="min"`` asks more: every one of the last
    ``window`` kappas >= ``threshold``. small-text's ``KappaAverage`` before 1.3.3
    compared differences of successive kappas instead (its errata). The stop set needs no
    labels, so it can be large; it must be the same points every round.

    Args:
        threshold: the kappa to reach, in [-1, 1] (paper: 0.99).
        window: how many successive kappas count, >= 1 (paper: 3).
        aggregate: ``"mean"`` (the paper's) or ``"min"`` of the window.

    Returns:
        A :class:`StoppingRule` reading ``outputs.stop_probs`` (float [S, C]), with state
        :class:`KappaState`; reason 1: the predictions are stable.
    """
    threshold = number_in(threshold, "threshold", -1.0, 1.0, open_low=False)
    window = _checks.positive_int(window, "window")
    aggregate = _checks.one_of(aggregate, AGGREGATES, "aggregate")
    name = "stabilizing_predictions"

    def predictions(outputs: RoundOutputs) -> tuple[jax.Array, int]:
        """The predicted classes on the stop set, int32 [S], and C."""
        probs = field(outputs, "stop_probs", 2, name)
        if probs.shape[0] == 0:
            raise ValueError("outputs.stop_probs must hold at least one stop-set point")
        return jnp.argmax(probs, axis=-1).astype(jnp.int32), probs.shape[1]

    def init(outputs: RoundOutputs) -> KappaState:
        size = predictions(outputs)[0].shape[0]
        zero = jnp.int32(0)
        return KappaState(jnp.zeros(size, jnp.int32), jnp.zeros(window, jnp.float32), zero, zero)

    def update(state: KappaState, outputs: RoundOutputs) -> tuple[KappaState, jax.Array, jax.Array]:
        predicted, num_classes = predictions(outputs)
        if predicted.shape != state.previous.shape:
            raise ValueError(
                f"outputs.stop_probs holds {predicted.shape[0]} points, but the state was "
                f"made for a stop set of {state.previous.shape[0]}: use the same stop set "
                "every round"
            )
        kappa = cohen_kappa(predicted, state.previous, num_classes)
        compared = state.seen >= 1
        slot = jnp.maximum(state.seen - 1, 0) % window
        kappas = jnp.where(compared, state.kappas.at[slot].set(kappa), state.kappas)
        value = jnp.mean(kappas) if aggregate == "mean" else jnp.min(kappas)
        stop = (state.seen >= window) & (value >= threshold)
        reason = stop.astype(jnp.int32)
        return KappaState(predicted, kappas, state.seen + 1, reason), stop, reason

    def describe(state: KappaState) -> str:
        comparisons = int(state.seen) - 1
        if comparisons < 0:
            return "no predictions on the stop set yet"
        if comparisons == 0:
            return "first predictions on the stop set recorded; kappa needs a second round"
        last = float(state.kappas[(comparisons - 1) % window])
        if comparisons < window:
            return (
                f"kappa {last:.3f} between the last two models; {comparisons} of the "
                f"{window} comparisons the window needs"
            )
        kappas = state.kappas
        value = float(kappas.mean() if aggregate == "mean" else kappas.min())
        what = f"{'mean' if aggregate == 'mean' else 'lowest'} kappa {value:.3f}"
        if int(state.reason):
            return f"predictions have been stable for {rounds(window)} ({what} >= {threshold:g})"
        return f"predictions not yet stable: {what} over the last {rounds(window)} < {threshold:g}"

    hparams = {"threshold": threshold, "window": window, "aggregate": aggregate}
    reasons = (CONTINUE, "predictions are stable")
    return StoppingRule(name, hparams, init, update, describe, reasons, ("stop_probs",))

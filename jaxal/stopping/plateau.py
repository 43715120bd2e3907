"""Validation plateau: stop when a held-out metric has stopped improving (early stopping
with patience, over rounds instead of epochs)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal.stopping._rule import CONTINUE, RoundOutputs, StoppingRule, field, rounds

MODES = ("max", "min")


class PlateauState(NamedTuple):
    """The state of :func:`validation_plateau`.

    Attributes:
        best: float32 []: the best value so far (the last one that improved by more than
            ``min_delta``); -inf (mode max) or +inf (mode min) before the first update.
        last: float32 []: the value at the last update.
        wait: int32 []: the updates since ``best`` was set.
        seen: int32 []: the updates so far.
        reason: int32 []: the last update's reason code.
    """

    best: jax.Array
    last: jax.Array
    wait: jax.Array
    seen: jax.Array
    reason: jax.Array


def validation_plateau(
    *, patience: int = 10, min_delta: float = 0.0, mode: str = "max"
) -> StoppingRule:
    """Stop when ``outputs.validation`` has not improved for ``patience`` rounds.

    A value improves when it beats the best so far by more than ``min_delta`` (higher for
    mode ``"max"``, lower for ``"min"``); it then becomes the best and the wait restarts.
    Otherwise the wait grows by one; stop when wait >= ``patience``. This is Keras's
    ``EarlyStopping`` over rounds. baal's ``EarlyStoppingCriterion`` (patience 10,
    epsilon 1e-4) instead stops when the last values all lie within epsilon of the
    newest, in either direction: a steady decline stops this rule, not baal's. A NaN
    never improves.

    Args:
        patience: rounds without improvement, >= 1 (default 10, baal's).
        min_delta: the smallest change that counts as improvement, >= 0 (default 0,
            Keras's).
        mode: ``"max"`` (accuracy) or ``"min"`` (a loss).

    Returns:
        A :class:`StoppingRule` reading ``outputs.validation`` (float []), with state
        :class:`PlateauState`; reason 1: no improvement for ``patience`` rounds.
    """
    patience = _checks.positive_int(patience, "patience")
    min_delta = _checks.nonnegative_float(min_delta, "min_delta")
    mode = _checks.one_of(mode, MODES, "mode")
    sign = 1.0 if mode == "max" else -1.0
    name = "validation_plateau"

    def init(outputs: RoundOutputs) -> PlateauState:
        del outputs
        zero = jnp.int32(0)
        return PlateauState(jnp.float32(-sign * jnp.inf), jnp.float32(jnp.nan), zero, zero, zero)

    def update(
        state: PlateauState, outputs: RoundOutputs
    ) -> tuple[PlateauState, jax.Array, jax.Array]:
        value = field(outputs, "validation", 0, name).astype(jnp.float32)
        improved = sign * (value - state.best) > min_delta
        best = jnp.where(improved, value, state.best)
        wait = jnp.where(improved, 0, state.wait + 1).astype(jnp.int32)
        stop = wait >= patience
        reason = stop.astype(jnp.int32)
        return PlateauState(best, value, wait, state.seen + 1, reason), stop, reason

    def describe(state: PlateauState) -> str:
        if int(state.seen) == 0:
            return "no validation value yet"
        wait = int(state.wait)
        best = f"best validation {float(state.best):.4f}"
        if int(state.reason):
            return f"no improvement for {rounds(wait)} ({best}, patience {patience})"
        if wait == 0:
            return f"validation improved to {float(state.last):.4f}"
        return f"{best}; {wait} of {rounds(patience)} without improvement"

    hparams = {"patience": patience, "min_delta": min_delta, "mode": mode}
    reasons = (CONTINUE, "validation stopped improving")
    return StoppingRule(name, hparams, init, update, describe, reasons, ("validation",))

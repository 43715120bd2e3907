"""Labeling budget: stop once a number of labels has been spent."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal.stopping._rule import CONTINUE, RoundOutputs, StoppingRule, field


class BudgetState(NamedTuple):
    """The state of :func:`labeling_budget`.

    Attributes:
        start: int32 []: the labeled count at the first update; -1 before it.
        spent: int32 []: the labels added since the first update.
        reason: int32 []: the last update's reason code.
    """

    start: jax.Array
    spent: jax.Array
    reason: jax.Array


def labeling_budget(budget: int) -> StoppingRule:
    """Stop once ``budget`` labels have been added since the first round the rule saw.

    spent = labeled - (labeled at the first update); stop when spent >= budget. The count
    starts at the first update, so labels held before it (the runner's initial set, which
    round 0 trains on) are not spent: baal's ``LabellingBudgetStoppingCriterion`` counts
    from its construction the same way.

    Args:
        budget: the labels to spend, >= 1.

    Returns:
        A :class:`StoppingRule` reading ``outputs.labeled`` (int []), with state
        :class:`BudgetState`; reason 1: the budget is spent.
    """
    budget = _checks.positive_int(budget, "budget")
    name = "labeling_budget"

    def init(outputs: RoundOutputs) -> BudgetState:
        del outputs
        return BudgetState(jnp.int32(-1), jnp.int32(0), jnp.int32(0))

    def update(
        state: BudgetState, outputs: RoundOutputs
    ) -> tuple[BudgetState, jax.Array, jax.Array]:
        labeled = field(outputs, "labeled", 0, name).astype(jnp.int32)
        start = jnp.where(state.start < 0, labeled, state.start)
        spent = labeled - start
        stop = spent >= budget
        reason = stop.astype(jnp.int32)
        return BudgetState(start, spent, reason), stop, reason

    def describe(state: BudgetState) -> str:
        spent = int(state.spent)
        if int(state.start) < 0:
            return f"no round seen yet; budget {budget} labels"
        if int(state.reason):
            return f"labeling budget spent: {spent} labels of {budget}"
        return f"{spent} of {budget} labels spent"

    reasons = (CONTINUE, "labeling budget spent")
    return StoppingRule(name, {"budget": budget}, init, update, describe, reasons, ("labeled",))

"""The registry: stopping-rule name -> factory."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from jaxal.stopping._rule import StoppingRule
from jaxal.stopping.accuracy import selected_accuracy
from jaxal.stopping.budget import labeling_budget
from jaxal.stopping.kappa import stabilizing_predictions
from jaxal.stopping.plateau import validation_plateau
from jaxal.stopping.uncertainty import max_confidence, overall_uncertainty

Factory = Callable[..., StoppingRule]

REGISTRY: dict[str, Factory] = {
    "labeling_budget": labeling_budget,
    "stabilizing_predictions": stabilizing_predictions,
    "overall_uncertainty": overall_uncertainty,
    "max_confidence": max_confidence,
    "selected_accuracy": selected_accuracy,
    "validation_plateau": validation_plateau,
}


def get(name: str) -> Factory:
    """The factory registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the known ones and close matches.
    """
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), REGISTRY, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown stopping rule {name!r}.{hint} Known stopping rules: "
            f"{', '.join(sorted(REGISTRY))}"
        ) from None

"""The registry: strategy name -> factory."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from jaxal.strategies import (
    adversarial,
    batch_bayesian,
    diversity,
    information,
    optimization,
    submodular,
    uncertainty,
    wrappers,
)
from jaxal.strategies._base import Strategy

REGISTRY: dict[str, Callable[..., Strategy]] = {
    "random": diversity.random,
    "least_confidence": uncertainty.least_confidence,
    "margin": uncertainty.margin,
    "entropy": uncertainty.entropy,
    "bald": uncertainty.bald,
    "coreset": diversity.coreset,
    "kmeans": diversity.kmeans,
    "badge": diversity.badge,
    "batchbald": batch_bayesian.batchbald,
    "deepfool": adversarial.deepfool,
    "bim": adversarial.bim,
    "submodular": submodular.submodular,
    "fass": submodular.fass,
    "smi": information.smi,
    "scg": information.scg,
    "scmi": information.scmi,
    "glister": optimization.glister,
    "gradmatch": optimization.gradmatch,
    "stochastic": wrappers.stochastic,
    "partition": wrappers.partition,
}


def get(name: str) -> Callable[..., Strategy]:
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
            f"unknown strategy {name!r}.{hint} Known strategies: {', '.join(sorted(REGISTRY))}"
        ) from None

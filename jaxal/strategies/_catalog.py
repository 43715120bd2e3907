"""The strategies that stand on their own (every registered name but the wrappers), and
the lookup that names the known ones when a name is unknown."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

from jaxal.strategies import (
    adversarial,
    alfamix,
    bait,
    batch_bayesian,
    cluster_margin,
    diversity,
    dropquery,
    epig,
    herding,
    information,
    optimization,
    probcover,
    submodular,
    typiclust,
    uncertainty,
)
from jaxal.strategies._base import Strategy

Factory = Callable[..., Strategy]

BASE: dict[str, Factory] = {
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
    "typiclust": typiclust.typiclust,
    "probcover": probcover.probcover,
    "maxherding": herding.maxherding,
    "uherding": herding.uherding,
    "dropquery": dropquery.dropquery,
    "epig": epig.epig,
    "alfamix": alfamix.alfamix,
    "bait": bait.bait,
    "cluster_margin": cluster_margin.cluster_margin,
}


def lookup(name: str, table: Mapping[str, Factory]) -> Factory:
    """The factory registered as ``name`` in ``table``.

    Raises:
        ValueError: unknown name; the message lists the known ones and close matches.
    """
    try:
        return table[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), table, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown strategy {name!r}.{hint} Known strategies: {', '.join(sorted(table))}"
        ) from None

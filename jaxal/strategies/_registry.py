"""The registry: strategy name -> factory, the wrappers included."""

from __future__ import annotations

from jaxal.strategies import wrappers
from jaxal.strategies._catalog import BASE, Factory, lookup

REGISTRY: dict[str, Factory] = {
    **BASE,
    "stochastic": wrappers.stochastic,
    "partition": wrappers.partition,
}


def get(name: str) -> Factory:
    """The factory registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the known ones and close matches.
    """
    return lookup(name, REGISTRY)

"""Old names of selectors, kept working: ``jaxal.selectors.<old name>`` warns with a
DeprecationWarning that names the new one.

``glister_with_gains`` and ``batchbald_with_scores`` return their old ``(indices,
values)`` pairs; ``capped_facility_location`` is facility location with a floor and a cap
over a square kernel; ``mutual_information`` is SIMILAR's combinator (BALD's score is
``jaxal.scores.mutual_information``).
"""

from __future__ import annotations

from typing import Any

import jax

from jaxal.selectors._batchbald import batchbald
from jaxal.selectors._glister import glister
from jaxal.selectors.submodular.combinators import submodular_mutual_information
from jaxal.selectors.submodular.functions import facility_location
from jaxal.selectors.submodular.greedy import SubmodularFn


def glister_with_gains(*args: Any, **kwargs: Any) -> tuple[jax.Array, jax.Array]:
    """``glister(...)`` as ``(indices, gains)``."""
    indices, info = glister(*args, **kwargs)
    return indices, info.gains


def batchbald_with_scores(*args: Any, **kwargs: Any) -> tuple[jax.Array, jax.Array]:
    """``batchbald(...)`` as ``(indices, scores)``."""
    indices, info = batchbald(*args, **kwargs)
    return indices, info.scores


def capped_facility_location(
    kernel: Any,
    *,
    floor: jax.Array | None = None,
    cap: jax.Array | None = None,
    ground: jax.Array | None = None,
) -> SubmodularFn:
    """``facility_location(kernel, floor=floor, cap=cap, ground=ground, symmetric=True)``."""
    return facility_location(kernel, floor=floor, cap=cap, ground=ground, symmetric=True)


DEPRECATED: dict[str, tuple[Any, str]] = {
    "glister_with_gains": (glister_with_gains, "glister (it returns (indices, info); info.gains)"),
    "batchbald_with_scores": (
        batchbald_with_scores,
        "batchbald (it returns (indices, info); info.scores)",
    ),
    "capped_facility_location": (
        capped_facility_location,
        "facility_location (floor=, cap=, symmetric=True)",
    ),
    "mutual_information": (
        submodular_mutual_information,
        "submodular_mutual_information (jaxal.scores.mutual_information is BALD's score)",
    ),
}
"""Old name -> (what it returns now, the message's replacement)."""

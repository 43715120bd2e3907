"""What the selectors that report more than their picks return: ``(indices, info)``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class Selection(NamedTuple):
    """A selector's picks and what it measured on the way (BlackJAX's ``(state, info)``).

    Attributes:
        indices: int32 [budget] in pick order: distinct candidates, -1 once none is left.
        info: a NamedTuple of per-pick arrays [budget]; its type is the selector's.
    """

    indices: jax.Array
    info: Any


class GreedyInfo(NamedTuple):
    """gains: float32 [budget], the marginal gain of each pick when it was made (0 for
    -1 slots)."""

    gains: jax.Array


class BatchBaldInfo(NamedTuple):
    """scores: float [budget], the estimated mutual information I(y_1..y_i; w) of the
    batch up to and including pick i (-inf for -1 slots)."""

    scores: jax.Array


class BaitInfo(NamedTuple):
    """The objective tr((lambda I + M)^-1 F) after each step of BAIT's greedy (T forward
    picks, then T - budget removals).

    Attributes:
        forward: float32 [T], after forward pick t (unchanged after a -1 pick).
        backward: float32 [T - budget], after removal t (unchanged once no removal is
            left to make).
    """

    forward: jax.Array
    backward: jax.Array

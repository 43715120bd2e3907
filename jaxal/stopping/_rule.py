"""The types every stopping rule shares: :class:`RoundOutputs` (what a round gives the
rules), :class:`StoppingRule` (a name, hyperparameters and pure functions) and
:func:`describe`, plus the checks the factories use."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

CONTINUE = "continue"


class RoundOutputs(NamedTuple):
    """What one finished round gives the stopping rules.

    Every field may be None: a rule reads only the fields in its ``needs`` and raises a
    TypeError at trace time when one of those is None. Letters: S stop-set points, N pool
    points, B points labeled this round, C classes.

    Attributes:
        labeled: int []: the labeled points after this round, the initial set included.
        stop_probs: float [S, C]: the current model's class probabilities on the stop set,
            a fixed set of points (the same rows every round, labeled or not).
        pool_probs: float [N, C]: the current model's class probabilities on the pool.
        unlabeled: bool [N]: the pool points without a label after this round.
        batch_predictions: int [B]: the classes that the model which selected this round's
            batch predicted for it, before its labels were known.
        batch_labels: int [B]: the batch's labels from the annotator; -1 marks a slot
            without a label (a round that selected nothing, an unfilled slot), which the
            rules skip.
        validation: float []: a held-out metric of the current model, such as accuracy
            on a validation set.
    """

    labeled: jax.Array | None = None
    stop_probs: jax.Array | None = None
    pool_probs: jax.Array | None = None
    unlabeled: jax.Array | None = None
    batch_predictions: jax.Array | None = None
    batch_labels: jax.Array | None = None
    validation: jax.Array | None = None


State = Any
InitFn = Callable[[RoundOutputs], State]
UpdateFn = Callable[[State, RoundOutputs], tuple[State, jax.Array, jax.Array]]


class StoppingRule(NamedTuple):
    """A stopping rule: a name, its hyperparameters and pure functions of the rounds.

    Attributes:
        name: the registry name, e.g. ``"stabilizing_predictions"``.
        hparams: the hyperparameters, by name (also readable as attributes:
            ``rule.threshold``).
        init: ``init(outputs) -> state``: the state before the first round, a pytree of
            arrays. ``outputs`` is an example of the :class:`RoundOutputs` that ``update``
            will receive; only its shapes are read (as ``optax``'s ``init(params)``).
        update: ``update(state, outputs) -> (state, stop, reason)``: the state after one
            more round; ``stop`` a bool [] array, True when the rule says to stop after
            this round; ``reason`` an int32 [] code, 0 to continue, else an index of
            ``reasons``. Pure and jit-able; each call decides anew (a rule that fired may
            stop firing in a later round).
        describe: ``describe(state) -> str``: the state after ``update`` in words, for
            people (plain Python on host values; see :func:`describe`).
        reasons: the meaning of each ``reason`` code; ``reasons[0]`` is ``"continue"``.
        needs: the :class:`RoundOutputs` fields that ``update`` reads.
    """

    name: str
    hparams: Mapping[str, Any]
    init: InitFn
    update: UpdateFn
    describe: Callable[[State], str]
    reasons: tuple[str, ...]
    needs: tuple[str, ...]

    def __getattr__(self, item: str) -> Any:
        try:
            return self.hparams[item]
        except KeyError:
            raise AttributeError(f"stopping rule {self.name!r} has no attribute {item!r}") from None


def describe(rule: StoppingRule, state: State) -> str:
    """The sentence a person reads about ``state`` (what ``rule.update`` returned), e.g.
    ``"predictions have been stable for 3 rounds (mean kappa 0.995 >= 0.99)"``.

    Raises:
        TypeError: ``state`` holds traced values (call it outside ``jit``).
    """
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(state)):
        raise TypeError("describe reads the values of the state: call it outside jit")
    return rule.describe(jax.device_get(state))


def field(outputs: RoundOutputs, name: str, rank: int, rule: str) -> jax.Array:
    """``outputs.<name>`` as an array of rank ``rank``.

    Raises:
        TypeError: ``outputs`` is no :class:`RoundOutputs`, or the field is None.
        ValueError: the field has another rank.
    """
    if not isinstance(outputs, RoundOutputs):
        raise TypeError(f"{rule} takes a jaxal.stopping.RoundOutputs, got {type(outputs).__name__}")
    value = getattr(outputs, name)
    if value is None:
        raise TypeError(f"{rule} needs outputs.{name} ({SHAPES[name]}); it is None")
    value = jnp.asarray(value)
    if value.ndim != rank:
        raise ValueError(f"outputs.{name} must be {SHAPES[name]}, got shape {value.shape}")
    return value


SHAPES = {
    "labeled": "int []",
    "stop_probs": "float [S, C]",
    "pool_probs": "float [N, C]",
    "unlabeled": "bool [N]",
    "batch_predictions": "int [B]",
    "batch_labels": "int [B]",
    "validation": "float []",
}


def number_in(value: object, name: str, low: float, high: float, *, open_low: bool) -> float:
    """``value`` as a float in ``(low, high]`` (``open_low``) or ``[low, high]``.

    Raises:
        TypeError: not a real number.
        ValueError: outside the interval, or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    number = float(value)
    inside = (low < number if open_low else low <= number) and number <= high
    if not (math.isfinite(number) and inside):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return number


def rounds(count: int) -> str:
    """``"1 round"``, ``"3 rounds"``."""
    return f"{count} round{'s' * (count != 1)}"

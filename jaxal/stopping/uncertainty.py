"""Confidence-based stopping (Zhu, Wang and Hovy, "Multi-criteria-based Strategy to Stop
Active Learning for Data Annotation", COLING 2008): stop when the model is certain enough
about the points still unlabeled, on average (overall uncertainty) or everywhere (max
confidence).

Uncertainty here is the entropy of the predicted class distribution over log C, in
[0, 1], so that a threshold means the same for any number of classes (small-text's
``OverallUncertainty`` normalizes so; the paper uses the entropy itself, which is this
times log C).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxal import scores
from jaxal.stopping._rule import (
    CONTINUE,
    RoundOutputs,
    StoppingRule,
    field,
    number_in,
)


class UncertaintyState(NamedTuple):
    """The state of :func:`overall_uncertainty` and :func:`max_confidence`.

    Attributes:
        value: float32 []: the mean (overall uncertainty) or largest (max confidence)
            normalized entropy over the unlabeled points at the last update; 0 when none
            is left.
        remaining: int32 []: the unlabeled points at the last update; -1 before it.
        reason: int32 []: the last update's reason code.
    """

    value: jax.Array
    remaining: jax.Array
    reason: jax.Array


def normalized_entropy(probs: jax.Array) -> jax.Array:
    """The entropy of each row over log C: float32 [N] in [0, 1] for probs [N, C], C >= 2."""
    num_classes = probs.shape[-1]
    if num_classes < 2:
        raise ValueError(
            f"uncertainty needs at least 2 classes, got probabilities of {probs.shape}"
        )
    return (scores.entropy(probs.astype(jnp.float32)) / math.log(num_classes)).astype(jnp.float32)


def overall_uncertainty(*, threshold: float = 0.05) -> StoppingRule:
    """Stop when the mean uncertainty of the unlabeled pool is below ``threshold``.

    value = mean over the unlabeled points of entropy(p) / log C; stop when
    value < ``threshold`` (reason 1), or when no unlabeled point is left (reason 2). The
    paper's rule averages over the unlabeled pool, as here; small-text's
    ``OverallUncertainty`` averages over the points its caller passes.

    Args:
        threshold: in (0, 1] (small-text's default, 0.05; the paper's values are for raw
            entropy).

    Returns:
        A :class:`StoppingRule` reading ``outputs.pool_probs`` (float [N, C]) and
        ``outputs.unlabeled`` (bool [N]), with state :class:`UncertaintyState`.
    """
    return _pool_rule("overall_uncertainty", threshold, _mean, "mean")


def max_confidence(*, threshold: float = 0.001) -> StoppingRule:
    """Stop when every unlabeled point's uncertainty is below ``threshold``.

    value = the largest entropy(p) / log C over the unlabeled points; stop when
    value < ``threshold`` (reason 1), or when no unlabeled point is left (reason 2). The
    paper's max-confidence rule looks at the example uncertainty sampling would select
    next, the most uncertain unlabeled one: this is its uncertainty under entropy
    sampling, and the same test whatever strategy selects.

    Args:
        threshold: in (0, 1]; the rule means a value close to 0 (default 0.001, chosen
            here).

    Returns:
        A :class:`StoppingRule` reading ``outputs.pool_probs`` (float [N, C]) and
        ``outputs.unlabeled`` (bool [N]), with state :class:`UncertaintyState`.
    """
    return _pool_rule("max_confidence", threshold, _largest, "largest")


def _mean(uncertainty: jax.Array, unlabeled: jax.Array) -> jax.Array:
    total = jnp.sum(jnp.where(unlabeled, uncertainty, 0.0))
    return total / jnp.maximum(jnp.sum(unlabeled), 1).astype(jnp.float32)


def _largest(uncertainty: jax.Array, unlabeled: jax.Array) -> jax.Array:
    return jnp.max(jnp.where(unlabeled, uncertainty, 0.0), initial=0.0)


def _pool_rule(
    name: str,
    threshold: float,
    reduce: Callable[[jax.Array, jax.Array], jax.Array],
    what: str,
) -> StoppingRule:
    threshold = number_in(threshold, "threshold", 0.0, 1.0, open_low=True)

    def init(outputs: RoundOutputs) -> UncertaintyState:
        del outputs
        return UncertaintyState(jnp.float32(0.0), jnp.int32(-1), jnp.int32(0))

    def update(
        state: UncertaintyState, outputs: RoundOutputs
    ) -> tuple[UncertaintyState, jax.Array, jax.Array]:
        del state
        probs = field(outputs, "pool_probs", 2, name)
        unlabeled = field(outputs, "unlabeled", 1, name).astype(bool)
        if unlabeled.shape[0] != probs.shape[0]:
            raise ValueError(
                f"outputs.unlabeled has {unlabeled.shape[0]} points, outputs.pool_probs "
                f"{probs.shape[0]}"
            )
        value = reduce(normalized_entropy(probs), unlabeled)
        remaining = jnp.sum(unlabeled).astype(jnp.int32)
        reason = jnp.where(remaining == 0, 2, jnp.where(value < threshold, 1, 0))
        reason = reason.astype(jnp.int32)
        return UncertaintyState(value, remaining, reason), reason > 0, reason

    def describe(state: UncertaintyState) -> str:
        remaining = int(state.remaining)
        if remaining < 0:
            return "no round seen yet"
        if remaining == 0:
            return "no unlabeled point left"
        below = "below" if int(state.reason) else "not below"
        return (
            f"{what} uncertainty of the {remaining} unlabeled points is "
            f"{float(state.value):.4f}, {below} {threshold:g}"
        )

    reasons = (CONTINUE, f"{what} uncertainty below the threshold", "no unlabeled point left")
    hparams = {"threshold": threshold}
    return StoppingRule(name, hparams, init, update, describe, reasons, ("pool_probs", "unlabeled"))

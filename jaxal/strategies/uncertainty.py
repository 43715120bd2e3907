"""Uncertainty sampling (least confidence, margin, entropy) and BALD.

Each ranks the unlabeled points by a score of the model's class probabilities; with
``mc_samples=S`` the probabilities are the mean of S MC-dropout passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxal import _checks, scores
from jaxal.model import Model, mc_map, probability_map
from jaxal.strategies._base import DEFAULT_BATCH_SIZE, Strategy, check_common, scored_strategy


def _probability_strategy(
    name: str, measure: Callable[[jax.Array], jax.Array]
) -> Callable[..., Strategy]:
    def factory(
        model: Model,
        budget: int,
        *,
        mc_samples: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Strategy:
        budget, batch_size = check_common(budget, batch_size)
        mc_samples = _checks.optional_positive_int(mc_samples, "mc_samples")

        def raw_score(params: Any, pool, key):
            if mc_samples is None:
                del key
                return probability_map(model, params, pool.x, batch_size, measure)
            return _mc_scores(
                model, params, pool, key, mc_samples, batch_size, lambda p: measure(p.mean(0))
            )

        hparams = {"mc_samples": mc_samples, "batch_size": batch_size}
        return scored_strategy(name, budget, hparams, raw_score)

    factory.__name__ = name
    factory.__doc__ = f"""{name.replace("_", " ").capitalize()} sampling: the top ``budget`` by
    ``jaxal.scores.{measure.__name__}`` of the predicted probabilities.

    Args:
        model: the :class:`jaxal.Model`.
        budget: points per selection, a Python int >= 1.
        mc_samples: None for the deterministic forward pass; S >= 1 for the mean of S
            MC-dropout probability vectors (DISTIL's ``*Dropout`` variant, n_drop=10).
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` with a per-point ``score`` [N].
    """
    return factory


def _mc_scores(model, params, pool, key, mc_samples, batch_size, reduce) -> jax.Array:
    """float [N]: ``reduce`` of each point's MC-dropout probabilities [S, B, C]."""
    return mc_map(model, params, pool.x, key, mc_samples, batch_size, reduce, pool.offset)


least_confidence = _probability_strategy("least_confidence", scores.least_confidence)
margin = _probability_strategy("margin", scores.margin)
entropy = _probability_strategy("entropy", scores.entropy)


def bald(
    model: Model, budget: int, *, mc_samples: int = 10, batch_size: int = DEFAULT_BATCH_SIZE
) -> Strategy:
    """BALD (Houlsby et al. 2011; Gal et al. 2017): top ``budget`` by mutual information.

    The score is ``jaxal.scores.mutual_information`` of S MC-dropout samples, computed per
    chunk (memory O(S * batch_size * C)).

    Args:
        model: the :class:`jaxal.Model`; it needs dropout (or ``head``) for S samples to
            differ.
        budget: points per selection.
        mc_samples: S >= 1 (DISTIL's n_drop, default 10).
        batch_size: points per forward pass.
    """
    budget, batch_size = check_common(budget, batch_size)
    mc_samples = _checks.positive_int(mc_samples, "mc_samples")

    def raw_score(params, pool, key):
        return _mc_scores(
            model, params, pool, key, mc_samples, batch_size, scores.mutual_information
        )

    return scored_strategy(
        "bald", budget, {"mc_samples": mc_samples, "batch_size": batch_size}, raw_score
    )

"""Uncertainty sampling (least confidence, margin, entropy) and BALD.

Each ranks the unlabeled points by a score of the model's class probabilities; with
``mc_samples=S`` the probabilities are the mean of S MC-dropout passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

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
        budget, batch_size = check_common(model, budget, batch_size)
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
            differ: outside ``jit``, samples whose logits are identical for every point
            raise a ValueError (the mutual information would be 0 everywhere).
        budget: points per selection.
        mc_samples: S >= 2 (DISTIL's n_drop, default 10).
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` with a per-point ``score`` [N] (the mutual
        information; -inf for labeled points); ``select`` returns its top ``budget``, int32
        [budget].
    """
    budget, batch_size = check_common(model, budget, batch_size)
    mc_samples = mc_sample_count(mc_samples, "bald")

    def raw_score(params, pool, key):
        information, spread = mc_map(
            model,
            params,
            pool.x,
            key,
            mc_samples,
            batch_size,
            information_and_spread,
            pool.offset,
            logits=True,
        )
        require_varied_samples(spread, "bald")
        return information

    return scored_strategy(
        "bald", budget, {"mc_samples": mc_samples, "batch_size": batch_size}, raw_score
    )


def mc_sample_count(mc_samples: object, name: str) -> int:
    """``mc_samples`` as an int >= 2: one sample has no spread, so the mutual information of
    the label and the weights is 0 for every point."""
    count = _checks.positive_int(mc_samples, "mc_samples")
    if count < 2:
        raise ValueError(
            f"{name} needs mc_samples >= 2: with one MC-dropout sample the mutual "
            "information is 0 for every point"
        )
    return count


def information_and_spread(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(BALD score [B], :func:`sample_spread` [B]) of MC logits [S, B, C]."""
    information = scores.mutual_information_from_logits(logits)
    return information, sample_spread(logits)


def sample_spread(logits: jax.Array) -> jax.Array:
    """float [B]: the largest difference between a sample's logits [S, B, C] and the
    first sample's (0: the samples agree)."""
    return jnp.max(jnp.abs(logits - logits[:1]), axis=(0, 2))


def require_varied_samples(spread: jax.Array, name: str) -> None:
    """Outside ``jit``, raise a ValueError when the MC samples agree for every point
    (``spread`` float [N] all 0): the model's stochastic pass ignores its rng."""
    _checks.require(
        spread,
        lambda xp, s: xp.any(s != 0),
        f"{name}: the MC-dropout samples are identical for every point, so the mutual "
        "information is 0 everywhere. The model's stochastic pass ignores its rng (no "
        "dropout, or dropout only on units that are all zero): give it dropout (a "
        "Dropout layer under jaxal.from_flax, or jaxal.Model(apply, head=..., "
        "head_dropout=...))",
    )

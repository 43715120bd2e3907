"""Adversarial strategies (DFAL: Ducoffe & Precioso 2018): DeepFool and BIM.

A point whose prediction flips under a small perturbation lies close to the decision
boundary, so it is informative: these strategies attack every pool point (see
:mod:`jaxal.attacks`) and pick the unlabeled points with the smallest perturbation that
flips them.

Score (higher = pick first): ``-||r||^2`` for a point the attack flipped. A point that did
not flip within the iteration cap (including points with a zero input gradient, which can
never move) ranks after every flipped point: its score is ``-(2 m + 1 + ||r||^2)``, with
m the largest ``||r||^2`` among the flipped unlabeled points, so it stays finite and
below every flipped score while non-flipped points keep their order by ``||r||^2``. DISTIL
ranks by ``||r||^2`` alone, which puts zero-gradient points (score 0) first although they
never flipped.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, attacks
from jaxal.model import Model
from jaxal.pool import Pool
from jaxal.strategies._base import Strategy, check_common, scored_strategy

# A vmapped bounded loop runs until the slowest point of its chunk is done: small chunks
# waste fewer idle lane-iterations, so the default is a few hundred points, not the pool.
ATTACK_BATCH_SIZE = 512


def deepfool(
    model: Model,
    budget: int,
    *,
    max_iter: int = 50,
    overshoot: float = 0.02,
    num_classes: int | None = None,
    batch_size: int = ATTACK_BATCH_SIZE,
) -> Strategy:
    """DFAL with DeepFool (Ducoffe & Precioso 2018; Moosavi-Dezfooli et al., CVPR 2016).

    Every unlabeled point is attacked with :func:`jaxal.attacks.deepfool`; the top
    ``budget`` are the points with the smallest flipping perturbation ``||r||^2`` (see the
    module docstring for points that never flip). Labeled points are not attacked.

    Args:
        model: the :class:`jaxal.Model`; its eval pass is attacked.
        budget: points per selection, a Python int >= 1.
        max_iter: DeepFool steps at most per point (DISTIL: 50).
        overshoot: the overshoot factor, a float >= 0 (DISTIL: 0.02).
        num_classes: consider only the K classes with the highest initial logits; None for
            all (DISTIL). Memory is O(batch_size * K * size of one input).
        batch_size: points attacked together (one vmap). A chunk runs until its slowest
            point finishes (at most ``max_iter`` steps).

    Returns:
        A :class:`jaxal.strategies.Strategy` with a per-point ``score`` [N]. Inputs [N, ...]
        of any rank.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    max_iter = _checks.positive_int(max_iter, "max_iter")
    overshoot = _checks.nonnegative_float(overshoot, "overshoot")
    num_classes = attacks.check_num_classes(num_classes)
    attack = functools.partial(
        attacks.deepfool, max_iter=max_iter, overshoot=overshoot, num_classes=num_classes
    )
    hparams = {
        "max_iter": max_iter,
        "overshoot": overshoot,
        "num_classes": num_classes,
        "batch_size": batch_size,
    }
    return _adversarial_strategy("deepfool", model, budget, batch_size, attack, hparams)


def bim(
    model: Model,
    budget: int,
    *,
    eps: float = 0.05,
    max_iter: int = 1000,
    batch_size: int = ATTACK_BATCH_SIZE,
) -> Strategy:
    """DFAL with iterated sign-gradient steps (BIM: Kurakin et al. 2016; Tramèr et al. 2017).

    Every unlabeled point is attacked with :func:`jaxal.attacks.bim`; the top ``budget``
    are the points with the smallest flipping perturbation ``||eta||^2`` (see the module
    docstring for points that never flip). ``||eta||^2`` is eps^2 times an integer, so ties
    are common: they go to the lower index. Labeled points are not attacked.

    Args:
        model: the :class:`jaxal.Model`; its eval pass is attacked.
        budget: points per selection, a Python int >= 1.
        eps: the step size, a float > 0 (DISTIL: 0.05).
        max_iter: steps at most per point (DISTIL: 1000).
        batch_size: points attacked together (one vmap). A chunk runs until its slowest
            point finishes (at most ``max_iter`` steps).

    Returns:
        A :class:`jaxal.strategies.Strategy` with a per-point ``score`` [N]. Inputs [N, ...]
        of any rank.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    eps = _checks.positive_float(eps, "eps")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    attack = functools.partial(attacks.bim, eps=eps, max_iter=max_iter)
    hparams = {"eps": eps, "max_iter": max_iter, "batch_size": batch_size}
    return _adversarial_strategy("bim", model, budget, batch_size, attack, hparams)


def flip_rank_score(sq_norm: jax.Array, flipped: jax.Array, candidates: jax.Array) -> jax.Array:
    """Scores from perturbations: flipped points first, by ascending ``sq_norm``.

    Args:
        sq_norm: float [N], squared perturbation norms (finite, >= 0).
        flipped: bool [N], whether the attack changed the prediction.
        candidates: bool [N], the points being ranked (sets the offset m).

    Returns:
        float32 [N]: ``-sq_norm`` where flipped, else ``-(2 m + 1 + sq_norm)`` with m the
        largest ``sq_norm`` among flipped candidates (0 if none), clipped to stay finite.
    """
    sq_norm = sq_norm.astype(jnp.float32)
    largest = jnp.max(jnp.where(flipped & candidates, sq_norm, 0.0), initial=0.0)
    unflipped = 2.0 * largest + 1.0 + sq_norm
    top = jnp.finfo(jnp.float32).max
    unflipped = jnp.where(unflipped > top, top, unflipped)  # NaN stays NaN: never picked
    return jnp.where(flipped, -sq_norm, -unflipped)


def _adversarial_strategy(
    name: str,
    model: Model,
    budget: int,
    batch_size: int,
    attack: attacks.AttackFn,
    hparams: dict[str, Any],
) -> Strategy:
    def raw_score(params: Any, pool: Pool, key: jax.Array) -> jax.Array:
        del key
        candidates = pool.unlabeled
        sq_norm, flipped, _ = attacks.perturbation_scores(
            attack, model, params, pool.x, batch_size, active=candidates
        )
        return flip_rank_score(sq_norm, flipped, candidates)

    return scored_strategy(name, budget, hparams, raw_score)

"""ALFA-Mix (Parvaneh, Abbasnejad, Teney, Haffari, van den Hengel & Shi, "Active Learning
by Feature Mixing", CVPR 2022): the points whose prediction flips when their embedding is
mixed towards a labeled class anchor, clustered."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal._chunks import map_slices
from jaxal._points import finite_rows
from jaxal.model import HeadFn, Model, forward
from jaxal.pool import Pool
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    finite_points,
    make_strategy,
    no_score,
)
from jaxal.strategies._features import unit_rows


def alfamix(
    model: Model,
    budget: int,
    *,
    alpha_cap: float = 0.2,
    grow: bool = True,
    normalize: bool = True,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-4,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """ALFA-Mix: k-means over the points whose prediction flips under feature mixing.

    1. Every unlabeled embedding z (the input of ``model.head``) gets its pseudo-label
       y_hat = argmax head(z) and g, the gradient of the cross-entropy at y_hat with
       respect to z.
    2. Anchors: z*_c, the mean embedding of the labeled points of class c, for every class
       of the head (a class without labeled points takes the mean of all of them, as the
       reference code). A labeled point counts under its label in ``pool.y``, or under its
       predicted class while its label has not arrived (y = -1).
    3. The paper's closed form of the mixing coefficient that most raises the loss, to
       first order, within ||alpha|| <= epsilon:
       alpha* = epsilon ||z* - z|| / ||g|| * g / (z* - z) (element-wise division), so
       the mix alpha* z* + (1 - alpha*) z = z + epsilon ||z* - z|| g / ||g|| on the
       dimensions where z* != z (elsewhere the mix keeps z whatever alpha is). z is a
       candidate if head(mix) differs from y_hat for some anchor.
    4. epsilon = cap / sqrt(D), the reference code's scaling. With ``grow`` (the reference
       code, which produced the paper's results with ``alpha_cap`` 0.2), the cap rises
       ``alpha_cap``, 2 ``alpha_cap``, ... to 1, and the candidates of the passes
       accumulate until more than ``budget`` are found; without it, one pass at the cap
       ``alpha_cap`` (the paper's fixed epsilon, dal-toolbox's port).
    5. k-means with ``budget`` clusters over the candidates' embeddings (unit-normalized
       when ``normalize``, as the reference), the candidate nearest each center; with
       fewer candidates, all of them, then uniform random unlabeled points
       (``jaxal.selectors.kmeans_with_fill``).

    Differences from the reference code: the mix is formed as z + alpha* (z* - z), not
    (1 - alpha*) z + alpha* z*, so an alpha* of 1e8 (the reference divides by
    z* - z + 1e-8) cannot cancel catastrophically in float32; g is computed from the
    logits scaled by the runner-up class (its direction is all the closed form uses), so
    a saturated softmax whose other classes underflow still has a direction (the
    reference's g is then 0 and its alpha* 0 / 0); the random fill draws without
    replacement (the reference may repeat points); the closed form only (the reference
    also learns alpha by gradient steps or draws it at random). Cold start: with no
    labeled point there is no anchor, and, as DropQuery, every unlabeled point is a
    candidate (the reference starts from random points).

    The candidate set is a mask, the passes a bounded ``lax.while_loop``. ``key`` seeds
    k-means++ and the fill; the rest is deterministic.

    Cost: one forward pass, one head pass with its gradient, then per pass C head passes
    over the N mixed embeddings, O(passes * C * N * (D + head)); k-means O(n_init *
    max_iter * N * budget * D). Memory O(N * D) plus ``batch_size`` mixed embeddings at a
    time.

    Args:
        model: the :class:`jaxal.Model`; it needs a ``head`` (the last layer as a function
            of the embedding, acting on each row alone), the classifier the mixes go
            through.
        budget: points per selection = clusters.
        alpha_cap: the cap in (0, 1] of the first pass and the step of the next ones
            (reference: 0.2 in the paper's runs, 0.03125 by default).
        grow: raise the cap pass by pass until more than ``budget`` candidates are found.
        normalize: unit-normalize the embeddings that k-means clusters.
        n_init, max_iter, tol: as ``jaxal.selectors.kmeans`` (the reference runs
            scikit-learn's KMeans).
        batch_size: points per forward pass, and mixed embeddings per head pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` returns int32 [budget]: the
        clustered candidates first, then any fill; ``score`` is None.

    Raises:
        TypeError: the model has no ``head``.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    if model.head is None:
        raise TypeError(
            "alfamix mixes embeddings and classifies the mixes, so the model needs a head: "
            "jaxal.Model(apply, head=...) or jaxal.from_flax(module, head=...), the last "
            "layer as a function of the embedding (jaxal.linear_probe() has one)"
        )
    head = model.head
    alpha_cap = _checks.positive_float(alpha_cap, "alpha_cap")
    if alpha_cap > 1.0:
        raise ValueError(f"alpha_cap must be in (0, 1], got {alpha_cap}")
    for flag, flag_name in ((grow, "grow"), (normalize, "normalize")):
        if not isinstance(flag, bool):
            raise TypeError(f"{flag_name} must be a bool, got {type(flag).__name__}")
    n_init = _checks.positive_int(n_init, "n_init")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    tol = _checks.nonnegative_float(tol, "tol")
    caps = cap_schedule(alpha_cap, grow)

    def select(params: Any, pool: Pool, key: jax.Array) -> jax.Array:
        candidates = candidates_for(pool, budget)
        logits, embeddings = forward(model, params, pool.x, batch_size)
        _checks.finite(logits, "logits")
        _checks.finite(embeddings, "embeddings")
        finite = finite_rows(logits) & finite_rows(embeddings)
        candidates, (logits, embeddings) = finite_points(candidates, logits, embeddings)
        embeddings = embeddings.astype(jnp.result_type(embeddings.dtype, jnp.float32))
        known = pool.labeled & (pool.y >= 0)
        _checks.labels_in_range(
            jnp.where(known, pool.y, 0), logits.shape[1], "pool.y (the labeled points' labels)"
        )
        labels = jnp.where(known, pool.y, jnp.argmax(logits, axis=1))
        members = pool.labeled & finite
        anchors = class_anchors(embeddings, labels, members, logits.shape[1])
        flipped = mixing_candidates(
            head, params, embeddings, anchors, caps, candidates, budget, batch_size
        )
        flipped = jnp.where(jnp.any(members), flipped, candidates)  # cold start
        kmeans_key, fill_key = jax.random.split(key)
        return selectors.kmeans_with_fill(
            unit_rows(embeddings) if normalize else embeddings,
            flipped,
            candidates,
            budget,
            kmeans_key,
            fill_key,
            n_init=n_init,
            max_iter=max_iter,
            tol=tol,
        )

    hparams = {
        "alpha_cap": alpha_cap,
        "grow": grow,
        "normalize": normalize,
        "n_init": n_init,
        "max_iter": max_iter,
        "tol": tol,
        "batch_size": batch_size,
    }
    return make_strategy("alfamix", budget, hparams, select, no_score)


def cap_schedule(alpha_cap: float, grow: bool) -> tuple[float, ...]:
    """The cap of each pass: ``alpha_cap`` alone, or (``grow``) the reference code's loop
    ``while cap < 1: cap += alpha_cap`` (its float sums: 0.2 gives 5 passes, the last 1.0)."""
    if not grow:
        return (alpha_cap,)
    caps, cap = [], 0.0
    while cap < 1.0:
        cap += alpha_cap
        caps.append(cap)
    return tuple(caps)


def class_anchors(
    embeddings: jax.Array, labels: jax.Array, members: jax.Array, num_classes: int
) -> jax.Array:
    """float [C, D]: the mean embedding of the ``members`` (bool [N]) of each class
    (``labels`` int [N], in [0, C)); a class without members takes the mean of all members
    (zeros when there are none). The class sums are one [C, N] x [N, D] product: no
    [N, D] temporary beside the embeddings."""
    membership = (labels[:, None] == jnp.arange(num_classes)) & members[:, None]
    weights = membership.astype(embeddings.dtype)  # [N, C]
    sums = jax.lax.dot_general(weights, embeddings, (((0,), (0,)), ((), ())))
    counts = jnp.sum(weights, axis=0)
    overall = jnp.sum(sums, axis=0) / jnp.maximum(jnp.sum(counts), 1.0)
    return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], overall)


def mixing_candidates(
    head: HeadFn,
    params: Any,
    embeddings: jax.Array,
    anchors: jax.Array,
    caps: tuple[float, ...],
    candidates: jax.Array,
    budget: int,
    batch_size: int,
) -> jax.Array:
    """bool [N]: the candidates whose prediction flips for some anchor's closed-form mix,
    accumulated over the passes of ``caps`` (epsilon = cap / sqrt(D)) until more than
    ``budget`` are found.

    Args:
        head: ``head(params, embedding [B, D]) -> logits [B, C]``, row by row.
        embeddings: float [N, D]; anchors: float [K, D].
        caps: the caps of the passes, in order.
        candidates: bool [N], the points that may count.
        budget: the count after which no further pass runs.
        batch_size: mixed embeddings per head pass (chunks of batch_size // K points).
    """
    predicted, direction = _loss_ascent(head, params, embeddings, batch_size)
    epsilons = jnp.asarray(caps, jnp.float32) / math.sqrt(embeddings.shape[1])
    chunk = max(1, batch_size // anchors.shape[0])

    def flips(epsilon):
        def one_chunk(z, unit_gradient, label, index):
            del index
            mixed = _closed_form_mix(z, unit_gradient, anchors, epsilon)  # [B, K, D]
            logits = head(params, mixed.reshape(-1, z.shape[1])).reshape(*mixed.shape[:2], -1)
            return jnp.any(jnp.argmax(logits, axis=-1) != label[:, None], axis=1)

        return map_slices(one_chunk, embeddings, direction, predicted, chunk_size=chunk)

    def more(state):
        step, found = state
        return (step < len(caps)) & (jnp.sum(found) <= budget)

    def one_pass(state):
        step, found = state
        return step + 1, found | (candidates & flips(epsilons[step]))

    initial = (jnp.int32(0), jnp.zeros_like(candidates))
    return jax.lax.while_loop(more, one_pass, initial)[1]


def _closed_form_mix(
    z: jax.Array, unit_gradient: jax.Array, anchors: jax.Array, epsilon: jax.Array
) -> jax.Array:
    """float [B, K, D]: z + alpha* (z* - z) for every anchor z*, alpha* the closed form:
    z + epsilon ||z* - z|| g / ||g|| where z* != z, z elsewhere."""
    difference = anchors[None, :, :] - z[:, None, :]
    distance = jnp.sqrt(jnp.sum(difference * difference, axis=-1, keepdims=True))
    step = epsilon * distance * unit_gradient[:, None, :]
    return z[:, None, :] + jnp.where(difference != 0, step, 0.0)


def _loss_ascent(
    head: HeadFn, params: Any, embeddings: jax.Array, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """(y_hat int32 [N], g / ||g|| float [N, D]; 0 where g is 0): the prediction of the
    head and the unit gradient of the cross-entropy at it with respect to the embedding.

    The cotangent p - onehot(y_hat) is taken times the positive factor sum_c e^(l_c) /
    e^(l_2), l_2 the runner-up logit: exp(l_c - l_2) for c != y_hat and minus their sum for
    y_hat. The direction is the same, and it stays defined when the other classes'
    probabilities underflow."""

    def one_chunk(z, index):
        del index
        logits, pullback = jax.vjp(lambda e: head(params, e), z)
        logits = logits.astype(jnp.float32)
        label = jnp.argmax(logits, axis=-1)
        is_label = jnp.arange(logits.shape[-1]) == label[:, None]
        runner_up = jnp.max(jnp.where(is_label, -jnp.inf, logits), axis=-1, keepdims=True)
        others = jnp.where(is_label, 0.0, jnp.exp(logits - runner_up))
        cotangent = others - is_label * jnp.sum(others, axis=-1, keepdims=True)
        (gradient,) = pullback(cotangent.astype(z.dtype))
        norm = jnp.sqrt(jnp.sum(gradient * gradient, axis=-1, keepdims=True))
        unit = jnp.where(norm > 0, gradient / jnp.where(norm > 0, norm, 1.0), 0.0)
        return label.astype(jnp.int32), unit

    return map_slices(one_chunk, embeddings, chunk_size=batch_size)

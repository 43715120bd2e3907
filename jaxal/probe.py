"""A linear probe: the model of a pool whose inputs already are the embeddings.

Pools of precomputed features (a frozen self-supervised or foundation-model encoder, the
setting of TypiClust, ProbCover and their kin) need a :class:`jaxal.Model` whose
embedding is the input itself and whose classifier is one linear layer::

    model = jaxal.linear_probe(dropout=0.5)
    params = jax.jit(jaxal.fit_linear_probe, static_argnames="classes")(
        pool.x, pool.y, pool.labeled, classes=10
    )
    picked = jaxal.strategies.bald(model, 10, mc_samples=20).select(params, pool, key)

Letters: N points, D features (the embedding width), C classes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxal import _checks
from jaxal.model import Model


def linear_probe(*, dropout: float = 0.5) -> Model:
    """A :class:`jaxal.Model` for embedding pools: logits = x @ kernel + bias.

    ``params = {"kernel": float [D, C], "bias": float [C]}`` (:func:`fit_linear_probe`
    fits them, :func:`init_linear_probe` makes zeros of the right shapes). ``apply(params,
    x, rng)`` returns ``(x @ kernel + bias, x)``: the embedding is the input itself
    (rows flattened to [B, D]). With ``rng`` given, the features are dropped with rate
    ``dropout`` (inverted dropout, kept ones scaled by 1 / (1 - dropout)) before the
    linear layer, so MC-dropout strategies (BALD, BatchBALD, ``mc_samples=``) run. The
    model has a ``head``, so those strategies take its cheap path: one pass for the
    embeddings, then S dropout masks of the features into the head (``jaxal.model.mc_map``).

    Args:
        dropout: the rate in [0, 1) of the MC-dropout passes.

    Returns:
        The :class:`jaxal.Model` (``head_dropout = dropout``).
    """
    rate = _checks.nonnegative_float(dropout, "dropout")
    if rate >= 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

    def head(params: Any, embedding: jax.Array) -> jax.Array:
        return embedding @ params["kernel"] + params["bias"]

    def apply(params: Any, x: jax.Array, rng: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        features = x.reshape(x.shape[0], -1)
        if rng is None or rate == 0.0:
            return head(params, features), features
        keep = jax.random.bernoulli(rng, 1.0 - rate, features.shape)
        dropped = jnp.where(keep, features / (1.0 - rate), 0.0).astype(features.dtype)
        return head(params, dropped), features

    return Model(apply=apply, head=head, head_dropout=rate)


def init_linear_probe(features: int, classes: int, dtype: Any = jnp.float32) -> dict[str, Any]:
    """Zero params of a :func:`linear_probe` for ``features`` inputs and ``classes``
    classes: ``{"kernel": [features, classes], "bias": [classes]}`` (uniform predictions)."""
    features = _checks.positive_int(features, "features")
    classes = _checks.positive_int(classes, "classes")
    return {"kernel": jnp.zeros((features, classes), dtype), "bias": jnp.zeros((classes,), dtype)}


def fit_linear_probe(
    x: jax.Array,
    y: jax.Array,
    mask: jax.Array,
    classes: int,
    *,
    steps: int = 200,
    learning_rate: float = 0.1,
    l2: float = 1e-4,
) -> dict[str, Any]:
    """Multinomial logistic regression on the rows where ``mask`` holds.

    Full-batch Adam from zero params for ``steps`` steps on the mean cross-entropy of the
    masked rows plus ``l2 / 2 * ||kernel||^2``. Pure and jittable (``classes`` and
    ``steps`` static); cost O(steps * N * D * C). With no masked row the params stay zero.

    Args:
        x: features [N, D] (or [N, ...], flattened).
        y: int labels [N]; rows outside ``mask`` are ignored (e.g. -1).
        mask: bool [N], the labeled rows (``pool.labeled``).
        classes: C, a Python int.
        steps: Python int >= 1; learning_rate, l2: floats >= 0.

    Returns:
        ``{"kernel": float32 [D, C], "bias": float32 [C]}`` for :func:`linear_probe`.
    """
    steps = _checks.positive_int(steps, "steps")
    features = x.reshape(x.shape[0], -1).astype(jnp.float32)
    weights = mask.astype(jnp.float32)
    targets = jax.nn.one_hot(jnp.where(mask, y, 0), classes, dtype=jnp.float32)
    params = init_linear_probe(features.shape[1], classes)
    optimizer = optax.adam(learning_rate)

    def loss(params):
        log_probs = jax.nn.log_softmax(features @ params["kernel"] + params["bias"])
        per_row = -jnp.sum(targets * log_probs, axis=1)
        data = jnp.sum(per_row * weights) / jnp.maximum(jnp.sum(weights), 1.0)
        return data + 0.5 * l2 * jnp.sum(params["kernel"] ** 2)

    def step(_, state):
        params, opt_state = state
        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    params, _ = jax.lax.fori_loop(0, steps, step, (params, optimizer.init(params)))
    return params

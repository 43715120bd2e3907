"""The points that distance-based cold-start strategies work on: the model's embeddings
or the raw inputs, optionally L2-normalised."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxal._points import computation_dtype
from jaxal.model import Model, forward

REPRESENTATIONS = ("embedding", "raw")


def pool_points(
    model: Model | None,
    params: Any,
    x: jax.Array,
    representation: str,
    normalize: bool,
    batch_size: int,
) -> jax.Array:
    """float32 [N, D]: the penultimate embeddings (``"embedding"``) or the inputs flattened
    (``"raw"``), each row divided by its L2 norm when ``normalize`` (zero rows stay zero)."""
    if representation == "raw":
        points = x.reshape(x.shape[0], -1)
    else:
        assert model is not None
        points = forward(model, params, x, batch_size)[1]
    points = points.astype(jnp.result_type(points.dtype, jnp.float32))
    return unit_rows(points) if normalize else points


def unit_rows(points: jax.Array) -> jax.Array:
    """float [N, D] (float32 at least): every row divided by its L2 norm; zero rows, and
    rows whose norm is NaN, become zeros."""
    points = points.astype(computation_dtype(points))
    norms = jnp.sqrt(jnp.sum(points * points, axis=1, keepdims=True))
    return jnp.where(norms > 0, points / jnp.where(norms > 0, norms, 1.0), 0.0)

"""Checks of the array arguments that the set functions and combinators share."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal import _checks


def ground_mask(ground: jax.Array | None, size: int, name: str = "ground") -> jax.Array:
    """bool [size]: ``ground`` checked (bool, shape (size,)), or all True when None."""
    if ground is None:
        return jnp.ones((size,), bool)
    ground = jnp.asarray(ground)
    if ground.shape != (size,) or ground.dtype != jnp.bool_:
        raise ValueError(f"{name} must be bool [{size}], got {ground.dtype} {ground.shape}")
    return ground


def memo_outside_ground(ground: jax.Array) -> jax.Array:
    """float32 [N] from a bool ground mask [N]: 0 on the ground set, +inf outside (a
    facility-location memo that never gains, so no mask multiplies a sum)."""
    return jnp.where(ground, 0.0, jnp.inf).astype(jnp.float32)


def row_vector(values: jax.Array, n: int, name: str) -> jax.Array:
    """float32 [n]: ``values`` with its shape checked."""
    values = jnp.asarray(values, jnp.float32)
    if values.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {values.shape}")
    return values


def distinct_indices(indices: jax.Array, size: int, name: str) -> jax.Array:
    """int32 [R]: ``indices`` checked to be an integer vector of distinct values in
    [0, size) (the values read when concrete: :func:`jaxal._checks.require`)."""
    indices = jnp.asarray(indices)
    if indices.ndim != 1 or not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"{name} must be an int [R] array, got {indices.dtype} {indices.shape}")
    if indices.size:
        _checks.require(
            indices,
            lambda xp, i: (i.min() >= 0) & (i.max() < size) & xp.all(xp.diff(xp.sort(i)) != 0),
            f"{name} must hold distinct indices in [0, {size})",
        )
    return indices.astype(jnp.int32)

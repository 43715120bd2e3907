"""Map a function over fixed-size row chunks of arrays, with static shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def map_chunks(
    fn: Callable[..., Any], *arrays: jax.Array, chunk_size: int, offset: jax.Array | int = 0
) -> Any:
    """Apply ``fn`` to consecutive row chunks and concatenate the results.

    The leading ``N // chunk_size`` full chunks go through one ``lax.map``; the remainder,
    if any, is one more call with a smaller static shape. Nothing is padded or copied.

    Args:
        fn: ``fn(*chunks, index)`` where each chunk is ``array[s:s + B]`` and ``index`` is
            int32 [B], the global row positions ``s .. s + B - 1``. Returns a pytree whose
            leaves have leading axis B.
        *arrays: arrays with the same leading axis N.
        chunk_size: B, a Python int >= 1.
        offset: int32 scalar, the global position of row 0 (a pool that is one chunk of a
            larger one).

    Returns:
        The pytree of ``fn``'s outputs, each leaf with leading axis N.
    """
    n = arrays[0].shape[0]
    chunk_size = min(chunk_size, n)
    full = n // chunk_size
    head = full * chunk_size
    index = jnp.arange(n, dtype=jnp.int32) + jnp.asarray(offset, jnp.int32)
    parts = []
    if full == 1:
        parts.append(fn(*(a[:head] for a in arrays), index[:head]))
    elif full > 1:
        stacked = [a[:head].reshape(full, chunk_size, *a.shape[1:]) for a in (*arrays, index)]
        mapped = jax.lax.map(lambda chunk: fn(*chunk), stacked)
        parts.append(jax.tree.map(lambda leaf: leaf.reshape(head, *leaf.shape[2:]), mapped))
    if head < n:
        parts.append(fn(*(a[head:] for a in arrays), index[head:]))
    if len(parts) == 1:
        return parts[0]
    return jax.tree.map(lambda *leaves: jnp.concatenate(leaves, axis=0), *parts)

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


def map_slices(
    fn: Callable[..., Any], *arrays: jax.Array, chunk_size: int, offset: jax.Array | int = 0
) -> Any:
    """:func:`map_chunks` for a row-wise ``fn``, without a copy of its inputs or outputs.

    Each chunk is a dynamic slice of ``arrays`` and its outputs are written in place into
    arrays of N rows, in a ``lax.fori_loop``: peak memory is the outputs plus one chunk,
    where :func:`map_chunks` holds its inputs' chunked copy (when B does not divide N) and
    concatenates its outputs (a second copy). When B does not divide N the last chunk is
    rows N - B .. N - 1 and overlaps the one before it: those rows are computed twice, so
    ``fn`` must be row-wise (row i of every output depends on row i of the inputs only).

    Args:
        fn: ``fn(*chunks, index)``, chunks [B, ...] and ``index`` int32 [B] their global
            row positions; returns a pytree of arrays with leading axis B.
        *arrays: arrays with the same leading axis N.
        chunk_size: B, a Python int >= 1.
        offset: int32 scalar, the global position of row 0.

    Returns:
        The pytree of ``fn``'s outputs, each leaf with leading axis N.
    """
    n = arrays[0].shape[0]
    size = min(chunk_size, n)
    index = jnp.arange(n, dtype=jnp.int32) + jnp.asarray(offset, jnp.int32)
    if size == n:
        return fn(*arrays, index)

    def chunk_at(k: jax.Array) -> tuple[jax.Array, Any]:
        start = jnp.minimum(k * size, n - size)
        sliced = (jax.lax.dynamic_slice_in_dim(a, start, size) for a in (*arrays, index))
        return start, fn(*sliced)

    shapes = jax.eval_shape(lambda: chunk_at(jnp.int32(0))[1])
    empty = jax.tree.map(lambda s: jnp.zeros((n, *s.shape[1:]), s.dtype), shapes)

    def write(k: jax.Array, outputs: Any) -> Any:
        start, chunk = chunk_at(k)
        return jax.tree.map(
            lambda out, part: jax.lax.dynamic_update_slice_in_dim(out, part, start, 0),
            outputs,
            chunk,
        )

    return jax.lax.fori_loop(0, -(-n // size), write, empty)

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

    The leading ``N // chunk_size`` full chunks are dynamic slices of ``arrays`` in one
    loop (:func:`fill_chunks`, which never copies the inputs); the remainder, if any, is
    one more call with a smaller static shape. Nothing is padded.

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
    size = min(chunk_size, n)
    full = n // size
    head = full * size
    index = jnp.arange(n, dtype=jnp.int32) + jnp.asarray(offset, jnp.int32)
    parts = [fill_chunks(fn, (*arrays, index), size, full, head, lambda k: k * size)]
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
    arrays of N rows (:func:`fill_chunks`): peak memory is the outputs plus one chunk,
    where :func:`map_chunks` concatenates its outputs (a second copy) when B does not
    divide N. When B does not divide N the last chunk is rows N - B .. N - 1 and overlaps
    the one before it: those rows are computed twice, so ``fn`` must be row-wise (row i
    of every output depends on row i of the inputs only).

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
    count = -(-n // size)
    return fill_chunks(
        fn, (*arrays, index), size, count, n, lambda k: jnp.minimum(k * size, n - size)
    )


def fill_chunks(
    fn: Callable[..., Any],
    arrays: tuple[jax.Array, ...],
    size: int,
    count: int,
    rows: int,
    start_of: Callable[[jax.Array], jax.Array],
) -> Any:
    """``fn`` of ``count`` row chunks of ``arrays``, written into outputs in one loop.

    Chunk k is rows ``start_of(k) .. start_of(k) + size - 1`` of every array, and
    ``fn``'s outputs for it are written at the same rows. The inputs ride in the loop's
    state behind an optimization barrier: XLA would otherwise move a conversion that
    ``fn`` applies to each chunk (a bfloat16 pool read as float32) out of the loop, onto a
    converted copy of the whole array, which on CPU made a read of 1,000,000 x 128
    bfloat16 embeddings 4x slower than of float32 and added the copy's memory.

    Args:
        fn: ``fn(*chunks)``, chunks [size, ...]; returns a pytree with leading axis size.
        arrays: arrays with the same leading axis N >= the last chunk's end.
        size: rows per chunk, a Python int.
        count: chunks, a Python int >= 1.
        rows: the outputs' leading axis, a Python int (the last chunk ends there).
        start_of: int32 chunk number k -> int32 first row of chunk k.

    Returns:
        The pytree of ``fn``'s outputs, each leaf with leading axis ``rows`` (rows no
        chunk covers are 0).
    """

    def chunk(inputs: tuple[jax.Array, ...], k: jax.Array) -> tuple[jax.Array, Any]:
        start = start_of(k)
        return start, fn(*(jax.lax.dynamic_slice_in_dim(a, start, size) for a in inputs))

    shapes = jax.eval_shape(lambda: chunk(arrays, jnp.int32(0))[1])
    empty = jax.tree.map(lambda s: jnp.zeros((rows, *s.shape[1:]), s.dtype), shapes)

    def write(k: jax.Array, state: tuple[Any, tuple[jax.Array, ...]]) -> tuple[Any, Any]:
        outputs, inputs = state
        inputs = jax.lax.optimization_barrier(inputs)
        start, part = chunk(inputs, k)
        outputs = jax.tree.map(
            lambda out, new: jax.lax.dynamic_update_slice_in_dim(out, new, start, 0),
            outputs,
            part,
        )
        return outputs, inputs

    return jax.lax.fori_loop(0, count, write, (empty, arrays))[0]

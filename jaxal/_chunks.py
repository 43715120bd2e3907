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


def fold_leading_rows(
    fn: Callable[..., Any],
    arrays: tuple[jax.Array, ...],
    count: jax.Array | int,
    out: Any,
    chunk_size: int,
) -> Any:
    """Update ``out`` block by block over the first ``count`` rows only.

    A ``lax.while_loop`` visits blocks of ``chunk_size`` rows from row 0 until ``count``
    rows are covered, so the cost follows ``count`` (a traced value), not N; rows past the
    last block keep their value in ``out``. The last block starts at N - chunk_size at the
    latest, so it may revisit rows of the block before it: ``fn`` must give those rows the
    same result again (a pure function of the block does).

    Args:
        fn: ``fn(*blocks, out_block) -> out_block`` where each block is
            ``array[s:s + B]`` and ``out_block`` the same rows of every leaf of ``out``.
        arrays: arrays with the same leading axis N.
        count: int scalar in [0, N] (may be traced), the rows that must be visited.
        out: a pytree of arrays with leading axis N, the initial values.
        chunk_size: B, a Python int >= 1.

    Returns:
        ``out`` with the visited rows replaced by ``fn``'s results.
    """
    n = arrays[0].shape[0]
    chunk_size = min(chunk_size, n)

    def more(state):
        return state[0] * chunk_size < count

    def block(state):
        step, current = state
        start = jnp.minimum(step * chunk_size, n - chunk_size)
        rows = [jax.lax.dynamic_slice_in_dim(a, start, chunk_size) for a in arrays]
        old = jax.tree.map(
            lambda leaf: jax.lax.dynamic_slice_in_dim(leaf, start, chunk_size), current
        )
        new = fn(*rows, old)
        current = jax.tree.map(
            lambda leaf, part: jax.lax.dynamic_update_slice_in_dim(leaf, part, start, 0),
            current,
            new,
        )
        return step + 1, current

    return jax.lax.while_loop(more, block, (jnp.int32(0), out))[1]

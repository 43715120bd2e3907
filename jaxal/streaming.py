"""Selection over pools that do not fit in memory: one pass over chunks, bounded memory.

A pool given as a NumPy array or memmap ``[N, ...]`` (read ``chunk_size`` rows at a time)
or as an iterable of chunks is scored chunk by chunk; only the running best ``budget``
points, or the embeddings for k-center greedy, stay in memory. This is the host-side
driver layer: a Python loop over chunks, each chunk through one compiled function (the
last chunk is padded with labeled rows, so every chunk has the same shape).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _checks, selectors
from jaxal.model import Model, forward
from jaxal.pool import Pool
from jaxal.strategies import Strategy

Chunks = np.ndarray | Iterable[np.ndarray]


def top_k(
    strategy: Strategy,
    params: Any,
    x: Chunks,
    key: jax.Array,
    *,
    labeled: np.ndarray | None = None,
    chunk_size: int = 65536,
) -> np.ndarray:
    """Stream a scored strategy over a pool and keep a running top ``strategy.budget``.

    Equals ``strategy.select`` on the whole pool in memory (the same scores: per-point
    randomness derives from global indices through ``Pool.offset``; ties to the lower
    index), in one pass with memory O(chunk_size + budget).

    Args:
        strategy: a strategy with a per-point ``score`` (entropy, margin, BALD, ...)
            and no extra inputs.
        params: the model's parameters.
        x: inputs [N, ...] as an array or ``np.memmap``, or an iterable of chunks
            [B_j, ...] (every chunk but the last must have ``chunk_size`` rows).
        key: PRNG key, as for ``strategy.select``.
        labeled: bool [N], the labeled points (never selected); default none.
        chunk_size: rows per chunk.

    Returns:
        int64 [budget] global indices, best first; -1 where fewer points are unlabeled.
    """
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")
    if strategy.inputs:
        raise TypeError(
            f"streaming top_k scores each chunk alone, without inputs; {strategy.name!r} "
            f"takes {', '.join(strategy.inputs)} (EPIG's score of a point depends on its "
            "targets): select on the pool in memory"
        )
    budget = strategy.budget
    score_chunk = jax.jit(lambda params, pool, key: strategy.score(params, pool, key))
    merge = jax.jit(_merge)
    best_scores = jnp.full((budget,), -jnp.inf, jnp.float32)
    best_index = jnp.full((budget,), -1, jnp.int32)
    seen = 0
    for start, chunk, chunk_labeled in _chunks(x, labeled, chunk_size):
        pool = _padded_pool(chunk, chunk_labeled, start, chunk_size)
        scores = score_chunk(params, pool, key)
        if scores is None:
            raise TypeError(f"streaming top_k needs a scored strategy; {strategy.name!r} is not")
        best_scores, best_index = merge(best_scores, best_index, scores, pool.labeled, start)
        seen = start + len(chunk)
    if seen == 0:
        raise ValueError("x holds no points")
    return np.asarray(best_index).astype(np.int64)


def embeddings(
    model: Model,
    params: Any,
    x: Chunks,
    *,
    chunk_size: int = 65536,
) -> np.ndarray:
    """Penultimate embeddings of a streamed pool, computed chunk by chunk.

    Returns:
        float32 [N, D] in host memory (N * D * 4 bytes).
    """
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")
    embed = jax.jit(lambda params, chunk: forward(model, params, chunk, chunk_size)[1])
    known_size = x.shape[0] if isinstance(x, np.ndarray) else None
    filled: np.ndarray | None = None  # [N, D], allocated once when N is known
    parts = []
    for start, chunk, _ in _chunks(x, None, chunk_size):
        rows = np.asarray(embed(params, _pad_rows(chunk, chunk_size)))[: len(chunk)]
        if known_size is None:
            parts.append(rows)
            continue
        if filled is None:
            filled = np.empty((known_size, rows.shape[1]), rows.dtype)
        filled[start : start + len(rows)] = rows
    if filled is not None:
        return filled
    if not parts:
        raise ValueError("x holds no points")
    return np.concatenate(parts)


def k_center_greedy(
    model: Model,
    params: Any,
    x: Chunks,
    budget: int,
    key: jax.Array,
    *,
    labeled: np.ndarray | None = None,
    chunk_size: int = 65536,
) -> np.ndarray:
    """CoreSet over a streamed pool: embeddings chunk by chunk, then k-center greedy.

    Equals ``jaxal.strategies.coreset(model, budget).select`` on the pool in memory; the
    inputs are never all in memory, only the [N, D] embeddings.

    Returns:
        int64 [budget] global indices in pick order.
    """
    budget = _checks.positive_int(budget, "budget")
    features = jnp.asarray(embeddings(model, params, x, chunk_size=chunk_size))
    _checks.finite(features, "embeddings")
    n = features.shape[0]
    reference = jnp.zeros((n,), bool) if labeled is None else jnp.asarray(labeled, bool)
    if reference.shape != (n,):
        raise ValueError(f"labeled must have shape ({n},), got {reference.shape}")
    _checks.budget_fits(budget, ~reference)
    select = jax.jit(selectors.k_center_greedy, static_argnums=(3,))
    return np.asarray(select(features, ~reference, reference, budget, key)).astype(np.int64)


def _merge(best_scores, best_index, scores, chunk_labeled, start):
    """Top ``budget`` of the running best and a chunk's unlabeled scores [B]."""
    budget = best_scores.shape[0]
    ranked = selectors.rank_keys(
        scores, ~chunk_labeled & jnp.isfinite(scores)
    )  # as selectors.top_k
    chunk_index = start + jnp.arange(scores.shape[0], dtype=jnp.int32)
    all_scores = jnp.concatenate([best_scores, ranked])
    all_index = jnp.concatenate([best_index, jnp.where(chunk_labeled, -1, chunk_index)])
    top_scores, position = jax.lax.top_k(all_scores, budget)
    return top_scores, jnp.where(jnp.isneginf(top_scores), -1, all_index[position])


def _chunks(
    x: Chunks, labeled: np.ndarray | None, chunk_size: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, chunk [B, ...], labeled [B]) for consecutive chunks of ``x``."""
    if hasattr(x, "shape") and hasattr(x, "__getitem__"):
        n = x.shape[0]
        parts: Iterable[np.ndarray] = (x[s : s + chunk_size] for s in range(0, n, chunk_size))
    else:
        parts = x
    start = 0
    for chunk in parts:
        chunk = np.asarray(chunk)
        if len(chunk) > chunk_size:
            raise ValueError(f"a chunk has {len(chunk)} rows, more than chunk_size={chunk_size}")
        if labeled is None:
            chunk_labeled = np.zeros(len(chunk), bool)
        else:
            chunk_labeled = np.asarray(labeled[start : start + len(chunk)], bool)
            if len(chunk_labeled) != len(chunk):
                raise ValueError("labeled is shorter than x")
        yield start, chunk, chunk_labeled
        start += len(chunk)


def _pad_rows(array: np.ndarray, size: int, fill: Any = 0) -> np.ndarray:
    if len(array) == size:
        return array
    padding = np.full((size - len(array), *array.shape[1:]), fill, array.dtype)
    return np.concatenate([array, padding])


def _padded_pool(chunk: np.ndarray, chunk_labeled: np.ndarray, start: int, size: int) -> Pool:
    """A Pool of exactly ``size`` rows; padding rows count as labeled (never selected)."""
    _checks.finite(chunk, "x")
    return Pool(
        x=jnp.asarray(_pad_rows(chunk, size)),
        y=jnp.full((size,), -1, jnp.int32),
        labeled=jnp.asarray(_pad_rows(chunk_labeled, size, fill=True)),
        offset=jnp.int32(start),
    )

"""The linear-probe workload of ``million.py``: precomputed embeddings and a linear head.

The pool holds the embeddings themselves, [N, 128] (float32, or bfloat16 storage): the
hidden units of ``strategies.py``'s network (a fixed random ReLU layer over its synthetic
64-feature blobs), computed once when the pool is made, as a frozen feature extractor
would. The model is the linear head alone (10 classes), with dropout 0.5 on its input for
the MC strategies (``head`` path), and 10,000 points are labeled. A strategy that reads
embeddings reads the stored array, in its storage dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from strategies import DROPOUT, make_params, make_pool

import jaxal

LABELED = 10_000
STORAGE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_ROWS = 1 << 16  # rows per block when the embeddings are computed


def probe_head(params: dict[str, jax.Array], embedding: jax.Array) -> jax.Array:
    """Logits float32 [B, 10] of embeddings [B, 128] (any float dtype)."""
    return embedding.astype(jnp.float32) @ params["w2"] + params["b2"]


def probe_apply(
    params: dict[str, jax.Array], embedding: jax.Array, rng: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    """(logits [B, 10], the stored embedding [B, 128] itself); with ``rng``, inverted
    dropout on the head's input."""
    dropped = embedding.astype(jnp.float32)
    if rng is not None:
        keep = jax.random.bernoulli(rng, 1.0 - DROPOUT, dropped.shape)
        dropped = jnp.where(keep, dropped / (1.0 - DROPOUT), 0.0)
    return probe_head(params, dropped), embedding


PROBE_MODEL = jaxal.Model(apply=probe_apply, head=probe_head, head_dropout=DROPOUT)


def embed(params: dict[str, jax.Array], x: np.ndarray, storage: str) -> jax.Array:
    """The hidden units relu(x w1 + b1) [N, 128] of inputs x [N, 64], in the storage
    dtype, computed in blocks of rows (no [N, 128] float32 temporary beside a bfloat16
    result)."""
    w1, b1 = np.asarray(params["w1"]), np.asarray(params["b1"])
    dtype = STORAGE_DTYPES[storage]
    blocks = [
        jnp.asarray(np.maximum(x[s : s + _ROWS] @ w1 + b1, 0.0), dtype)
        for s in range(0, len(x), _ROWS)
    ]
    return jnp.concatenate(blocks)


def make_probe_workload(
    n: int, seed: int, storage: str
) -> tuple[dict[str, jax.Array], jaxal.Pool, np.ndarray]:
    """(head params, the pool of embeddings with 10,000 labeled points, their indices)."""
    x, y, _ = make_pool(n, seed)
    labeled = np.random.default_rng([seed, 7]).choice(n, size=min(LABELED, n - 1), replace=False)
    params = make_params(x, y, labeled, seed)
    pool = jaxal.Pool.create(embed(params, x, storage), labeled=labeled)
    return params, pool, labeled

"""Chunked maps over rows: map_slices against a plain NumPy row-wise computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal._chunks import map_chunks, map_slices


def row_stats(x, y, index):
    """Row-wise: (sum of squares [B], x * y [B, D], index + 1 [B])."""
    return jnp.sum(x * x, axis=1), x * y, index + 1


def reference(x, y, offset):
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    index = np.arange(x.shape[0]) + offset
    return np.sum(x64 * x64, axis=1), x64 * y64, index + 1


@pytest.mark.parametrize("n, chunk_size", [(10, 3), (12, 4), (7, 7), (5, 9), (1, 1), (13, 1)])
@pytest.mark.parametrize("jit", [False, True])
def test_map_slices_matches_numpy_and_map_chunks(n, chunk_size, jit):
    rng = np.random.default_rng(n * 31 + chunk_size)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = rng.normal(size=(n, 3)).astype(np.float32)
    offset = int(rng.integers(0, 100))

    def run(mapper, x, y, offset):
        return mapper(row_stats, x, y, chunk_size=chunk_size, offset=offset)

    run_slices = jax.jit(run, static_argnums=0) if jit else run
    got = run_slices(map_slices, jnp.asarray(x), jnp.asarray(y), offset)
    chunked = run(map_chunks, jnp.asarray(x), jnp.asarray(y), offset)
    for ours, want, other in zip(got, reference(x, y, offset), chunked, strict=True):
        assert ours.shape == want.shape
        np.testing.assert_allclose(np.asarray(ours), want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.asarray(ours), np.asarray(other), rtol=1e-6, atol=1e-6)


def test_map_slices_calls_fn_on_chunks_of_the_given_size():
    sizes = []

    def record(x, index):
        sizes.append(x.shape[0])
        return x

    map_slices(record, jnp.ones((10, 2)), chunk_size=4)
    assert sizes and set(sizes) == {4}


@pytest.mark.parametrize("mapper", [map_chunks, map_slices])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_maps_never_copy_their_inputs(mapper, dtype):
    # A chunk size that does not divide N, and a float32 read of each chunk: neither the
    # full chunks' rows nor a float32 conversion of the whole input may be materialised
    # (XLA would hoist a per-chunk conversion out of the loop onto the whole array).
    n, d, chunk = 20_003, 64, 1000
    x = jax.ShapeDtypeStruct((n, d), dtype)

    def row_sums(x):
        return mapper(lambda c, index: c.astype(jnp.float32).sum(-1), x, chunk_size=chunk)

    compiled = jax.jit(row_sums).lower(x).compile()
    temporaries = compiled.memory_analysis().temp_size_in_bytes
    input_bytes = n * d * jnp.dtype(dtype).itemsize
    assert temporaries < input_bytes / 4

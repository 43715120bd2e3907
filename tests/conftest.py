"""Shared fixtures: tiny seeded models and pools, built once per session."""

from __future__ import annotations

import os

# Four host devices, so that sharded pools can be tested on a CPU. Must precede `import jax`.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal


def _map_count(path: str) -> int | None:
    """Lines of a /proc file (None off Linux)."""
    try:
        with open(path, "rb") as file:
            return file.read().count(b"\n")
    except OSError:
        return None


def _max_map_count() -> int | None:
    try:
        with open("/proc/sys/vm/max_map_count") as file:
            return int(file.read())
    except (OSError, ValueError):
        return None


_MAX_MAPS = _max_map_count()


def pytest_runtest_teardown(item, nextitem):
    """Clear JAX's caches once this worker holds half of Linux's memory-map limit: every
    compiled executable keeps its maps, and a worker that reaches vm.max_map_count dies
    with a segmentation fault inside XLA's compiler."""
    del item, nextitem
    maps = _map_count("/proc/self/maps")
    if _MAX_MAPS and maps and maps > _MAX_MAPS // 2:
        jax.clear_caches()


N_POINTS = 96
N_FEATURES = 6
N_HIDDEN = 16
N_CLASSES = 4
N_LABELED = 12


class DropoutMLP(nn.Module):
    """features -> hidden (ReLU) -> dropout -> classes; returns (logits, hidden)."""

    hidden: int = N_HIDDEN
    classes: int = N_CLASSES

    @nn.compact
    def __call__(self, x, train: bool):
        hidden = nn.relu(nn.Dense(self.hidden)(x))
        dropped = nn.Dropout(0.5, deterministic=not train)(hidden)
        return nn.Dense(self.classes)(dropped), hidden


def dense_head(params, embedding):
    """The last Dense layer of DropoutMLP, as a head function."""
    layer = params["params"]["Dense_1"]
    return embedding @ layer["kernel"] + layer["bias"]


def numpy_mlp(params, x):
    """float64 forward pass of conftest.DropoutMLP in eval mode: (logits, hidden)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
    hidden = np.maximum(
        np.asarray(x, np.float64) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0
    )
    return hidden @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], hidden


def softmax(logits):
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


@pytest.fixture(scope="session")
def mlp():
    module = DropoutMLP()
    x = jax.random.normal(jax.random.key(0), (N_POINTS, N_FEATURES))
    params = module.init(jax.random.key(1), x[:2], train=False)
    # Scale the weights up so that predictions are confident and varied.
    params = jax.tree.map(lambda w: 2.0 * w, params)
    return module, params, x


@pytest.fixture(scope="session")
def model(mlp):
    return jaxal.from_flax(mlp[0])


@pytest.fixture(scope="session")
def head_model(mlp):
    return jaxal.from_flax(mlp[0], head=dense_head, head_dropout=0.5)


@pytest.fixture(scope="session")
def params(mlp):
    return mlp[1]


@pytest.fixture(scope="session")
def pool(mlp):
    labeled = np.random.default_rng(0).choice(N_POINTS, N_LABELED, replace=False)
    return jaxal.Pool.create(mlp[2], labeled=jnp.asarray(labeled))


@pytest.fixture
def key():
    return jax.random.key(42)

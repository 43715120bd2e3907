"""Shared fixtures: tiny seeded models and pools, built once per session; a persistent
compilation cache; JAX's caches cleared before a worker runs out of memory maps; the
``slow`` marker and the xdist groups of the contract table."""

from __future__ import annotations

import os

# Four host devices, so that sharded pools can be tested on a CPU. Must precede `import jax`.
# A process that already sets a count keeps it (tests/multi_process_worker.py: one each).
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
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


def pytest_configure(config):
    """A persistent XLA compilation cache under pytest's cache directory
    (``.pytest_cache/d/jax``): xdist workers and later runs load compiled programs instead
    of compiling them again, the unjitted loops of a strategy included. Left alone when
    ``JAX_COMPILATION_CACHE_DIR`` is set, or pytest's cache is off (``-p no:cacheprovider``)."""
    cache = getattr(config, "cache", None)
    if cache is None or jax.config.jax_compilation_cache_dir is not None:
        return
    jax.config.update("jax_compilation_cache_dir", str(cache.mkdir("jax")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def pytest_runtest_teardown(item, nextitem):
    """Clear JAX's caches once this worker holds half of Linux's memory-map limit: every
    compiled executable keeps its maps, and a worker that reaches vm.max_map_count dies
    with a segmentation fault inside XLA's compiler."""
    del item, nextitem
    maps = _map_count("/proc/self/maps")
    if _MAX_MAPS and maps and maps > _MAX_MAPS // 2:
        jax.clear_caches()


# End-to-end ``jaxal`` runs in tests/test_cli.py (marked ``slow`` here: that file is left as
# it is): the tests that use a whole run's fixture, and those that run experiments.
SLOW_CLI_FIXTURES = {"finished", "four_rounds"}
SLOW_CLI_TESTS = {
    "test_tables_and_progress",
    "test_resume_ends_with_the_same_results",
    "test_user_model_from_a_file",
    "test_npz_dataset",
    "test_resume_after_sigkill_in_a_round",
}
# Modules parametrized over tests/test_contract.py's table (ids = test_contract.IDS).
CONTRACT_TABLE_MODULES = {"test_contract.py", "test_sharding.py"}


def pytest_collection_modifyitems(config, items):
    """Mark the CLI's end-to-end runs ``slow``; put the tests of one case of the contract
    table on one xdist worker (``--dist loadgroup``), which builds and compiles its strategy
    once (tests/test_contract.py's ``_built``)."""
    del config
    for item in items:
        module = item.path.name
        if module == "test_cli.py" and (
            SLOW_CLI_FIXTURES & set(getattr(item, "fixturenames", ()))
            or getattr(item, "originalname", item.name) in SLOW_CLI_TESTS
        ):
            item.add_marker(pytest.mark.slow)
        callspec = getattr(item, "callspec", None)
        if module in CONTRACT_TABLE_MODULES and callspec is not None:
            item.add_marker(pytest.mark.xdist_group(f"contract-{callspec.id}"))


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


BLOB_POINTS, BLOB_FEATURES, BLOB_CLASSES = 64, 16, 3


@pytest.fixture(scope="session")
def blobs():
    """Three well separated Gaussian blobs: x [BLOB_POINTS, BLOB_FEATURES], y [BLOB_POINTS]
    in [0, BLOB_CLASSES) (the trainer tests, linen and nnx)."""
    rng = np.random.default_rng(0)
    y = np.arange(BLOB_POINTS) % BLOB_CLASSES
    centers = rng.normal(size=(BLOB_CLASSES, BLOB_FEATURES)) * 3.0
    x = (centers[y] + rng.normal(size=(BLOB_POINTS, BLOB_FEATURES))).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y, jnp.int32)


def tiny_mlp():
    """(DropoutMLP(), its params, x [N_POINTS, N_FEATURES]), seeded: the ``mlp`` fixture,
    also built outside pytest (tests/multi_process_worker.py)."""
    module = DropoutMLP()
    x = jax.random.normal(jax.random.key(0), (N_POINTS, N_FEATURES))
    params = module.init(jax.random.key(1), x[:2], train=False)
    # Scale the weights up so that predictions are confident and varied.
    params = jax.tree.map(lambda w: 2.0 * w, params)
    return module, params, x


def labeled_mask():
    """bool [N_POINTS]: the ``pool`` fixture's N_LABELED labeled points, seeded."""
    mask = np.zeros(N_POINTS, bool)
    mask[np.random.default_rng(0).choice(N_POINTS, N_LABELED, replace=False)] = True
    return mask


KEY_SEED = 42  # the ``key`` fixture's seed


@pytest.fixture(scope="session")
def mlp():
    return tiny_mlp()


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
    return jaxal.Pool.create(mlp[2], labeled=jnp.asarray(labeled_mask()))


@pytest.fixture
def key():
    return jax.random.key(KEY_SEED)

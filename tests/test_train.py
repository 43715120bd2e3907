"""jaxal.train: the models' contract, the CNN's convolution, and the optax training loop."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import train
from tests.conftest import BLOB_CLASSES as C
from tests.conftest import BLOB_POINTS as N


@pytest.fixture(scope="module")
def mlp_trainer():
    return train.trainer(train.MLP(num_classes=C, hidden=32), steps=60, batch_size=16)


@pytest.fixture(scope="module")
def fit(mlp_trainer):
    return jax.jit(mlp_trainer.fit)


@pytest.mark.parametrize(
    ("module", "shape", "embedding"),
    [
        (train.MLP(num_classes=5, hidden=8), (3, 12), 8),
        (train.MLP(num_classes=5, hidden=8), (3, 4, 4, 2), 8),
        (train.CNN(num_classes=5, features=(4,), hidden=6), (3, 8, 8, 2), 6),
        (train.CNN(num_classes=5, features=(4, 4), hidden=6), (3, 64), 6),
        (train.CNN(num_classes=5, features=(4,), hidden=6), (3, 5, 7), 6),
    ],
)
def test_models_return_logits_and_embedding(module, shape, embedding):
    x = jnp.ones(shape)
    variables = module.init(jax.random.key(0), x, train=False)
    logits, features = module.apply(variables, x, train=False)
    assert logits.shape == (3, 5) and features.shape == (3, embedding)
    # Dropout is on with train=True and the 'dropout' stream, off with train=False.
    model = jaxal.from_flax(module)
    stochastic, _ = model.apply(variables, x, jax.random.key(1))
    np.testing.assert_array_equal(model.apply(variables, x, None)[0], logits)
    assert stochastic.shape == logits.shape


def test_cnn_convolution_equals_nn_conv():
    x = jax.random.normal(jax.random.key(0), (2, 5, 7, 3))
    conv = nn.Conv(4, (3, 3))
    variables = conv.init(jax.random.key(1), x)
    kernel = variables["params"]["kernel"].reshape(27, 4)
    ours = train.patches_3x3(x) @ kernel + variables["params"]["bias"]
    np.testing.assert_allclose(ours, conv.apply(variables, x), atol=1e-5)


def test_max_pool_2x2():
    x = jnp.arange(2 * 5 * 4 * 1, dtype=jnp.float32).reshape(2, 5, 4, 1)
    pooled = train.max_pool_2x2(x)
    expected = np.asarray(x)[:, :4].reshape(2, 2, 2, 2, 2, 1).max(axis=(2, 4))
    np.testing.assert_array_equal(pooled, expected)
    assert train.max_pool_2x2(jnp.ones((1, 1, 3, 2))).shape == (1, 1, 3, 2)


def test_as_image_rejects_non_square_vectors():
    with pytest.raises(ValueError, match="square"):
        train.as_image(jnp.ones((2, 10)))


def test_training_learns_the_labeled_points_and_is_deterministic(blobs, mlp_trainer, fit):
    x, y = blobs
    mask = jnp.zeros(N, bool).at[:12].set(True)
    init_key, fit_key = jax.random.split(jax.random.key(0))
    start = mlp_trainer.init(init_key, x)
    state = fit(start, x, y, mask, fit_key)
    accuracy = jax.jit(mlp_trainer.accuracy)
    assert float(accuracy(state.params, x, y)) > float(accuracy(start.params, x, y))
    assert float(accuracy(state.params, x, y)) >= 0.9
    again = fit(start, x, y, mask, fit_key)
    jax.tree.map(np.testing.assert_array_equal, state, again)
    # train() is init + fit from the same key split.
    jax.tree.map(
        np.testing.assert_array_equal,
        state.params,
        jax.jit(mlp_trainer.train)(x, y, mask, jax.random.key(0)),
    )


def test_only_labeled_points_with_known_labels_count(blobs, mlp_trainer, fit):
    x, y = blobs
    mask = jnp.zeros(N, bool).at[:12].set(True)
    state = mlp_trainer.init(jax.random.key(0), x)
    reference = fit(state, x, y, mask, jax.random.key(1))
    # Labels outside the mask, and masked points whose label is unknown (-1), are ignored.
    scrambled = y.at[12:].set((y[12:] + 1) % C)
    jax.tree.map(
        np.testing.assert_array_equal, reference, fit(state, x, scrambled, mask, jax.random.key(1))
    )
    unknown = jnp.concatenate([y[:12], jnp.full(N - 12, -1, jnp.int32)])
    jax.tree.map(
        np.testing.assert_array_equal,
        reference,
        fit(state, x, unknown, jnp.ones(N, bool), jax.random.key(1)),
    )


def test_no_usable_point_leaves_the_state_unchanged(blobs, mlp_trainer, fit):
    x, y = blobs
    state = mlp_trainer.init(jax.random.key(0), x)
    after = fit(state, x, y, jnp.zeros(N, bool), jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, state, after)


def test_full_batch_and_accuracy_in_chunks(blobs):
    x, y = blobs
    trainer = train.trainer(train.MLP(num_classes=C, hidden=8), steps=5, batch_size=None)
    params = jax.jit(trainer.train)(x, y, jnp.ones(N, bool), jax.random.key(0))
    chunked = train.trainer(train.MLP(num_classes=C, hidden=8), eval_batch_size=7)
    np.testing.assert_allclose(chunked.predict(params, x), trainer.predict(params, x), atol=1e-6)


class BatchNormNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        hidden = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(8)(x)))
        return nn.Dense(C)(hidden), hidden


def test_batch_stats_are_updated_by_training(blobs):
    x, y = blobs
    trainer = train.trainer(BatchNormNet(), steps=3, batch_size=8)
    state = trainer.init(jax.random.key(0), x)
    after = jax.jit(trainer.fit)(state, x, y, jnp.ones(N, bool), jax.random.key(1))
    assert set(after.params) == {"params", "batch_stats"}
    mean = after.params["batch_stats"]["BatchNorm_0"]["mean"]
    assert not np.allclose(mean, state.params["batch_stats"]["BatchNorm_0"]["mean"])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"steps": 0}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"learning_rate": -1.0}, ValueError),
        ({"steps": 2.5}, TypeError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        train.trainer(train.MLP(), **kwargs)

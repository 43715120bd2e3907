"""A small optax training loop and two small Flax models, for examples and the runner.

The models follow jaxal's Flax contract: ``__call__(x, train: bool) -> (logits [B, C],
embedding [B, D])``, with dropout on the ``'dropout'`` rng stream, so
``jaxal.from_flax(module)`` gives the strategies their :class:`jaxal.Model`.

:func:`trainer` returns pure functions in optax's shape; nothing is jitted here, the
caller jits::

    trainer = jaxal.train.trainer(jaxal.train.MLP(num_classes=10))
    train = jax.jit(trainer.train)             # (x, y, mask, key) -> params
    params = train(pool.x, pool.y, pool.labeled, key)
    accuracy = jax.jit(trainer.accuracy)(params, x_test, y_test)

Letters: N pool points, B points per step (``batch_size``), C classes, D embedding size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.core import unfreeze

from jaxal import _checks
from jaxal._chunks import map_chunks


class MLP(nn.Module):
    """Inputs flattened -> ``hidden`` (ReLU) -> dropout -> ``num_classes``.

    Returns ``(logits [B, C], embedding [B, hidden])``; the embedding is the ReLU layer,
    before dropout.
    """

    num_classes: int = 10
    hidden: int = 128
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        x = x.reshape(x.shape[0], -1)
        hidden = nn.relu(nn.Dense(self.hidden)(x))
        dropped = nn.Dropout(self.dropout, deterministic=not train)(hidden)
        return nn.Dense(self.num_classes)(dropped), hidden


class CNN(nn.Module):
    """Per width in ``features``: a 3x3 convolution (same padding), ReLU, 2x2 max pool;
    then a ReLU layer of ``hidden`` units, dropout and the ``num_classes`` logits.

    Takes images [B, H, W, C] or [B, H, W]; vectors [B, D] with D a perfect square are
    read as square one-channel images (so ``CNN`` runs on digits' 64 pixels as 8x8).
    Returns ``(logits [B, C], embedding [B, hidden])``.

    Each convolution is computed as a matrix product over 3x3 patches (the same function
    as ``nn.Conv(width, (3, 3))``): XLA's CPU convolutions run much slower inside a loop
    body such as the training ``lax.scan`` than outside one; matrix products do not.
    """

    num_classes: int = 10
    features: Sequence[int] = (32, 64)
    hidden: int = 128
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        x = as_image(x)
        for width in self.features:
            x = max_pool_2x2(nn.relu(nn.Dense(width)(patches_3x3(x))))
        hidden = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
        dropped = nn.Dropout(self.dropout, deterministic=not train)(hidden)
        return nn.Dense(self.num_classes)(dropped), hidden


def patches_3x3(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, 9 C]: each pixel's 3x3 neighbourhood (zero padded)."""
    height, width = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    shifted = [padded[:, i : i + height, j : j + width] for i in range(3) for j in range(3)]
    return jnp.concatenate(shifted, axis=-1)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, H // 2, W // 2, C], max over 2x2 blocks (an odd last row or
    column is dropped); images smaller than 2x2 pass unchanged."""
    batch, height, width, channels = x.shape
    if min(height, width) < 2:
        return x
    x = x[:, : height // 2 * 2, : width // 2 * 2]
    return x.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))


def as_image(x: jax.Array) -> jax.Array:
    """[B, H, W, C] as is; [B, H, W] -> [B, H, W, 1]; [B, D] with D = S^2 -> [B, S, S, 1].

    Raises:
        ValueError: a vector whose length is not a perfect square, or rank > 4.
    """
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side == x.shape[1]:
            return x.reshape(x.shape[0], side, side, 1)
    raise ValueError(
        f"the CNN takes images [B, H, W, C], [B, H, W] or square vectors [B, S*S]; got "
        f"shape {x.shape}"
    )


class TrainState(NamedTuple):
    """What training carries from step to step.

    Attributes:
        params: the module's variables (``{"params": ..., "batch_stats": ...}`` as
            ``module.init`` returns them): what ``jaxal.from_flax(module)`` takes.
        opt_state: the optimizer state of ``params["params"]``.
    """

    params: Any
    opt_state: Any


class Trainer(NamedTuple):
    """Pure training and evaluation functions for one module (see :func:`trainer`).

    Attributes:
        init: ``init(key, x) -> TrainState``: fresh variables (shapes from ``x`` [B, ...])
            and optimizer state.
        fit: ``fit(state, x [N, ...], y [N], mask [N], key) -> TrainState``: ``steps``
            optimizer steps on the points where ``mask`` is True and ``y >= 0``.
        train: ``train(x, y, mask, key) -> params``: ``init`` then ``fit`` from scratch.
        predict: ``predict(params, x [M, ...]) -> logits [M, C]``, the eval pass in
            chunks of ``eval_batch_size``.
        accuracy: ``accuracy(params, x [M, ...], y [M]) -> float32 scalar``.
        steps: optimizer steps per ``fit``.
        batch_size: points per step (sampled with replacement), or None for full-batch
            steps over the whole masked pool.
    """

    init: Callable[[jax.Array, jax.Array], TrainState]
    fit: Callable[[TrainState, jax.Array, jax.Array, jax.Array, jax.Array], TrainState]
    train: Callable[[jax.Array, jax.Array, jax.Array, jax.Array], Any]
    predict: Callable[[Any, jax.Array], jax.Array]
    accuracy: Callable[[Any, jax.Array, jax.Array], jax.Array]
    steps: int
    batch_size: int | None


def trainer(
    module: nn.Module,
    *,
    steps: int = 300,
    learning_rate: float = 1e-2,
    batch_size: int | None = 64,
    optimizer: optax.GradientTransformation | None = None,
    eval_batch_size: int = 1024,
) -> Trainer:
    """Training for a linen module whose ``__call__(x, train)`` returns (logits, embedding).

    Each step draws ``batch_size`` points with replacement, uniformly from the usable
    points (``mask & (y >= 0)``), and takes one optimizer step on their mean softmax
    cross-entropy with dropout on; ``batch_size=None`` uses every usable point in every
    step instead (full batch, the pool's whole forward pass per step: for small pools).
    Collections other than ``params`` (BatchNorm's ``batch_stats``) are updated as the
    module mutates them. With no usable point, ``fit`` leaves the state unchanged.

    Args:
        module: a ``flax.linen.Module``.
        steps: optimizer steps per ``fit`` (a Python int, fixed so the loop is one
            ``lax.scan``).
        learning_rate: Adam's learning rate when ``optimizer`` is None.
        batch_size: points per step, or None for full batch.
        optimizer: any optax transformation (default ``optax.adam(learning_rate)``).
        eval_batch_size: points per chunk of ``predict`` / ``accuracy``.

    Returns:
        A :class:`Trainer`.
    """
    steps = _checks.positive_int(steps, "steps")
    batch_size = _checks.optional_positive_int(batch_size, "batch_size")
    eval_batch_size = _checks.positive_int(eval_batch_size, "eval_batch_size")
    if optimizer is None:
        if not (isinstance(learning_rate, int | float) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a number > 0, got {learning_rate!r}")
        optimizer = optax.adam(learning_rate)
    tx = optimizer

    def init(key: jax.Array, x: jax.Array) -> TrainState:
        variables = unfreeze(module.init(key, x[:1], train=False))
        return TrainState(variables, tx.init(variables["params"]))

    def loss_fn(weights, others, x, y, sample_weight, key):
        variables = {"params": weights, **others}
        rngs = {"dropout": key}
        if others:
            (logits, _), others = module.apply(
                variables, x, train=True, rngs=rngs, mutable=list(others)
            )
        else:
            logits, _ = module.apply(variables, x, train=True, rngs=rngs)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y, 0))
        return jnp.sum(losses * sample_weight), others

    def fit(
        state: TrainState, x: jax.Array, y: jax.Array, mask: jax.Array, key: jax.Array
    ) -> TrainState:
        usable = jnp.asarray(mask, bool) & (y >= 0)
        total = jnp.sum(usable)
        any_usable = total > 0
        weights = jnp.where(any_usable, usable / jnp.maximum(total, 1), 1.0 / usable.shape[0])

        def step(carry, step_key):
            variables, opt_state = carry
            weights_, others = _split_params(variables)
            batch_key, dropout_key = jax.random.split(step_key)
            if batch_size is None:
                xb, yb, wb = x, y, weights
            else:
                picked = jax.random.choice(batch_key, x.shape[0], (batch_size,), p=weights)
                xb, yb = x[picked], y[picked]
                wb = jnp.full((batch_size,), 1.0 / batch_size)
            grads, new_others = jax.grad(loss_fn, has_aux=True)(
                weights_, others, xb, yb, wb, dropout_key
            )
            updates, new_opt_state = tx.update(grads, opt_state, weights_)
            new = ({"params": optax.apply_updates(weights_, updates), **new_others}, new_opt_state)
            # No usable point: keep the state as it is.
            return jax.tree.map(lambda a, b: jnp.where(any_usable, a, b), new, carry), None

        carry = (state.params, state.opt_state)
        (params, opt_state), _ = jax.lax.scan(step, carry, jax.random.split(key, steps))
        return TrainState(params, opt_state)

    def train(x: jax.Array, y: jax.Array, mask: jax.Array, key: jax.Array) -> Any:
        init_key, fit_key = jax.random.split(key)
        return fit(init(init_key, x), x, y, mask, fit_key).params

    def predict(params: Any, x: jax.Array) -> jax.Array:
        return map_chunks(
            lambda chunk, index: module.apply(params, chunk, train=False)[0],
            x,
            chunk_size=eval_batch_size,
        )

    def accuracy(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((jnp.argmax(predict(params, x), axis=-1) == y).astype(jnp.float32))

    return Trainer(init, fit, train, predict, accuracy, steps, batch_size)


def _split_params(variables: Any) -> tuple[Any, dict[str, Any]]:
    """(the ``params`` collection, every other collection as a dict)."""
    others = {name: value for name, value in variables.items() if name != "params"}
    return variables["params"], others


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN}

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

:func:`trainer` also takes a ``flax.nnx`` module whose ``__call__(x)`` returns
``(logits, embedding)``: the module is split once into its graph and its state, and the
loop trains the ``nnx.Param`` state with optax, as pure functions. Its params are then
the module's whole state (``nnx.State``, the shape of ``nnx.state(module)``), which
``jaxal.from_flax(module)`` takes as they are::

    net = Net(rngs=nnx.Rngs(0))                # any nnx.Module, built initialized
    trainer = jaxal.train.trainer(net)         # net itself is never mutated
    params = jax.jit(trainer.train)(pool.x, pool.y, pool.labeled, key)   # nnx.State
    strategy = jaxal.strategies.entropy(jaxal.from_flax(net), budget=10)
    picked = jax.jit(strategy.select)(params, pool, key)
    nnx.update(net, params)                    # the trained state into the object, if wanted

``examples/nnx_loop.py`` shows the stateful alternative: ``nnx.Optimizer`` and
``nnx.jit`` around a whole round, selection included.

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
from flax import nnx
from flax.core import unfreeze

from jaxal import _checks
from jaxal._chunks import map_chunks
from jaxal.model import from_flax


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
        params: what ``jaxal.from_flax(module)`` takes. linen: the module's variables
            (``{"params": ..., "batch_stats": ...}`` as ``module.init`` returns them).
            nnx: the module's whole state, an ``nnx.State`` shaped as
            ``nnx.state(module)`` (``nnx.Param``, ``nnx.BatchStat``, RNG state, ...).
        opt_state: the optimizer state of the trainable part: ``params["params"]``
            (linen), the ``nnx.Param`` state (nnx).
    """

    params: Any
    opt_state: Any


class Trainer(NamedTuple):
    """Pure training and evaluation functions for one module (see :func:`trainer`).

    Attributes:
        init: ``init(key, x) -> TrainState``: fresh variables (shapes from ``x`` [B, ...])
            and optimizer state. nnx: the state the module held when :func:`trainer`
            was called (an nnx module is built initialized; ``key`` and ``x`` are unused).
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
    module: nn.Module | nnx.Module,
    *,
    steps: int = 300,
    learning_rate: float = 1e-2,
    batch_size: int | None = 64,
    optimizer: optax.GradientTransformation | None = None,
    eval_batch_size: int = 1024,
) -> Trainer:
    """Training for a Flax module that returns (logits, embedding).

    Each step draws ``batch_size`` points with replacement, uniformly from the usable
    points (``mask & (y >= 0)``), and takes one optimizer step on their mean softmax
    cross-entropy with dropout on; ``batch_size=None`` uses every usable point in every
    step instead (full batch, the pool's whole forward pass per step: for small pools).
    State that the forward pass mutates (BatchNorm statistics) is updated as the module
    mutates it. With no usable point, ``fit`` leaves the state unchanged.

    ``flax.linen``: ``module.__call__(x, train)``; the ``params`` collection is trained,
    dropout draws from the ``'dropout'`` rng stream.

    ``flax.nnx``: ``module.__call__(x)``; the module object is never mutated. Each step
    merges a copy from the state, puts it in train mode (``model.train()``: dropout on,
    BatchNorm on batch statistics), gives every ``nnx.Dropout`` layer a fresh key derived
    from the step's key (as ``jaxal.from_flax``'s MC pass does, so ``fit`` is a function
    of its ``key``), trains the ``nnx.Param`` state and keeps the other variables the pass
    wrote (``nnx.BatchStat``, ...). The module's own RNG state is carried unchanged:
    randomness other than ``nnx.Dropout`` layers would repeat from step to step.
    ``predict`` is the eval pass of ``jaxal.from_flax(module)``.

    Args:
        module: a ``flax.linen.Module`` or a ``flax.nnx.Module``.
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
    if isinstance(module, nnx.Module):
        adapter = _nnx_adapter(module)
    elif isinstance(module, nn.Module):
        adapter = _linen_adapter(module)
    else:
        raise TypeError(
            f"module must be a flax.linen or flax.nnx Module, got {type(module).__name__}"
        )

    def init(key: jax.Array, x: jax.Array) -> TrainState:
        variables = adapter.init(key, x)
        return TrainState(variables, tx.init(adapter.split(variables)[0]))

    def fit(
        state: TrainState, x: jax.Array, y: jax.Array, mask: jax.Array, key: jax.Array
    ) -> TrainState:
        usable = jnp.asarray(mask, bool) & (y >= 0)
        total = jnp.sum(usable)
        any_usable = total > 0
        weights = jnp.where(any_usable, usable / jnp.maximum(total, 1), 1.0 / usable.shape[0])

        def step(carry, step_key):
            variables, opt_state = carry
            trainable, others = adapter.split(variables)
            batch_key, dropout_key = jax.random.split(step_key)
            if batch_size is None:
                xb, yb, wb = x, y, weights
            else:
                picked = jax.random.choice(batch_key, x.shape[0], (batch_size,), p=weights)
                xb, yb = x[picked], y[picked]
                wb = jnp.full((batch_size,), 1.0 / batch_size)
            grads, new_others = jax.grad(adapter.loss, has_aux=True)(
                trainable, others, xb, yb, wb, dropout_key
            )
            updates, new_opt_state = tx.update(grads, opt_state, trainable)
            new_variables = adapter.merge(optax.apply_updates(trainable, updates), new_others)
            new = (new_variables, new_opt_state)
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
            lambda chunk, index: adapter.logits(params, chunk), x, chunk_size=eval_batch_size
        )

    def accuracy(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((jnp.argmax(predict(params, x), axis=-1) == y).astype(jnp.float32))

    return Trainer(init, fit, train, predict, accuracy, steps, batch_size)


class _Adapter(NamedTuple):
    """How the training loop reads one kind of Flax module.

    Attributes:
        init: ``(key, x [B, ...]) -> params``, the variables training starts from.
        split: ``params -> (trainable, others)``; optax sees ``trainable`` only.
        merge: ``(trainable, others) -> params``, the inverse of ``split``.
        loss: ``(trainable, others, x [B, ...], y [B], weight [B], key) -> (loss, others)``:
            the weighted sum of the cross-entropies in train mode (dropout from ``key``),
            and ``others`` as the pass updated them.
        logits: ``(params, x [B, ...]) -> logits [B, C]``, the eval pass.
    """

    init: Callable[[jax.Array, jax.Array], Any]
    split: Callable[[Any], tuple[Any, Any]]
    merge: Callable[[Any, Any], Any]
    loss: Callable[..., tuple[jax.Array, Any]]
    logits: Callable[[Any, jax.Array], jax.Array]


def _cross_entropy(logits: jax.Array, y: jax.Array, sample_weight: jax.Array) -> jax.Array:
    """sum_i weight_i * CE(logits_i, y_i); labels < 0 (weight 0) are read as class 0."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y, 0))
    return jnp.sum(losses * sample_weight)


def _linen_adapter(module: nn.Module) -> _Adapter:
    """linen: params are the variables; the ``params`` collection is trained."""

    def init(key, x):
        return unfreeze(module.init(key, x[:1], train=False))

    def loss(weights, others, x, y, sample_weight, key):
        variables = {"params": weights, **others}
        rngs = {"dropout": key}
        if others:
            (logits, _), others = module.apply(
                variables, x, train=True, rngs=rngs, mutable=list(others)
            )
        else:
            logits, _ = module.apply(variables, x, train=True, rngs=rngs)
        return _cross_entropy(logits, y, sample_weight), others

    def logits(params, x):
        return module.apply(params, x, train=False)[0]

    return _Adapter(
        init, _split_params, lambda weights, others: {"params": weights, **others}, loss, logits
    )


def _nnx_adapter(module: nnx.Module) -> _Adapter:
    """nnx: params are the whole state; the ``nnx.Param`` state is trained.

    ``others`` is the pair (RNG state, every other non-Param variable): the RNG state is
    passed through unchanged, the rest is read back from the module after the pass.
    """
    graphdef, *_ = nnx.split(module, nnx.Param, nnx.RngState, ...)
    initial = nnx.state(module)
    written = nnx.Not(nnx.Any(nnx.Param, nnx.RngState))
    eval_apply = from_flax(module).apply

    def split(state):
        trainable, rng_state, rest = nnx.split_state(state, nnx.Param, nnx.RngState, ...)
        return trainable, (rng_state, rest)

    def merge(trainable, others):
        return nnx.merge_state(trainable, *others)

    def loss(trainable, others, x, y, sample_weight, key):
        rng_state, rest = others
        model = nnx.merge(graphdef, trainable, rng_state, rest, copy=True)
        model.train()
        _key_dropout_layers(model, key)
        logits, _ = model(x)
        return _cross_entropy(logits, y, sample_weight), (rng_state, nnx.state(model, written))

    def logits(params, x):
        return eval_apply(params, x, None)[0]

    return _Adapter(lambda key, x: initial, split, merge, loss, logits)


def _key_dropout_layers(model: nnx.Module, key: jax.Array) -> None:
    """Give each ``nnx.Dropout`` in ``model`` its own stream, ``fold_in(key, layer)``.

    Streams created in the current trace: the merged state's own RNG variables may
    belong to an outer trace and cannot be advanced here.
    """
    dropouts = [sub for _, sub in nnx.iter_modules(model) if isinstance(sub, nnx.Dropout)]
    for layer, sub in enumerate(dropouts):
        sub.rngs = nnx.Rngs(**{sub.rng_collection: jax.random.fold_in(key, layer)})


def _split_params(variables: Any) -> tuple[Any, dict[str, Any]]:
    """(the ``params`` collection, every other collection as a dict)."""
    others = {name: value for name, value in variables.items() if name != "params"}
    return variables["params"], others


MODELS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN}

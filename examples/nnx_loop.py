"""A Flax nnx model in jaxal: nnx.Optimizer training and selection in one nnx.jit per round.

The model is an ``nnx.Module`` whose ``__call__(x)`` returns ``(logits, embedding)``;
``jaxal.from_flax(model)`` turns it into the strategies' :class:`jaxal.Model`, and its
params are the model's state, ``nnx.state(model)``. Each round is one ``nnx.jit``
function: ``steps`` optimizer steps on the labeled points (``nnx.Optimizer`` + optax
inside ``nnx.fori_loop``, warm-started from the previous round), then the strategy's
selection from the trained state and, in this simulation, the true labels through
``pool.label``. The model and the optimizer are updated in place; the pool is returned.

nnx points to watch (see the comments marked "nnx:"):

* train / eval mode is a static attribute of the module (``Dropout.deterministic``,
  ``BatchNorm.use_running_average``), part of what ``nnx.jit`` compiles for. Call
  ``model.eval()`` once before the loop, and inside the jitted round switch to
  ``model.train()`` for the steps and back to ``model.eval()`` before returning, so the
  model leaves each call in the mode it came in and nothing recompiles.
* the strategies read ``nnx.state(model)`` (a pytree of arrays) through
  ``jaxal.from_flax(model)``; they run their own eval and MC-dropout passes on a copy,
  whatever mode the model is in, and never mutate it.
* dropout draws from the model's ``'dropout'`` rng stream, whose count advances in
  place; ``nnx.reseed`` ties each round's masks to that round's key.

``jaxal.train.trainer(model)`` is the pure alternative for the same model: it trains the
``nnx.Param`` state with optax and returns the state, with no object mutated.

    python examples/nnx_loop.py [--strategy entropy] [--rounds 5] [--budget 10]
        [--steps 100]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.typing import ArrayLike

import jaxal
from jaxal import data


class MLP(nnx.Module):
    """Inputs flattened -> ``hidden`` (ReLU) -> dropout -> ``num_classes``.

    Returns ``(logits [B, num_classes], embedding [B, hidden])``; the embedding is the
    ReLU layer, before dropout (the input of the last layer, as jaxal expects).
    """

    def __init__(
        self, features: int, hidden: int, num_classes: int, *, dropout: float, rngs: nnx.Rngs
    ):
        self.hidden = nnx.Linear(features, hidden, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        embedding = nnx.relu(self.hidden(x.reshape(x.shape[0], -1)))
        return self.out(self.dropout(embedding)), embedding


def fit(
    model: MLP,
    optimizer: nnx.Optimizer,
    pool: jaxal.Pool,
    key: jax.Array,
    steps: int,
    batch_size: int,
) -> None:
    """``steps`` Adam steps on minibatches drawn from the pool's labeled points.

    Updates ``model`` and ``optimizer`` in place; leaves the model in eval mode.
    """
    usable = pool.labeled & (pool.y >= 0)
    weights = usable / jnp.maximum(usable.sum(), 1)
    batch_key, dropout_key = jax.random.split(key)
    model.train()  # nnx: static flag, switched inside the trace and back below
    nnx.reseed(model, dropout=dropout_key)  # nnx: this round's dropout masks from its key

    def loss_fn(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
        logits, _ = model(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(i: jax.Array, carry: tuple[MLP, nnx.Optimizer]) -> tuple[MLP, nnx.Optimizer]:
        model, optimizer = carry
        batch = jax.random.choice(
            jax.random.fold_in(batch_key, i), pool.size, (batch_size,), p=weights
        )
        grads = nnx.grad(loss_fn)(model, pool.x[batch], jnp.maximum(pool.y[batch], 0))
        optimizer.update(model, grads)
        return model, optimizer

    nnx.fori_loop(0, steps, step, (model, optimizer))
    model.eval()


def make_round(
    strategy: jaxal.Strategy,
    y_true: jax.Array,
    steps: int,
    batch_size: int,
    traces: list[int] | None = None,
) -> Callable[[MLP, nnx.Optimizer, jaxal.Pool, jax.Array], tuple[jaxal.Pool, jax.Array]]:
    """The jitted round ``(model, optimizer, pool, key) -> (pool, picked int32 [budget])``.

    Trains (in place), selects ``strategy.budget`` unlabeled points from the trained state
    and labels them with ``y_true`` (int [N], the simulated annotator). A 1 is appended
    to ``traces`` each time the round is traced (compiled).
    """

    @nnx.jit
    def al_round(
        model: MLP, optimizer: nnx.Optimizer, pool: jaxal.Pool, key: jax.Array
    ) -> tuple[jaxal.Pool, jax.Array]:
        if traces is not None:
            traces.append(1)  # Python side effects run only while jax traces
        fit_key, select_key = jax.random.split(key)
        fit(model, optimizer, pool, fit_key, steps, batch_size)
        # nnx: the strategy takes the state; from_flax(model) merges it into a copy.
        picked = strategy.select(nnx.state(model), pool, select_key)
        return pool.label(picked, y_true[picked]), picked

    return al_round


@nnx.jit
def accuracy(model: MLP, x: ArrayLike, y: ArrayLike) -> jax.Array:
    """Float32 scalar, the eval-mode accuracy on x [M, ...], y [M]."""
    logits, _ = model(jnp.asarray(x))
    return jnp.mean(jnp.argmax(logits, axis=-1) == jnp.asarray(y))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="entropy")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ds = data.load("digits", seed=args.seed)
    rngs = nnx.Rngs(params=args.seed, dropout=args.seed + 1)
    model = MLP(ds.x_train.shape[1], 128, ds.num_classes, dropout=0.3, rngs=rngs)
    model.eval()  # nnx: the mode every jitted call sees, so each compiles once
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    strategy = jaxal.strategies.get(args.strategy)(jaxal.from_flax(model), budget=args.budget)
    traces: list[int] = []
    y_true = jnp.asarray(ds.y_train)
    al_round = make_round(strategy, y_true, args.steps, args.batch_size, traces)

    initial = data.initial_indices(len(ds.x_train), args.initial, seed=args.seed)
    pool = jaxal.Pool.create(ds.x_train, labeled=initial).label(initial, ds.y_train[initial])
    key = jax.random.key(args.seed)
    print(f"digits: pool {ds.x_train.shape}, test {ds.x_test.shape}, {args.strategy}")
    for round_index in range(args.rounds):
        key, round_key = jax.random.split(key)
        trained_on = int(pool.labeled.sum())
        pool, picked = al_round(model, optimizer, pool, round_key)
        test_accuracy = float(accuracy(model, ds.x_test, ds.y_test))
        print(
            f"round {round_index}: trained on {trained_on:>3} labeled, test accuracy "
            f"{test_accuracy:.3f}, picked {picked[:5].tolist()}..., now "
            f"{int(pool.labeled.sum())} labeled"
        )
    print(f"the round compiled {len(traces)} time(s) for {args.rounds} rounds")


if __name__ == "__main__":
    main()

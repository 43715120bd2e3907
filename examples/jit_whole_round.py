"""One jitted function per round: train a few steps, select, label; your own Python loop.

``jaxal.make_round`` and ``jaxal.train.trainer`` are pure, so they compose into one
function that ``jax.jit`` compiles once: it continues training the previous round's
model (warm start: params and Adam state carry over), selects a batch with the strategy
and, in this simulation, reveals the true labels inside the same compiled call. Only the
loop stays in Python, and the pool keeps its shapes, so nothing recompiles.

    python examples/jit_whole_round.py [--strategy entropy] [--rounds 10] [--budget 10]
        [--steps 50]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import jaxal
from jaxal import data, train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="entropy")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=10)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ds = data.load("digits", seed=args.seed)
    module = train.MLP(num_classes=ds.num_classes)
    trainer = train.trainer(module, steps=args.steps)
    strategy = jaxal.strategies.get(args.strategy)(jaxal.from_flax(module), budget=args.budget)
    al_round = jaxal.make_round(strategy)
    y_true = jnp.asarray(ds.y_train)
    traces = []

    @jax.jit
    def train_and_select(state, pool, key):
        """state: TrainState; pool: Pool -> (state, pool with `budget` more labels, picked)."""
        traces.append(1)  # Python side effects run only while jax traces (compiles)
        fit_key, select_key = jax.random.split(key)
        state = trainer.fit(state, pool.x, pool.y, pool.labeled, fit_key)
        pool, picked = al_round(state.params, pool, select_key)
        return state, pool.label(picked, y_true[picked]), picked

    evaluate = jax.jit(trainer.accuracy)
    initial = data.initial_indices(len(ds.x_train), args.initial, seed=args.seed)
    pool = jaxal.Pool.create(ds.x_train, labeled=initial).label(initial, ds.y_train[initial])
    key, init_key = jax.random.split(jax.random.key(args.seed))
    state = trainer.init(init_key, pool.x)
    for round_index in range(args.rounds):
        key, round_key = jax.random.split(key)
        trained_on = int(pool.labeled.sum())
        state, pool, picked = train_and_select(state, pool, round_key)
        accuracy = evaluate(state.params, ds.x_test, ds.y_test)
        print(
            f"round {round_index}: trained on {trained_on:>3} labeled, test accuracy "
            f"{accuracy:.3f}, picked {picked[:5].tolist()}..."
        )
    print(f"train_and_select compiled {len(traces)} time(s) for {args.rounds} rounds")


if __name__ == "__main__":
    main()

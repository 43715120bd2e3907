"""Quickstart: BADGE active learning on scikit-learn's digits with a small Flax MLP.

Trains with optax, then runs rounds of BADGE: select a batch with one jitted round
function, reveal its labels, retrain, and report the test accuracy. No download: the
digits ship with scikit-learn.

    python examples/quickstart.py [--rounds 5] [--budget 20] [--initial 20] [--seed 0]
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import jaxal


class MLP(nn.Module):
    """64 -> 128 -> 10 with dropout; returns (logits, penultimate embedding)."""

    @nn.compact
    def __call__(self, x, train: bool):
        hidden = nn.relu(nn.Dense(128)(x))
        dropped = nn.Dropout(0.3, deterministic=not train)(hidden)
        return nn.Dense(10)(dropped), hidden


def load_data(seed: int):
    """Digits scaled to [0, 1], split 75/25 by ``seed``: (x_pool, y_pool, x_test, y_test)."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.75 * len(x))
    pool_idx, test_idx = order[:split], order[split:]
    return x[pool_idx], digits.target[pool_idx], x[test_idx], digits.target[test_idx]


def train(module, x, y, mask, key, steps=300, learning_rate=1e-2):
    """Fresh params trained with Adam on the points where ``mask`` [N] is True."""
    init_key, dropout_key = jax.random.split(key)
    params = module.init(init_key, x[:1], train=False)
    optimizer = optax.adam(learning_rate)
    weights = mask.astype(jnp.float32) / jnp.maximum(mask.sum(), 1)

    def loss_fn(params, step_key):
        logits, _ = module.apply(params, x, train=True, rngs={"dropout": step_key})
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y, 0))
        return jnp.sum(losses * weights)

    def step(carry, step_key):
        params, opt_state = carry
        grads = jax.grad(loss_fn)(params, step_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    step_keys = jax.random.split(dropout_key, steps)
    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), step_keys)
    return params


def accuracy(module, params, x, y):
    logits, _ = module.apply(params, x, train=False)
    return float(jnp.mean(jnp.argmax(logits, -1) == y))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x_pool, y_true, x_test, y_test = load_data(args.seed)
    key = jax.random.key(args.seed)
    initial = np.random.default_rng(args.seed).choice(len(x_pool), args.initial, replace=False)
    pool = jaxal.Pool.create(x_pool, y=np.full(len(x_pool), -1), labeled=jnp.asarray(initial))
    pool = pool.label(jnp.asarray(initial), jnp.asarray(y_true[initial]))

    module = MLP()
    strategy = jaxal.strategies.badge(jaxal.from_flax(module), budget=args.budget)
    al_round = jax.jit(jaxal.make_round(strategy))
    train_fn = jax.jit(lambda x, y, mask, key: train(module, x, y, mask, key))

    print(f"{'round':>5} {'labeled':>8} {'test accuracy':>14}")
    for round_index in range(args.rounds + 1):
        key, train_key, select_key = jax.random.split(key, 3)
        params = train_fn(pool.x, pool.y, pool.labeled, train_key)
        labeled = int(pool.labeled.sum())
        print(f"{round_index:>5} {labeled:>8} {accuracy(module, params, x_test, y_test):>14.3f}")
        if round_index == args.rounds:
            break
        pool, picked = al_round(params, pool, select_key)
        pool = pool.label(picked, jnp.asarray(y_true)[picked])  # the annotator's answer


if __name__ == "__main__":
    main()

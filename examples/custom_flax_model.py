"""Your own Flax linen CNN in jaxal: TFDS data when it is prepared, digits otherwise.

The model only has to return ``(logits, embedding)`` from ``__call__(x, train)``, with
dropout on the ``'dropout'`` rng stream; ``jaxal.from_flax`` does the rest, and
``jaxal.train.trainer`` trains it. The same class works from the command line:

    jaxal run --model examples/custom_flax_model.py:SmallCNN --dataset digits

This script reads ``--dataset`` (default ``tfds:mnist``: a TFDS dataset already prepared
in ``--data-dir``, e.g. by ``tfds build mnist``; nothing is downloaded) and falls back to
scikit-learn's digits, read as 8x8 images, when it is not there.

    python examples/custom_flax_model.py [--dataset tfds:mnist] [--data-dir DIR]
        [--strategy margin] [--rounds 3] [--budget 20] [--initial 20] [--steps 200]
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax

import jaxal
from jaxal import data, train


class SmallCNN(nn.Module):
    """Two 3x3 convolutions, global average pooling, a ReLU layer and dropout.

    Takes images [B, H, W, C] (or square vectors, read as one-channel images) and returns
    (logits [B, num_classes], embedding [B, 64]).
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool):
        x = jaxal.train.as_image(x)
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(32, (3, 3))(x))
        embedding = nn.relu(nn.Dense(64)(x.mean(axis=(1, 2))))
        dropped = nn.Dropout(0.25, deterministic=not train)(embedding)
        return nn.Dense(self.num_classes)(dropped), embedding


def load(name: str, data_dir: str | None, seed: int) -> data.Dataset:
    """``name`` (at most 5,000 pool and 1,000 test points), or digits if it is not there."""
    try:
        return data.load(name, seed=seed, data_dir=data_dir, max_train=5000, max_test=1000)
    except ValueError as error:
        print(f"{name} is not available ({error}); using digits as 8x8 images")
        return data.load("digits", seed=seed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tfds:mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    ds = load(args.dataset, args.data_dir, args.seed)
    module = SmallCNN(num_classes=ds.num_classes)
    trainer = train.trainer(module, steps=args.steps, learning_rate=3e-3)
    fit, accuracy = jax.jit(trainer.train), jax.jit(trainer.accuracy)
    strategy = jaxal.strategies.get(args.strategy)(jaxal.from_flax(module), budget=args.budget)
    al_round = jax.jit(jaxal.make_round(strategy))

    initial = data.initial_indices(len(ds.x_train), args.initial, seed=args.seed)
    pool = jaxal.Pool.create(ds.x_train, labeled=initial).label(initial, ds.y_train[initial])
    key = jax.random.key(args.seed)
    print(f"{ds.name}: pool {ds.x_train.shape}, test {ds.x_test.shape}, {args.strategy}")
    for round_index in range(args.rounds + 1):
        key, train_key, select_key = jax.random.split(key, 3)
        params = fit(pool.x, pool.y, pool.labeled, train_key)
        labeled = int(pool.labeled.sum())
        print(
            f"round {round_index}: {labeled:>4} labeled, test accuracy "
            f"{accuracy(params, ds.x_test, ds.y_test):.3f}"
        )
        if round_index < args.rounds:
            pool, picked = al_round(params, pool, select_key)
            pool = pool.label(picked, ds.y_train[picked])


if __name__ == "__main__":
    main()

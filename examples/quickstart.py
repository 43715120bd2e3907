"""Quickstart: 5 rounds of BADGE on scikit-learn's digits (no download), a small Flax MLP."""

import jax

import jaxal
from jaxal import data, train

ds = data.load("digits", seed=0)  # normalized, split 75/25 by the seed
module = train.MLP(num_classes=ds.num_classes)
trainer = train.trainer(module)  # optax Adam steps in one lax.scan
fit, accuracy = jax.jit(trainer.train), jax.jit(trainer.accuracy)
al_round = jax.jit(jaxal.make_round(jaxal.strategies.badge(jaxal.from_flax(module), budget=20)))

initial = data.initial_indices(len(ds.x_train), 20, seed=0)
pool = jaxal.Pool.create(ds.x_train, labeled=initial).label(initial, ds.y_train[initial])
key = jax.random.key(0)
for round_index in range(6):
    key, train_key, select_key = jax.random.split(key, 3)
    params = fit(pool.x, pool.y, pool.labeled, train_key)
    labeled, test_accuracy = int(pool.labeled.sum()), accuracy(params, ds.x_test, ds.y_test)
    print(f"round {round_index}: {labeled:>3} labeled, test accuracy {test_accuracy:.3f}")
    if round_index < 5:
        pool, picked = al_round(params, pool, select_key)  # 20 points, marked labeled
        pool = pool.label(picked, ds.y_train[picked])  # the annotator's answer

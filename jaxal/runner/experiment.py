"""One active-learning experiment (a strategy and a seed), round by round, resumable.

Round 0 trains on the initial labeled set; round r >= 1 selects ``budget`` points with the
jitted round (``jax.jit(jaxal.make_round(strategy))``) using the previous round's params,
reveals their labels, trains again and evaluates on the test split. After every round the
experiment's state goes to one checkpoint file, written atomically: the labeled mask, the
revealed labels, the PRNG key, the params and optimizer state, and every round's numbers.
Resuming from that file continues with exactly the computation an uninterrupted run does.
The file of a finished experiment holds the state after its last round, and nothing in a
round depends on the total number of rounds, so a finished experiment can be extended by
more rounds with the numbers of a run that had asked for them from the start.

Randomness derives from the seed only: ``key = jax.random.key(seed)``; each round splits
it into (key, train_key) in round 0 and (key, select_key, train_key) later, so every
strategy sees the same initial set and the same round-0 model for a given seed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal.data import Dataset, initial_indices
from jaxal.pool import Pool
from jaxal.round import make_round
from jaxal.runner import checkpoint
from jaxal.strategies import Strategy
from jaxal.train import Trainer, TrainState

Row = dict[str, Any]


class Compiled:
    """Ahead-of-time compiled functions, built once per name and reused.

    ``seconds`` records each one's compile time, so that round timings measure running
    only.
    """

    def __init__(self) -> None:
        self.functions: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}

    def get(
        self, name: str, fn: Callable[..., Any], *example_args: Any, **example_kwargs: Any
    ) -> Any:
        """``jax.jit(fn)`` compiled for the shapes of ``example_args`` and
        ``example_kwargs``, cached under ``name``."""
        if name not in self.functions:
            start = time.perf_counter()
            self.functions[name] = jax.jit(fn).lower(*example_args, **example_kwargs).compile()
            self.seconds[name] = time.perf_counter() - start
        return self.functions[name]


class Settings(NamedTuple):
    """The numbers an experiment needs (a subset of the command's config)."""

    rounds: int
    budget: int
    initial: int
    warm_start: bool


class State(NamedTuple):
    """An experiment between rounds; what a checkpoint holds."""

    pool: Pool
    key: jax.Array
    train_state: TrainState
    rows: list[Row]


def fresh_fit(trainer: Trainer) -> Callable[..., TrainState]:
    """``(x, y, mask, key) -> TrainState``: new variables, then ``trainer.fit``."""

    def fit_from_scratch(x, y, mask, key):
        init_key, fit_key = jax.random.split(key)
        return trainer.fit(trainer.init(init_key, x), x, y, mask, fit_key)

    return fit_from_scratch


def initial_set(dataset: Dataset, count: int, seed: int) -> np.ndarray:
    """The pool indices of the initial labeled set: ``count`` distinct indices, int32,
    sorted, drawn by ``seed`` (every strategy of a seed starts from the same set)."""
    return initial_indices(len(dataset.x_train), count, seed)


def initial_state(dataset: Dataset, settings: Settings, seed: int, trainer: Trainer) -> State:
    """Round -1: the initial labeled set (by ``seed``), labels revealed, no rounds yet."""
    initial = initial_set(dataset, settings.initial, seed)
    pool = Pool.create(dataset.x_train).label(initial, dataset.y_train[initial])
    # Placeholder train state of the right structure; round 0 replaces it.
    template = jax.eval_shape(trainer.init, jax.random.key(0), pool.x)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
    return State(pool, jax.random.key(seed), zeros, [])


def run_round(
    state: State,
    dataset: Dataset,
    settings: Settings,
    strategy: Strategy,
    trainer: Trainer,
    compiled: Compiled,
    name: str | None = None,
    inputs: dict[str, Any] | None = None,
) -> State:
    """Round ``len(state.rows)``: select (from round 1 on), train, evaluate.

    ``name`` keys the compiled round in ``compiled`` (default ``strategy.name``);
    ``inputs`` are the strategy's keyword inputs (``strategy.inputs``, e.g. SMI's
    ``query_x`` and ``query_y``), the same shapes for every seed.

    Returns:
        The state after the round, with one more row: ``round``, ``labeled`` (count
        trained on), ``test_accuracy``, ``select_seconds`` (None in round 0),
        ``train_seconds``, ``selected`` (the indices picked this round).
    """
    round_index = len(state.rows)
    pool, key, train_state = state.pool, state.key, state.train_state
    selected: list[int] = []
    select_seconds = None
    if round_index == 0:
        key, train_key = jax.random.split(key)
    else:
        key, select_key, train_key = jax.random.split(key, 3)
        al_round = compiled.get(
            f"round/{name or strategy.name}",
            make_round(strategy),
            train_state.params,
            pool,
            select_key,
            **(inputs or {}),
        )
        start = time.perf_counter()
        pool, picked = al_round(train_state.params, pool, select_key, **(inputs or {}))
        picked = np.asarray(jax.block_until_ready(picked))
        select_seconds = time.perf_counter() - start
        if np.any(picked < 0):
            raise ValueError(f"{strategy.name} could not fill its budget of {settings.budget}")
        pool = pool.label(picked, dataset.y_train[picked])
        selected = picked.tolist()

    data_args = (pool.x, pool.y, pool.labeled, train_key)
    if settings.warm_start and round_index > 0:
        fit = compiled.get("fit", trainer.fit, train_state, *data_args)
        start = time.perf_counter()
        train_state = fit(train_state, *data_args)
    else:
        fit = compiled.get("fresh_fit", fresh_fit(trainer), *data_args)
        start = time.perf_counter()
        train_state = fit(*data_args)
    jax.block_until_ready(train_state)
    train_seconds = time.perf_counter() - start

    x_test, y_test = jnp.asarray(dataset.x_test), jnp.asarray(dataset.y_test)
    accuracy = compiled.get("accuracy", trainer.accuracy, train_state.params, x_test, y_test)
    row: Row = {
        "round": round_index,
        "labeled": int(jnp.sum(pool.labeled)),
        "test_accuracy": float(accuracy(train_state.params, x_test, y_test)),
        "select_seconds": select_seconds,
        "train_seconds": train_seconds,
        "selected": selected,
    }
    return State(pool, key, train_state, [*state.rows, row])


STATE_ARRAYS = ("labeled", "y", "key")


def save_state(
    path: str,
    state: State,
    meta: dict[str, Any],
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``state`` (plus ``meta`` and the named arrays ``extra``) to ``path``
    atomically."""
    checkpoint.save(
        path,
        state.train_state,
        {
            "labeled": np.asarray(state.pool.labeled),
            "y": np.asarray(state.pool.y),
            "key": np.asarray(jax.random.key_data(state.key)),
            **(extra or {}),
        },
        {**meta, "rows": state.rows},
    )


def load_state(
    path: str, dataset: Dataset, trainer: Trainer
) -> tuple[State, dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint of :func:`save_state` for an experiment on ``dataset``: the
    state, the meta and the ``extra`` arrays.

    Raises:
        ValueError: unreadable file, or one that does not fit the dataset or model.
    """
    template = jax.eval_shape(trainer.init, jax.random.key(0), jnp.asarray(dataset.x_train))
    train_state, arrays, meta = checkpoint.load(path, template)
    n = len(dataset.x_train)
    try:
        labeled = arrays["labeled"].astype(bool)
        y = arrays["y"].astype(np.int32)
        key = jax.random.wrap_key_data(jnp.asarray(arrays["key"]))
        rows = list(meta["rows"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"checkpoint {path} is incomplete ({error})") from None
    if labeled.shape != (n,) or y.shape != (n,):
        raise ValueError(f"checkpoint {path} belongs to a pool of another size")
    pool = Pool.create(dataset.x_train, y=y, labeled=labeled)
    extra = {name: array for name, array in arrays.items() if name not in STATE_ARRAYS}
    return State(pool, key, train_state, rows), meta, extra


def read_rows(path: str) -> list[Row]:
    """The rows stored in a checkpoint, without its arrays."""
    rows = checkpoint.read_meta(path).get("rows")
    if not isinstance(rows, list):
        raise ValueError(f"checkpoint {path} is incomplete (no rows)")
    return rows


def checkpoint_path(directory: str, strategy: str, seed: int) -> str:
    """``DIR/checkpoints/<strategy>-seed<seed>.npz``."""
    return os.path.join(directory, "checkpoints", f"{strategy}-seed{seed}.npz")

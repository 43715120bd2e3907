"""The stopping rules of ``jaxal run`` (``--stop``, ``[stop]``): what each round gives them,
their state in the experiment's checkpoint, and the record of the rule that fired.

The run's rules are combined with :func:`jaxal.stopping.any_of` (in the order given) and
updated after every round, round 0 included, with one jitted function each for the
round's outputs and the update. Each round gives them:

- ``labeled``, ``unlabeled``: the pool after the round's labels;
- ``stop_probs``: the model's probabilities on the seed's stop set, ``stop_set`` pool points
  drawn once by the seed (all of them when the pool is smaller);
- ``pool_probs``: the model's probabilities on the pool;
- ``batch_predictions``, ``batch_labels``: the predictions of the previous round's model
  (the one that selected the batch) on this round's batch, and its labels; round 0 selects
  nothing, so its labels are all -1;
- ``validation``: the round's test accuracy, the run's only held-out split.

Only the fields the rules read are computed. The rules never change what a round
computes: a stopped experiment's rounds equal the first rounds of one without rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal.model import softmax
from jaxal.pool import Pool
from jaxal.runner import checkpoint
from jaxal.runner.experiment import Compiled, State
from jaxal.stopping import AnyOfState, RoundOutputs, StoppingRule, any_of
from jaxal.train import Trainer

ARRAY_PREFIX = "stop_"

OutputsFn = Callable[..., RoundOutputs]


class Stopping(NamedTuple):
    """A run's stopping rules and what they need.

    Attributes:
        rule: :func:`jaxal.stopping.any_of` over the run's rules.
        rules: the run's rules, in order.
        budget: points selected per round (the batch's size).
        stop_sets: per seed, int32 [S]: the stop set's pool indices (empty when no rule
            reads ``stop_probs``).
        outputs: ``(params, previous, pool, stop_set, batch, validation) -> RoundOutputs``,
            see :func:`outputs_function`.
    """

    rule: StoppingRule
    rules: tuple[StoppingRule, ...]
    budget: int
    stop_sets: list[np.ndarray]
    outputs: OutputsFn


def stop_set(pool_size: int, size: int, seed: int) -> np.ndarray:
    """The stop set: ``min(size, pool_size)`` distinct pool indices drawn by ``seed``,
    int32, sorted (a stream of its own: the initial set is not affected)."""
    count = min(size, pool_size)
    picked = np.random.default_rng([seed, 2]).choice(pool_size, count, replace=False)
    return np.sort(picked).astype(np.int32)


def make_stopping(
    rules: list[StoppingRule],
    trainer: Trainer,
    pool_sizes: list[int],
    stop_set_size: int,
    budget: int,
) -> Stopping | None:
    """The :class:`Stopping` of ``rules`` (None without rules), with a stop set for each
    seed's pool of ``pool_sizes[seed]`` points."""
    if not rules:
        return None
    rule = any_of(*rules)
    needs_stop_set = "stop_probs" in rule.needs
    stop_sets = [
        stop_set(size, stop_set_size, seed) if needs_stop_set else np.zeros(0, np.int32)
        for seed, size in enumerate(pool_sizes)
    ]
    return Stopping(rule, tuple(rules), budget, stop_sets, outputs_function(trainer, rule.needs))


def outputs_function(trainer: Trainer, needs: tuple[str, ...]) -> OutputsFn:
    """``outputs(params, previous, pool, stop_set, batch, validation) -> RoundOutputs``
    with the fields in ``needs`` (the others None).

    Args of ``outputs``:
        params: the model trained this round.
        previous: the model that selected this round's batch (in round 0, any params of
            the same structure: the batch is empty).
        pool: the pool after this round's labels.
        stop_set: int32 [S], pool indices.
        batch: int32 [B], the pool indices labeled this round; -1 for none.
        validation: float32 [].
    """

    def probabilities(params: Any, x: jax.Array) -> jax.Array:
        return softmax(trainer.predict(params, x))

    def outputs(
        params: Any,
        previous: Any,
        pool: Pool,
        stop_set: jax.Array,
        batch: jax.Array,
        validation: jax.Array,
    ) -> RoundOutputs:
        rows = jnp.maximum(batch, 0)
        fields: dict[str, Callable[[], jax.Array]] = {
            "labeled": lambda: jnp.sum(pool.labeled).astype(jnp.int32),
            "stop_probs": lambda: probabilities(params, pool.x[stop_set]),
            "pool_probs": lambda: probabilities(params, pool.x),
            "unlabeled": lambda: ~pool.labeled,
            "batch_predictions": lambda: jnp.argmax(
                trainer.predict(previous, pool.x[rows]), axis=-1
            ).astype(jnp.int32),
            "batch_labels": lambda: jnp.where(batch >= 0, pool.y[rows], -1).astype(jnp.int32),
            "validation": lambda: jnp.asarray(validation, jnp.float32),
        }
        return RoundOutputs(**{name: fields[name]() for name in needs})

    return outputs


def _arguments(stopping: Stopping, state: State, previous: Any, seed: int) -> tuple[Any, ...]:
    """The arguments of ``stopping.outputs`` after the last round of ``state``."""
    row = state.rows[-1]
    batch = np.full(stopping.budget, -1, np.int32)
    batch[: len(row["selected"])] = row["selected"]
    validation = np.float32(row["test_accuracy"])
    params = state.train_state.params
    return params, previous, state.pool, stopping.stop_sets[seed], batch, validation


def after_round(
    stopping: Stopping,
    compiled: Compiled,
    stop_state: AnyOfState | None,
    state: State,
    previous: Any,
    seed: int,
) -> tuple[State, AnyOfState, dict[str, Any] | None]:
    """The rules updated after the last round of ``state``.

    Args:
        stop_state: the rules' state after the round before (None before round 0).
        state: the experiment after the round.
        previous: the params that selected the round's batch (the params before it).
        seed: the experiment's seed (its stop set).

    Returns:
        ``state`` with its last row's ``stopping``: each rule's state in words (by rule
        name); the rules' new state; and the record of the rule that fired,
        ``{"rule": name, "round": r, "reason": its sentence}`` for the first rule in the
        run's order, or None when none did.
    """
    args = _arguments(stopping, state, previous, seed)
    outputs = compiled.get("stop/outputs", stopping.outputs, *args)(*args)
    if stop_state is None:
        stop_state = stopping.rule.init(outputs)
    step = compiled.get("stop/update", stopping.rule.update, stop_state, outputs)
    stop_state, _, _ = step(stop_state, outputs)
    host = jax.device_get(stop_state)
    said = {
        rule.name: rule.describe(member)
        for rule, member in zip(stopping.rules, host.states, strict=True)
    }
    row = {**state.rows[-1], "stopping": said}
    fired = None
    for rule, code in zip(stopping.rules, host.reasons, strict=True):
        if code > 0:
            fired = {"rule": rule.name, "round": row["round"], "reason": said[rule.name]}
            break
    return state._replace(rows=[*state.rows[:-1], row]), stop_state, fired


def state_arrays(stop_state: AnyOfState) -> dict[str, np.ndarray]:
    """The leaves of ``stop_state`` as named arrays for the experiment's checkpoint."""
    leaves = jax.tree.leaves(stop_state)
    return {f"{ARRAY_PREFIX}{i:05d}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def restore(
    stopping: Stopping,
    arrays: dict[str, np.ndarray],
    state: State,
    seed: int,
    path: str,
) -> AnyOfState | None:
    """The rules' state that :func:`state_arrays` stored in the checkpoint at ``path``
    (None when the experiment has no round yet).

    Raises:
        ValueError: the stored state does not fit the run's rules.
    """
    if not state.rows:
        return None
    names = sorted(name for name in arrays if name.startswith(ARRAY_PREFIX))
    args = _arguments(stopping, state, state.train_state.params, seed)
    template = jax.eval_shape(stopping.rule.init, jax.eval_shape(stopping.outputs, *args))
    expected, treedef = jax.tree.flatten(template)
    stored = [arrays[name] for name in names]
    if len(stored) != len(expected) or any(
        s.shape != e.shape or s.dtype != e.dtype for s, e in zip(stored, expected, strict=True)
    ):
        raise ValueError(f"checkpoint {path} does not hold the state of this run's stop rules")
    return jax.tree.unflatten(treedef, [jnp.asarray(a) for a in stored])


def read_stopped(path: str) -> dict[str, Any] | None:
    """The record of the rule that stopped the experiment of the checkpoint at ``path``
    (see :func:`fired`), or None."""
    stopped = checkpoint.read_meta(path).get("stopped")
    return stopped if isinstance(stopped, dict) else None

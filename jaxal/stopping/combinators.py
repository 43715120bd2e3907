"""Rules combined: :func:`any_of` stops when any of its rules does."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxal.stopping._rule import CONTINUE, RoundOutputs, StoppingRule


class AnyOfState(NamedTuple):
    """The state of :func:`any_of`.

    Attributes:
        states: the rules' states, in the rules' order.
        reasons: int32 [K]: each rule's reason code at the last update.
    """

    states: tuple[Any, ...]
    reasons: jax.Array


def any_of(*rules: StoppingRule) -> StoppingRule:
    """One rule that stops when any of ``rules`` stops.

    Every rule is updated every round. The reason is that of the first rule (in the order
    given) that stops, numbered in the combined ``reasons``: rule k's code c > 0 becomes
    the offset of rule k plus c, and ``reasons`` names it ``"<rule name>: <its reason>"``.
    ``describe`` gives the sentences of the rules that stop, or of every rule when none
    does, joined by ``"; "``.

    Args:
        rules: one or more :class:`StoppingRule`, with distinct names.

    Returns:
        A :class:`StoppingRule` named ``"any_of"`` whose ``hparams["rules"]`` are the
        rules' names, with state :class:`AnyOfState` and ``needs`` the union of theirs.

    Raises:
        TypeError: an argument is not a StoppingRule.
        ValueError: no rule, or two with one name.
    """
    for rule in rules:
        if not isinstance(rule, StoppingRule):
            raise TypeError(f"any_of takes StoppingRule arguments, got {type(rule).__name__}")
    if not rules:
        raise ValueError("any_of needs at least one rule")
    names = tuple(rule.name for rule in rules)
    if len(set(names)) != len(names):
        raise ValueError(f"any_of got one rule name twice: {', '.join(names)}")
    offsets = []
    reasons: list[str] = [CONTINUE]
    for rule in rules:
        offsets.append(len(reasons) - 1)
        reasons += [f"{rule.name}: {label}" for label in rule.reasons[1:]]
    needs = tuple(dict.fromkeys(need for rule in rules for need in rule.needs))

    def init(outputs: RoundOutputs) -> AnyOfState:
        states = tuple(rule.init(outputs) for rule in rules)
        return AnyOfState(states, jnp.zeros(len(rules), jnp.int32))

    def update(state: AnyOfState, outputs: RoundOutputs) -> tuple[AnyOfState, jax.Array, jax.Array]:
        states, codes = [], []
        for rule, member in zip(rules, state.states, strict=True):
            member, _, code = rule.update(member, outputs)
            states.append(member)
            codes.append(jnp.asarray(code, jnp.int32))
        member_codes = jnp.stack(codes)
        fired = member_codes > 0
        combined = jnp.where(fired, jnp.asarray(offsets, jnp.int32) + member_codes, 0)
        reason = combined[jnp.argmax(fired)]
        return AnyOfState(tuple(states), member_codes), jnp.any(fired), reason

    def describe(state: AnyOfState) -> str:
        said = [
            (int(code) > 0, rule.describe(member))
            for rule, member, code in zip(rules, state.states, state.reasons, strict=True)
        ]
        fired = [sentence for stopped, sentence in said if stopped]
        return "; ".join(fired or [sentence for _, sentence in said])

    hparams = {"rules": names}
    return StoppingRule("any_of", hparams, init, update, describe, tuple(reasons), needs)

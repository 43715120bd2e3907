"""A strategy's function called outside ``jit``: compiled once, its value checks kept.

Called with concrete arrays, a strategy's ``select`` / ``score`` runs a ``jax.jit`` of
itself that the Strategy holds (so the compiled program lives as long as the strategy,
and a second call with the same shapes and dtypes compiles nothing). The value checks of
:func:`jaxal._checks.require` are traced into the program; a failed one is raised as the
same ``ValueError`` the unjitted function would raise, once the call returns. Called with
tracers (under the user's ``jit``, ``vmap`` or another strategy), the function runs as
written.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _checks

_ARRAY_LEAVES = (jax.Array, np.ndarray, np.generic, bool, int, float, complex)


def compiled_when_concrete(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that runs a cached ``jax.jit`` of itself when every argument leaf is a
    concrete array or number, and ``fn`` itself otherwise.

    Args:
        fn: a pure function of arrays (pytrees) and keyword arrays.

    Returns:
        A function with ``fn``'s signature and results; outside ``jit`` it raises
        ValueError for a failed value check, once the program has run.
    """
    traces: list[_checks.DeferredChecks] = []  # the checks of each trace
    failures: list[str] = []  # failed checks of nested traces, appended on the host
    one_call_at_a_time = threading.Lock()  # ``failures`` belongs to the running call

    def traced_with_checks(*args: Any, **kwargs: Any) -> Any:
        leaf = next(iter(jax.tree.leaves((args, kwargs))), None)
        checks = _checks.DeferredChecks(getattr(leaf, "_trace", None), failures)
        with _checks.deferred_value_checks(checks):
            out = fn(*args, **kwargs)
        traces.append(checks)
        return out, jnp.int32(len(traces) - 1), checks.conditions, checks.values

    compiled = jax.jit(traced_with_checks)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        leaves = jax.tree.leaves((args, kwargs))
        if not all(isinstance(leaf, _ARRAY_LEAVES) for leaf in leaves):
            return fn(*args, **kwargs)
        if not _checks.is_concrete(*leaves):
            return fn(*args, **kwargs)
        with one_call_at_a_time:
            failures.clear()
            out, trace, conditions, values = compiled(*args, **kwargs)
            checks = traces[int(trace)]
            for (message, formatted), holds, value in zip(
                checks.messages, conditions, values, strict=True
            ):
                if not bool(holds):
                    raise ValueError(message.format(value) if formatted else message)
            if checks.nested:
                jax.effects_barrier()
                if failures:
                    raise ValueError(failures[0])
        return out

    return call

"""Input validation that raises a clear error naming the argument.

Checks on shapes and Python hyperparameters run at construction or trace time. Checks on
values (:func:`require`) read concrete arrays on the host; inside a strategy's compiled
eager call (``jaxal._eager``) they are traced into the program (:class:`DeferredChecks`)
and a failure is raised once the call returns; under the user's own ``jax.jit`` they are
skipped and the selectors fill slots they cannot fill with ``-1``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import numbers
import operator
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


class DeferredChecks:
    """The value checks met while tracing one compiled eager call.

    A check on an array of the call's own trace becomes an output of the program
    (``conditions`` / ``values``, their ``messages`` kept here); a check inside a nested
    trace (a ``vmap``, a loop body) becomes a host callback that appends its message to
    ``failures`` when the program runs.

    Attributes:
        trace: the jit trace of the call (the ``_trace`` of its argument tracers).
        messages: one message per output check, in order.
        conditions: bool arrays, True where the check holds.
        values: the scalar each message names (0 where it names none).
        failures: messages of failed nested checks, appended on the host.
        nested: whether any nested check was traced.
    """

    def __init__(self, trace: object, failures: list[str]) -> None:
        self.trace = trace
        self.messages: list[tuple[str, bool]] = []
        self.conditions: list[jax.Array] = []
        self.values: list[jax.Array] = []
        self.failures = failures
        self.nested = False


_DEFERRED: contextvars.ContextVar[DeferredChecks | None] = contextvars.ContextVar(
    "jaxal_deferred_value_checks", default=None
)


@contextlib.contextmanager
def deferred_value_checks(checks: DeferredChecks) -> Iterator[DeferredChecks]:
    """Inside the block, value checks on traced arrays are collected in ``checks``."""
    token = _DEFERRED.set(checks)
    try:
        yield checks
    finally:
        _DEFERRED.reset(token)


def is_concrete(*arrays: object) -> bool:
    """True when no argument is a tracer, i.e. values can be read on the host."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def spread_over_processes(array: object) -> bool:
    """True for a concrete ``jax.Array`` whose values lie partly on other processes'
    devices (a global array of a multi-process run, e.g. from
    ``jax.make_array_from_process_local_data``, not replicated): NumPy cannot read it on
    this host, but a ``jax.numpy`` reduction over it runs on every process and returns a
    value that each process can read."""
    return (
        isinstance(array, jax.Array)
        and not isinstance(array, jax.core.Tracer)
        and not array.is_fully_addressable
        and not array.is_fully_replicated
    )


def require(
    array: ArrayLike,
    holds: Callable[[Any, Any], Any],
    message: str,
    value: Callable[[Any, Any], Any] | None = None,
) -> None:
    """Raise ``ValueError(message)`` unless ``holds(xp, array)`` is True.

    ``holds`` and ``value`` are written once for both array modules: ``xp`` is NumPy when
    ``array`` is concrete (read on the host, so a constant closed over by a jitted function
    stays a constant) and ``jax.numpy`` inside a strategy's compiled eager call
    (:class:`DeferredChecks`; the call raises a failure once it returns) and for a concrete
    array spread over several processes (:func:`spread_over_processes`: every process
    computes the condition together, and every process raises). Under the user's own
    ``jit`` the check is skipped.

    Args:
        array: the array the condition reads.
        holds: ``(xp, array) -> bool scalar``.
        message: the error; a ``{}`` in it is filled with ``value(xp, array)``.
        value: ``(xp, array) -> scalar`` named in the message, or None.
    """
    if is_concrete(array):
        xp, read = (jnp, array) if spread_over_processes(array) else (np, np.asarray(array))
        if not bool(holds(xp, read)):
            raise ValueError(message.format(value(xp, read)) if value else message)
    elif (checks := _DEFERRED.get()) is not None:
        condition = holds(jnp, array)
        named = jnp.int32(0) if value is None else value(jnp, array)
        # The trace the condition lives in: a check inside a loop body on an array closed
        # over from outside it still computes its condition in the body's trace.
        trace = getattr(condition, "_trace", getattr(array, "_trace", None))
        if trace is checks.trace:
            checks.messages.append((message, value is not None))
            checks.conditions.append(jnp.asarray(condition, bool))
            checks.values.append(jnp.asarray(named))
        else:
            checks.nested = True
            record = functools.partial(_record_failure, checks.failures, message, value is not None)
            jax.debug.callback(record, condition, named)


def _record_failure(
    failures: list[str], message: str, formatted: bool, holds: Any, value: Any
) -> None:
    """Host side of a deferred check: append the message when ``holds`` is False (every
    entry, when the check ran under ``vmap``)."""
    holds, value = np.asarray(holds), np.asarray(value)
    if holds.all():
        return
    if formatted and value.shape == holds.shape:
        value = value[~holds]
    failures.append(message.format(value.reshape(-1)[0]) if formatted else message)


def positive_int(value: object, name: str) -> int:
    """Return ``value`` as a Python int >= 1, or raise naming ``name``."""
    return _int_at_least(value, 1, name)


def nonnegative_int(value: object, name: str) -> int:
    """Return ``value`` as a Python int >= 0, or raise naming ``name``."""
    return _int_at_least(value, 0, name)


def _int_at_least(value: object, lowest: int, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        as_int = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be a Python int, got {type(value).__name__}") from None
    if as_int < lowest:
        raise ValueError(f"{name} must be >= {lowest}, got {as_int}")
    return as_int


def optional_positive_int(value: object, name: str) -> int | None:
    """Like :func:`positive_int`, but ``None`` passes through."""
    return None if value is None else positive_int(value, name)


def positive_float(value: object, name: str) -> float:
    """Return ``value`` as a finite Python float > 0, or raise naming ``name``."""
    number = _real(value, name)
    if not number > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return number


def nonnegative_float(value: object, name: str) -> float:
    """Return ``value`` as a finite Python float >= 0, or raise naming ``name``."""
    number = _real(value, name)
    if not number >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def _real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def one_of(value: str, allowed: tuple[str, ...], name: str) -> str:
    """Return ``value`` if it is one of ``allowed``, or raise listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def prng_key(key: object, name: str = "key") -> None:
    """Raise unless ``key`` is one PRNG key: a typed key (``jax.random.key(seed)``, shape
    ()) or a raw uint32 [2] key (``jax.random.PRNGKey(seed)``)."""
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", ()))
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape:
            raise ValueError(
                f"{name} must be one PRNG key; got a batch of {shape} keys: {_ONE_KEY}"
            )
        return
    if dtype == np.uint32 and shape and shape[-1] == 2:
        if len(shape) > 1:
            raise ValueError(
                f"{name} must be one PRNG key; got a batch of {shape[:-1]} raw keys: {_ONE_KEY}"
            )
        return
    got = type(key).__name__ if dtype is None else f"an array of {dtype}, shape {shape}"
    raise TypeError(f"{name} must be a PRNG key such as jax.random.key(0); got {got}")


_ONE_KEY = "call once per key (or jax.vmap the call over the keys)"


def rank_at_least(array: jax.Array, rank: int, name: str) -> None:
    """Raise unless ``array`` has at least ``rank`` dimensions."""
    if jnp.ndim(array) < rank:
        raise ValueError(f"{name} must have rank >= {rank}, got shape {jnp.shape(array)}")


def finite(array: ArrayLike, name: str) -> None:
    """Raise if a floating ``array`` holds NaN or infinity (:func:`require`)."""
    if jnp.issubdtype(jnp.result_type(array), jnp.inexact):
        require(array, lambda xp, a: xp.all(xp.isfinite(a)), _not_finite(name))


def finite_where(flags: ArrayLike, name: str) -> None:
    """Raise as :func:`finite` unless every entry of bool ``flags`` holds: the flags say,
    per part of ``name`` (e.g. per point), that its values are finite, for an array that
    is not kept whole."""
    require(flags, lambda xp, f: xp.all(f), _not_finite(name))


def _not_finite(name: str) -> str:
    return f"{name} must be finite; it holds NaN or infinity"


def labels_in_range(labels: ArrayLike, num_classes: int, name: str) -> None:
    """TypeError unless ``labels`` holds integers; ValueError when concrete values fall
    outside [0, num_classes).

    The values are read with NumPy: a concrete array closed over by a jitted function (a
    bound query or validation set) stays concrete that way, where a jnp op would trace it.
    """
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integer labels, got dtype {labels.dtype}")
    if labels.size:
        require(
            labels,
            lambda xp, a: (a.min() >= 0) & (a.max() < num_classes),
            f"{name} must lie in [0, {num_classes}) (the model's classes)",
        )


def budget_fits(budget: int, candidates: jax.Array) -> None:
    """Raise if the ``candidates`` mask [N] has fewer than ``budget`` True entries
    (:func:`require`)."""
    require(
        candidates,
        lambda xp, c: xp.sum(c) >= budget,
        f"budget={budget} is larger than the number of unlabeled points ({{}})",
        lambda xp, c: xp.sum(c),
    )


_INT32 = np.iinfo(np.int32)


def integer_array(value: object, name: str) -> jax.Array:
    """Return ``value`` as a jax Array of an integer dtype, or raise naming ``name``.

    TypeError for any other dtype (float, bool, string, object), checked from the dtype
    alone, so under ``jit`` too. Values that are not jax arrays are read with NumPy first,
    so that strings get this error rather than JAX's. An empty array of any dtype becomes
    int32 (``[]`` reads as float). ValueError when concrete values do not fit in int32.
    """
    if not isinstance(value, jax.Array):
        host = np.asarray(value)
        if host.size == 0:
            return jnp.zeros(host.shape, jnp.int32)
        value = host
    dtype = value.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{name} must hold integers, got dtype {dtype}")
    if value.size and jnp.iinfo(dtype).max > _INT32.max:
        require(
            value,
            lambda xp, a: (a.min() >= _INT32.min) & (a.max() <= _INT32.max),
            f"{name} must fit in int32, got values up to {{}}",
            lambda xp, a: a.max(),
        )
    return jnp.asarray(value)

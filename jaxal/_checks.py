"""Input validation that raises a clear error naming the argument.

Checks on shapes and Python hyperparameters run at construction or trace time. Checks on
values run only when the array is concrete (a call outside ``jax.jit``); under ``jit`` they
are skipped and the selectors fill slots they cannot fill with ``-1``.
"""

from __future__ import annotations

import math
import numbers
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def is_concrete(*arrays: object) -> bool:
    """True when no argument is a tracer, i.e. values can be read on the host."""
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


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


def rank_at_least(array: jax.Array, rank: int, name: str) -> None:
    """Raise unless ``array`` has at least ``rank`` dimensions."""
    if jnp.ndim(array) < rank:
        raise ValueError(f"{name} must have rank >= {rank}, got shape {jnp.shape(array)}")


def finite(array: ArrayLike, name: str) -> None:
    """Raise if a concrete floating ``array`` holds NaN or infinity (no-op under jit)."""
    if is_concrete(array) and jnp.issubdtype(jnp.result_type(array), jnp.inexact):
        if not bool(np.all(np.isfinite(np.asarray(array)))):
            raise ValueError(f"{name} must be finite; it holds NaN or infinity")


def labels_in_range(labels: ArrayLike, num_classes: int, name: str) -> None:
    """TypeError unless ``labels`` holds integers; ValueError when concrete values fall
    outside [0, num_classes).

    The values are read with NumPy: a concrete array closed over by a jitted function (a
    bound query or validation set) stays concrete that way, where a jnp op would trace it.
    """
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"{name} must hold integer labels, got dtype {labels.dtype}")
    if is_concrete(labels) and labels.size:
        host = np.asarray(labels)
        if host.min() < 0 or host.max() >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}) (the model's classes)")


def budget_fits(budget: int, candidates: jax.Array) -> None:
    """Raise if a concrete ``candidates`` mask [N] has fewer than ``budget`` True entries."""
    if is_concrete(candidates):
        available = int(np.sum(np.asarray(candidates)))
        if budget > available:
            raise ValueError(
                f"budget={budget} is larger than the number of unlabeled points ({available})"
            )

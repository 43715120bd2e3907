"""The pool: fixed-size arrays plus masks, a pytree whose shapes never change."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxal import _checks


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Pool:
    """Every point of an active-learning experiment, labeled or not.

    Attributes:
        x: inputs, any dtype, shape [N, ...].
        y: int32 [N], the label of each point; -1 where unknown.
        labeled: bool [N], True for points in the labeled set (chosen for labeling).
        offset: int32 scalar, the global index of ``x[0]``: 0 for a whole pool; the start
            of the chunk when a pool is one chunk of a larger one (``jaxal.streaming``), so
            that per-point randomness (MC dropout) derives from global indices.
    """

    x: jax.Array
    y: jax.Array
    labeled: jax.Array
    offset: jax.Array

    @classmethod
    def create(
        cls,
        x: ArrayLike,
        y: ArrayLike | None = None,
        labeled: ArrayLike | None = None,
        *,
        num_classes: int | None = None,
    ) -> Pool:
        """Build a pool from inputs, optional labels and an optional labeled mask.

        Args:
            x: inputs [N, ...], N >= 1; floating inputs must be finite.
            y: integer labels [N]: a class index >= 0, or -1 where unknown; default all -1.
            labeled: the labeled set, as a bool mask [N] or as int indices [K] into the
                pool (repeated indices are allowed); default none. An integer array of
                length N that holds only 0 and 1 is refused: it reads as a 0/1 mask as well
                as indices; pass it as a bool mask, or as the indices of the True entries.
            num_classes: when given, ``y`` must lie in [-1, num_classes).

        Returns:
            A ``Pool`` with ``y`` int32 [N] and ``labeled`` bool [N].

        Raises:
            TypeError: ``y`` of a non-integer dtype, or ``labeled`` neither bool nor integer.
            ValueError: empty ``x``, or ``y`` / ``labeled`` of another length than ``x``,
                or non-finite floating ``x``, or ``y`` below -1 (or >= ``num_classes``),
                or ``labeled`` indices outside [0, N) or an ambiguous 0/1 integer array.
                Value checks run when the arrays are concrete (outside ``jax.jit``).

        A sharded pool: pass ``x``, ``y`` and ``labeled`` sharded by rows (a
        ``NamedSharding``); the default ``y`` and ``labeled`` are then sharded like ``x``'s
        rows and ``offset`` is replicated over its mesh, as a jitted round returns them.
        Arrays spread over several processes (global arrays of a multi-process run, e.g.
        from ``jax.make_array_from_process_local_data``) are checked by reductions that
        every process runs, and raise on every process; ``labeled`` must then be a bool
        mask.
        """
        num_classes = _checks.optional_positive_int(num_classes, "num_classes")
        x = jnp.asarray(x)
        _checks.rank_at_least(x, 1, "x")
        n = x.shape[0]
        if n == 0:
            raise ValueError("x must hold at least one point; got an empty pool")
        _checks.finite(x, "x")
        return cls(
            x=x,
            y=_initial_labels(y, n, num_classes, x),
            labeled=_labeled_mask(labeled, n, x),
            offset=_zero_offset(x),
        )

    @property
    def size(self) -> int:
        """N, the number of points in the pool."""
        return self.labeled.shape[0]

    @property
    def unlabeled(self) -> jax.Array:
        """bool [N]: the points a strategy may select."""
        return ~self.labeled

    def label(
        self, indices: ArrayLike, labels: ArrayLike, *, num_classes: int | None = None
    ) -> Pool:
        """Return a new pool with ``indices`` labeled as ``labels``. Pure; jit-able.

        Args:
            indices: int [K] positions in the pool, each in [0, N) or -1; -1 (an unfilled
                slot of a selection under jit) is skipped, with its label.
            labels: int [K] class indices >= 0 of those points (-1, "unknown", cannot be
                assigned). A position repeated in ``indices`` must get one label.
            num_classes: when given, ``labels`` must also be < ``num_classes``.

        Returns:
            The new ``Pool``; ``self`` is unchanged.

        Raises:
            TypeError: ``indices`` or ``labels`` of a non-integer dtype (float, bool,
                string), also under jit.
            ValueError: shapes that differ; and when the arrays are concrete (outside
                ``jax.jit``): an index other than -1 outside [0, N), a negative label (or
                one >= ``num_classes``), or one index given two different labels. Under
                jit the values cannot be read: every negative index is skipped and an index
                >= N is dropped, as the scatter's ``mode="drop"`` does.
        """
        num_classes = _checks.optional_positive_int(num_classes, "num_classes")
        indices = _checks.integer_array(indices, "indices")
        labels = _checks.integer_array(labels, "labels")
        if indices.shape != labels.shape:
            raise ValueError(
                f"indices and labels must have one shape, got {indices.shape} and {labels.shape}"
            )
        if _checks.is_concrete(indices):
            host_indices = _check_indices(np.asarray(indices).ravel(), self.size)
            if _checks.is_concrete(labels):
                _check_new_labels(host_indices, np.asarray(labels).ravel(), num_classes)
        safe = _drop_unfilled(indices, self.size)
        return dataclasses.replace(
            self,
            y=self.y.at[safe].set(labels.astype(jnp.int32), mode="drop"),
            labeled=self.labeled.at[safe].set(True, mode="drop"),
        )

    def mark_labeled(self, indices: ArrayLike) -> Pool:
        """Return a new pool with ``indices`` (int [K], -1 skipped) in the labeled set.

        Their ``y`` is left as it is (-1 until the labels arrive through :meth:`label`).
        Concrete indices other than -1 must lie in [0, N), as in :meth:`label`.
        """
        indices = _checks.integer_array(indices, "indices")
        if _checks.is_concrete(indices):
            _check_indices(np.asarray(indices).ravel(), self.size)
        safe = _drop_unfilled(indices, self.size)
        return dataclasses.replace(self, labeled=self.labeled.at[safe].set(True, mode="drop"))


def _drop_unfilled(indices: jax.Array, size: int) -> jax.Array:
    """Map -1 (and, under jit, any negative index) past the end, so ``mode='drop'`` skips it."""
    return jnp.where(indices < 0, size, indices)


def _check_indices(indices: np.ndarray, size: int) -> np.ndarray:
    """Return concrete ``indices`` [K] unchanged, or raise unless each is -1 or in [0, size)."""
    bad = indices[(indices != -1) & ((indices < 0) | (indices >= size))]
    if bad.size:
        raise ValueError(
            f"indices must lie in [0, {size}) (the pool's points), or be -1 for an unfilled "
            f"slot; got {_some(bad)}"
        )
    return indices


def _check_new_labels(indices: np.ndarray, labels: np.ndarray, num_classes: int | None) -> None:
    """Raise unless the labels [K] of the filled ``indices`` [K] are valid class indices.

    Slots with index -1 are skipped. A label must be >= 0 (and < ``num_classes`` when
    given), and a repeated index must carry one label.
    """
    filled = indices != -1
    indices, labels = indices[filled], labels[filled]
    if not labels.size:
        return
    if labels.min() < 0:
        raise ValueError(
            "labels must be class indices >= 0 (-1, unknown, cannot be assigned); "
            f"got {_some(labels[labels < 0])}"
        )
    if num_classes is not None and labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, num_classes={num_classes}); "
            f"got {_some(labels[labels >= num_classes])}"
        )
    order = np.argsort(indices, kind="stable")
    indices, labels = indices[order], labels[order]
    clash = np.flatnonzero((indices[1:] == indices[:-1]) & (labels[1:] != labels[:-1]))
    if clash.size:
        i = clash[0]
        raise ValueError(
            f"indices holds {indices[i]} more than once with different labels "
            f"({labels[i]} and {labels[i + 1]})"
        )


def _some(values: np.ndarray, shown: int = 5) -> str:
    """A short listing of ``values`` [K], for error messages."""
    listed = ", ".join(str(v) for v in values[:shown])
    return listed + (f", ... ({values.size} in all)" if values.size > shown else "")


def _row_sharding(x: jax.Array) -> jax.sharding.NamedSharding | None:
    """The sharding of ``x``'s rows as a sharding of arrays [N], when ``x`` is a concrete
    array with a ``NamedSharding``; None otherwise (under ``jit`` too)."""
    if isinstance(x, jax.core.Tracer):
        return None
    sharding = getattr(x, "sharding", None)
    if not isinstance(sharding, jax.sharding.NamedSharding):
        return None
    first = sharding.spec[0] if sharding.spec else None
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(first))


def _zero_offset(x: jax.Array) -> jax.Array:
    """int32 0; replicated over ``x``'s mesh when ``x`` has a ``NamedSharding``, the
    sharding a jitted round gives the offset of the pool it returns (so that the next
    round compiles nothing)."""
    rows = _row_sharding(x)
    if rows is None:
        return jnp.int32(0)
    replicated = jax.sharding.NamedSharding(rows.mesh, jax.sharding.PartitionSpec())
    return jax.device_put(np.int32(0), replicated)


def _rows_of(x: jax.Array, fill: int | bool, dtype: np.dtype | type) -> jax.Array:
    """``fill`` [N] of ``dtype``, N = ``x``'s rows; sharded like ``x``'s rows when ``x``
    has a ``NamedSharding`` (no process then holds more than its own rows)."""
    n = x.shape[0]
    rows = _row_sharding(x)
    if rows is None:
        if _checks.spread_over_processes(x):
            raise ValueError(
                "x is spread over several processes with a sharding other than a "
                "NamedSharding: pass y and labeled as arrays [N] sharded like x's rows"
            )
        return jnp.full((n,), fill, dtype)

    def fill_rows(index: Any) -> np.ndarray:
        """The rows ``index[0]`` (a slice) of one device."""
        start, stop, _ = index[0].indices(n)
        return np.full(stop - start, fill, dtype)

    return jax.make_array_from_callback((n,), rows, fill_rows)


def _initial_labels(
    y: ArrayLike | None, n: int, num_classes: int | None, x: jax.Array
) -> jax.Array:
    """``y`` [n] as int32, checked to hold -1 or class indices; all -1 when None."""
    if y is None:
        return _rows_of(x, -1, np.int32)
    y = _checks.integer_array(y, "y")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) like x's first axis, got {y.shape}")
    if _checks.spread_over_processes(y):  # read by reductions that every process runs
        _checks.require(
            y,
            lambda xp, a: a.min() >= -1,
            "y must hold class indices >= 0, or -1 where unknown; got {}",
            lambda xp, a: a.min(),
        )
        if num_classes is not None:
            _checks.require(
                y,
                lambda xp, a: a.max() < num_classes,
                f"y must lie in [-1, num_classes={num_classes}); got {{}}",
                lambda xp, a: a.max(),
            )
    elif _checks.is_concrete(y):
        host = np.asarray(y)
        if host.min() < -1:
            raise ValueError(
                f"y must hold class indices >= 0, or -1 where unknown; got {_some(host[host < -1])}"
            )
        if num_classes is not None and host.max() >= num_classes:
            raise ValueError(
                f"y must lie in [-1, num_classes={num_classes}); "
                f"got {_some(host[host >= num_classes])}"
            )
    return y.astype(jnp.int32)


def _labeled_mask(labeled: ArrayLike | None, n: int, x: jax.Array) -> jax.Array:
    """The labeled set as a bool mask [n], from a bool mask [n] or int indices [K]."""
    if labeled is None:
        return _rows_of(x, False, np.bool_)
    if not isinstance(labeled, jax.Array):
        labeled = np.asarray(labeled)
    if labeled.dtype == np.bool_:
        if labeled.shape != (n,):
            raise ValueError(
                f"labeled must have shape ({n},) like x's first axis, got {labeled.shape}"
            )
        return jnp.asarray(labeled)
    if labeled.ndim != 1 or not (labeled.size == 0 or jnp.issubdtype(labeled.dtype, jnp.integer)):
        raise TypeError(
            "labeled must be a bool mask [N] or a 1-D array of int indices, got dtype "
            f"{labeled.dtype} and shape {labeled.shape}"
        )
    if _checks.spread_over_processes(labeled):
        raise ValueError(
            "labeled: indices spread over several processes are not supported; pass the "
            "labeled set as a bool mask [N], sharded like x"
        )
    indices = _checks.integer_array(labeled, "labeled")
    if _checks.is_concrete(indices) and indices.size:
        host = np.asarray(indices)
        if host.shape == (n,) and np.all((host == 0) | (host == 1)):
            raise ValueError(
                f"labeled is an integer array of length N={n} that holds only 0 and 1: it "
                "could be a 0/1 mask or indices. Pass a bool mask (labeled.astype(bool)) "
                "or the indices of the labeled points (np.flatnonzero(mask))"
            )
        if host.min() < 0 or host.max() >= n:
            raise ValueError(
                f"labeled indices must lie in [0, {n}); got {_some(host[(host < 0) | (host >= n)])}"
            )
    return jnp.zeros((n,), bool).at[indices].set(True)

"""The pool: fixed-size arrays plus masks, a pytree whose shapes never change."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
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
        cls, x: ArrayLike, y: ArrayLike | None = None, labeled: ArrayLike | None = None
    ) -> Pool:
        """Build a pool from inputs, optional labels and an optional labeled mask.

        Args:
            x: inputs [N, ...], N >= 1; floating inputs must be finite.
            y: integer labels [N] (-1 = unknown); default all -1.
            labeled: bool mask [N] of the labeled set, or int indices of it; default none.

        Returns:
            A ``Pool`` with ``y`` int32 [N] and ``labeled`` bool [N].

        Raises:
            ValueError: empty ``x``, or ``y`` / ``labeled`` of another length than ``x``,
                or non-finite floating ``x``.
        """
        x = jnp.asarray(x)
        _checks.rank_at_least(x, 1, "x")
        n = x.shape[0]
        if n == 0:
            raise ValueError("x must hold at least one point; got an empty pool")
        _checks.finite(x, "x")
        y = jnp.full((n,), -1, jnp.int32) if y is None else jnp.asarray(y)
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},) like x's first axis, got {y.shape}")
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise TypeError(f"y must hold integer labels, got dtype {y.dtype}")
        labeled_mask = _labeled_mask(labeled, n)
        return cls(x=x, y=y.astype(jnp.int32), labeled=labeled_mask, offset=jnp.int32(0))

    @property
    def size(self) -> int:
        """N, the number of points in the pool."""
        return self.labeled.shape[0]

    @property
    def unlabeled(self) -> jax.Array:
        """bool [N]: the points a strategy may select."""
        return ~self.labeled

    def label(self, indices: ArrayLike, labels: ArrayLike) -> Pool:
        """Return a new pool with ``indices`` labeled as ``labels``. Pure; jit-able.

        Args:
            indices: int [K] positions in the pool; entries equal to -1 (unfilled slots of
                a selection under jit) are ignored.
            labels: int [K] labels of those points.

        Returns:
            The new ``Pool``; ``self`` is unchanged.
        """
        indices = jnp.asarray(indices)
        labels = jnp.asarray(labels)
        if indices.shape != labels.shape:
            raise ValueError(
                f"indices and labels must have one shape, got {indices.shape} and {labels.shape}"
            )
        safe = _drop_unfilled(indices, self.size)
        return dataclasses.replace(
            self,
            y=self.y.at[safe].set(labels.astype(jnp.int32), mode="drop"),
            labeled=self.labeled.at[safe].set(True, mode="drop"),
        )

    def mark_labeled(self, indices: ArrayLike) -> Pool:
        """Return a new pool with ``indices`` (int [K], -1 ignored) in the labeled set.

        Their ``y`` is left as it is (-1 until the labels arrive through :meth:`label`).
        """
        safe = _drop_unfilled(jnp.asarray(indices), self.size)
        return dataclasses.replace(self, labeled=self.labeled.at[safe].set(True, mode="drop"))


def _drop_unfilled(indices: jax.Array, size: int) -> jax.Array:
    """Map -1 (and any negative index) past the end, so that ``mode='drop'`` skips it."""
    return jnp.where(indices < 0, size, indices)


def _labeled_mask(labeled: ArrayLike | None, n: int) -> jax.Array:
    if labeled is None:
        return jnp.zeros((n,), bool)
    labeled = jnp.asarray(labeled)
    if labeled.dtype == jnp.bool_:
        if labeled.shape != (n,):
            raise ValueError(
                f"labeled must have shape ({n},) like x's first axis, got {labeled.shape}"
            )
        return labeled
    if not jnp.issubdtype(labeled.dtype, jnp.integer) or labeled.ndim != 1:
        raise TypeError("labeled must be a bool mask [N] or a 1-D array of int indices")
    if (
        _checks.is_concrete(labeled)
        and labeled.size
        and (int(labeled.min()) < 0 or int(labeled.max()) >= n)
    ):
        raise ValueError(f"labeled indices must lie in [0, {n})")
    return jnp.zeros((n,), bool).at[labeled].set(True)

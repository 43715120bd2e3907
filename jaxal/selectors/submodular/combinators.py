"""Combinators: new :class:`SubmodularFn` from old ones.

SIMILAR's information measures (Kothawade et al. 2021; Iyer et al. 2021) from any
submodular f over a ground set that holds the pool V first, then a query set Q and a
private set P:

* :func:`conditional_gain`: f(A | G) = f(A + G) - f(G), G inserted into the state at
  ``init``;
* :func:`submodular_mutual_information`: I_f(A; Q) = f(A) + f(Q) - f(A + Q), two states
  (f(. | A) and f(. | A + Q)) updated together and evaluated in one ``vmap``, so that a
  kernel column computed on the fly serves both;
* :func:`restrict`: only the first ``size`` elements (the pool) are candidates;
* :func:`plus_modular` and :func:`modular`: a modular term added, or alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal.selectors.submodular._arguments import distinct_indices
from jaxal.selectors.submodular.greedy import Insert, SubmodularFn


def insert_each(fn: SubmodularFn) -> Insert:
    """The generic :data:`Insert`: ``fn.update`` once per index, in a ``fori_loop``."""

    def insert(state, indices):
        indices = jnp.asarray(indices, jnp.int32)
        return jax.lax.fori_loop(0, indices.shape[0], lambda t, s: fn.update(s, indices[t]), state)

    return insert


def conditional_gain(
    fn: SubmodularFn, given: jax.Array, *, insert: Insert | None = None
) -> SubmodularFn:
    """f(A | G) = f(A + G) - f(G): ``fn`` with the elements ``given`` inserted at ``init``.

    The gains are f's gains at A + G, so submodularity (and monotonicity) carry over.
    Cost: one ``insert`` of R = |G| elements at ``init`` (R updates by default); then as
    ``fn``. Memory: ``fn``'s state with capacity k + R.

    Args:
        fn: a set function over a ground set that holds G (e.g. V + P).
        given: int [R], the elements of G (distinct; never candidates).
        insert: a bulk insert for ``fn``'s state (default :func:`insert_each`).

    Returns:
        A :class:`SubmodularFn` over the same N elements (the given ones never gain).
    """
    given = distinct_indices(given, fn.size, "given")
    insert = insert_each(fn) if insert is None else insert

    def init(capacity):
        return insert(fn.init(capacity + given.shape[0]), given)

    return fn._replace(name=f"conditional_gain({fn.name})", init=init)


def submodular_mutual_information(
    fn: SubmodularFn,
    query: jax.Array,
    *,
    insert: Insert | None = None,
    submodular: bool = False,
) -> SubmodularFn:
    """I_f(A; Q) = f(A) + f(Q) - f(A + Q); gain f(e | A) - f(e | A + Q).

    Keeps two states of ``fn`` stacked on a leading axis of 2, the plain one and one with
    Q inserted, and evaluates and updates both in one ``jax.vmap``: anything computed from
    the data alone (a kernel block or column) is computed once for both. Monotone for a
    monotone submodular f; submodular in A for some f only (facility location and graph
    cut, not log-determinant in general), hence the explicit ``submodular`` flag.

    Cost: one ``insert`` of |Q| elements at ``init``; every gain, ``gains_at`` and update
    is ``fn``'s on two states (shared kernel work once). Memory: two states of capacity
    k + |Q|.

    Args:
        fn: a set function over a ground set that holds Q (e.g. V + Q).
        query: int [Q], the elements of Q (distinct; never candidates).
        insert: a bulk insert for ``fn``'s state (default :func:`insert_each`).
        submodular: whether I_f(.; Q) is submodular for this f (lazy greedy needs it).

    Returns:
        A :class:`SubmodularFn` over the same N elements.
    """
    query = distinct_indices(query, fn.size, "query")
    insert = insert_each(fn) if insert is None else insert

    def init(capacity):
        total = capacity + query.shape[0]
        plain, with_query = fn.init(total), insert(fn.init(total), query)
        return jax.tree.map(lambda a, b: jnp.stack([a, b]), plain, with_query)

    def gains(state):
        both = jax.vmap(fn.gains)(state)
        return both[0] - both[1]

    def gains_at(state, indices):
        both = jax.vmap(fn.gains_at, in_axes=(0, None))(state, indices)
        return both[0] - both[1]

    def update(state, index):
        return jax.vmap(fn.update, in_axes=(0, None))(state, index)

    return SubmodularFn(
        f"mutual_information({fn.name})",
        fn.size,
        fn.hparams,
        init,
        gains,
        gains_at,
        update,
        submodular,
    )


def restrict(fn: SubmodularFn, size: int) -> SubmodularFn:
    """``fn`` with only its first ``size`` elements in the ground set (the pool of V + Q + P).

    ``gains`` computes ``fn``'s and keeps the first ``size``; the rest is unchanged.
    """
    size = _checks.positive_int(size, "size")
    if size > fn.size:
        raise ValueError(f"size must be <= {fn.size} (the function's ground set), got {size}")
    return fn._replace(size=size, gains=lambda state: fn.gains(state)[:size])


def plus_modular(fn: SubmodularFn, values: jax.Array) -> SubmodularFn:
    """f(A) + sum_{j in A} values_j: every gain plus the element's value. Cost O(1) extra."""
    values = jnp.asarray(values, jnp.float32)
    if values.shape != (fn.size,):
        raise ValueError(f"values must have shape ({fn.size},), got {values.shape}")
    return fn._replace(
        gains=lambda state: fn.gains(state) + values,
        gains_at=lambda state, indices: fn.gains_at(state, indices) + values[indices],
    )


def modular(values: jax.Array, name: str = "modular") -> SubmodularFn:
    """f(A) = sum_{j in A} values_j: constant gains, an empty state. O(N) memory."""
    values = jnp.asarray(values, jnp.float32)
    if values.ndim != 1:
        raise ValueError(f"values must be a [N] array, got shape {values.shape}")
    return SubmodularFn(
        name,
        values.shape[0],
        {},
        lambda capacity: jnp.zeros((), jnp.float32),
        lambda state: values,
        lambda state, indices: values[indices],
        lambda state, index: state,
    )

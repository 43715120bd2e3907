"""SIMILAR's submodular information measures as :class:`SubmodularFn` factories.

Kothawade et al. 2021 ("SIMILAR: Submodular Information Measures Based Active Learning In
Realistic Scenarios") and Iyer et al. 2021 ("Submodular Combinatorial Information
Measures"): given a submodular f over the pool V together with a query set Q and a private
set P,

* the conditional gain f(A | P) = f(A + P) - f(P) selects points unlike P (SCG);
* the mutual information I_f(A; Q) = f(A) + f(Q) - f(A + Q) selects points like Q (SMI);
* the conditional mutual information I_f(A; Q | P) = f(A + P) + f(Q + P) - f(A + Q + P)
  - f(P) does both (SCMI).

The combinators of ``jaxal.selectors.submodular.combinators`` build them from any
``SubmodularFn`` over the combined ground set V + Q + P (V first). With them

* ``logdetmi``, ``logdetcg``, ``logdetcmi`` are the log-determinant over the square block
  kernel [[S, eta Sq, nu Sp], [eta Sq^T, S_QQ, S_QP], [nu Sp^T, S_PQ, S_PP]] (the Q-P
  block unscaled, as submodlib), P and Q inserted by block Cholesky steps;
* ``gccg`` is graph cut over V + P (coverage rows V, the V-P block scaled by nu).

Facility location over V + Q + P conditioned on P is facility location over V whose
memo starts at p_i = nu max_p Sp_ip, and its mutual information with Q caps every row
at max(p_i, eta max_q Sq_iq): ``fl1mi``, ``flcg`` and ``flcmi`` are
:func:`~jaxal.selectors.facility_location` over the pool kernel with a floor and a cap,
one state and one kernel pass
where the combinators would keep two (the tests check both ways agree). ``fl2mi``,
``gcmi`` and ``com`` are closed forms over the [N, Q] kernel alone.
The definitions, hyperparameters and kernels are submodlib's as DISTIL calls them: every
kernel is DISTIL's K3, the cosine or euclidean similarity of
``jaxal.selectors.similarity_kernel`` mapped by K <- (K + 1) / 2 before the block scales.

Pool-pool similarities are :class:`~jaxal.selectors.Similarity` objects evaluated on the
fly (a block of at most 2^22 entries at a time, memory linear in N), except that the
facility-location measures store the N x N pool kernel up to
``kernels.STORED_KERNEL_MAX_POINTS`` points (``dense=None``): their lazy greedy re-reads
columns many times, and a stored column costs a read where an on-the-fly one costs
O(N * F) arithmetic. Kernels
with the query or private set ([N, Q], [N, P]) are always stored.

Notation in the costs: N pool points, Q query and P private points, k the capacity (the
greedy budget), F the cost of one similarity (D for a plain [N, D] array, about C + D'
for an ``OuterProduct`` of [N, C] and [N, D'] factors).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _checks
from jaxal._points import OuterProduct, Points
from jaxal.selectors.submodular import kernels as _kernels
from jaxal.selectors.submodular._arguments import ground_mask
from jaxal.selectors.submodular.combinators import (
    conditional_gain,
    modular,
    plus_modular,
    restrict,
    submodular_mutual_information,
)
from jaxal.selectors.submodular.functions import (
    facility_location,
    feature_based,
    graph_cut,
    log_determinant,
    log_determinant_insert,
)
from jaxal.selectors.submodular.greedy import Insert, SubmodularFn
from jaxal.selectors.submodular.kernels import METRICS, Similarity, similarity_kernel

MI_FUNCTIONS = ("fl1mi", "fl2mi", "gcmi", "logdetmi", "com")
CG_FUNCTIONS = ("flcg", "gccg", "logdetcg")
CMI_FUNCTIONS = ("flcmi", "logdetcmi")

# --------------------------------------------------------------------------------------
# The measures
# --------------------------------------------------------------------------------------


def fl1mi(
    pool: Points,
    query: Points,
    *,
    eta: float = 1.0,
    metric: str = "cosine",
    ground: jax.Array | None = None,
    chunk_size: int = 1024,
    dense: bool | None = None,
) -> SubmodularFn:
    """Facility-location mutual information: f(A) = sum_{i in V} min(max_{j in A} S_ij, q_i).

    submodlib's FacilityLocationMutualInformation (magnificationEta = eta), with
    q_i = eta max_{p in Q} Sq_ip: I_f(A; Q) of facility location f over the rows V and the
    columns V + Q, query columns scaled by eta (equal to ``submodular_mutual_information`` over that
    f, in one state). Monotone submodular.
    Gain: sum_i [min(max(m_i, S_ie), q_i) - min(m_i, q_i)], m_i = max(0, max_{j in A} S_ij).

    Cost and memory: see :func:`~jaxal.selectors.facility_location` (the pool kernel), plus the
    [N, Q] kernel, O(N * Q * F) work and N * Q floats.

    Args:
        pool: N pool points, float [N, D] or an ``OuterProduct``.
        query: Q query points in the same representation.
        eta: the query scale (query relevance vs diversity), >= 0.
        metric: ``"cosine"`` or ``"euclidean"`` (before the (K + 1) / 2 map).
        ground: bool [N], the pool rows in V (default all; the strategies pass the
            unlabeled points).
        chunk_size: kernel rows per block.
        dense: store the pool kernel (True), compute it on the fly (False) or decide by
            size (None: stored while N^2 <= ``DENSE_ENTRIES``).
    """
    eta = _checks.nonnegative_float(eta, "eta")
    cap = eta * jnp.max(_query_kernel(pool, query, metric), axis=1)
    kernel = _pool_kernel(pool, metric, chunk_size, dense)
    fn = facility_location(kernel, symmetric=True, cap=cap, ground=ground)
    return _named(fn, "fl1mi", eta=eta, metric=metric)


def fl2mi(pool: Points, query: Points, *, eta: float = 1.0, metric: str = "cosine") -> SubmodularFn:
    """Facility-location variant MI (FLQMI): query coverage plus eta times query relevance.

    f(A) = sum_{q in Q} max(0, max_{j in A} S_jq) + eta sum_{j in A} max_q S_jq.

    submodlib's FacilityLocationVariantMutualInformation (queryDiversityEta = eta), over
    the [N, Q] kernel only (unscaled), the memo of every query starting at 0: facility
    location over the query rows plus a modular term. Monotone submodular.
    Gain: sum_q max(0, S_eq - m_q) + eta max_q S_eq.

    Cost: the dense kernel O(N * Q * F); a full gain pass O(N * Q), an update O(Q).
    Memory: 2 N * Q floats (the kernel and its column layout).

    Args:
        pool, query, metric: as :func:`fl1mi`.
        eta: the weight of the modular query-relevance term, >= 0.
    """
    eta = _checks.nonnegative_float(eta, "eta")
    sq = _query_kernel(pool, query, metric)
    fn = plus_modular(facility_location(sq.T), eta * jnp.max(sq, axis=1))
    return _named(fn, "fl2mi", eta=eta, metric=metric)


def gcmi(pool: Points, query: Points, *, metric: str = "cosine") -> SubmodularFn:
    """Graph-cut mutual information: f(A) = sum_{j in A} sum_{q in Q} S_jq. Modular.

    submodlib's GraphCutMutualInformation: the greedy is the top-k of the row sums.
    Cost: the kernel O(N * Q * F), then O(N) per gain pass. Memory: N * Q floats while the
    kernel is built, then O(N).

    Args:
        pool, query, metric: as :func:`fl1mi`.
    """
    sq = _query_kernel(pool, query, metric)
    return _named(modular(jnp.sum(sq, axis=1)), "gcmi", metric=metric)


def com(pool: Points, query: Points, *, eta: float = 1.0, metric: str = "cosine") -> SubmodularFn:
    """Concave over modular: query relevance (modular, weight eta) plus concave query coverage.

    f(A) = eta sum_{j in A} psi(sum_q S_jq) + sum_q psi(sum_{j in A} S_jq).

    submodlib's ConcaveOverModular with mode logarithmic, psi(x) = log(1 + x)
    (queryDiversityEta = eta): feature based over the kernel's columns plus a modular
    term. Monotone submodular.
    Gain: eta psi(sum_q S_eq) + sum_q [psi(t_q + S_eq) - psi(t_q)], t_q = sum_{j in A} S_jq.

    Cost: the kernel O(N * Q * F); a full gain pass O(N * Q), an update O(Q).
    Memory: N * Q floats.

    Args:
        pool, query, metric: as :func:`fl1mi`.
        eta: the weight of the modular term, >= 0.
    """
    eta = _checks.nonnegative_float(eta, "eta")
    sq = _query_kernel(pool, query, metric)
    fn = plus_modular(feature_based(sq, concave="log"), eta * jnp.log1p(jnp.sum(sq, axis=1)))
    return _named(fn, "com", eta=eta, metric=metric)


def logdetmi(
    pool: Points,
    query: Points,
    *,
    eta: float = 1.0,
    lambda_: float = 1.0,
    metric: str = "cosine",
    chunk_size: int = 1024,
) -> SubmodularFn:
    """Log-determinant mutual information: f(A) + f(Q) - f(A + Q), f(X) = log det(K_X + l I).

    submodlib's LogDeterminantMutualInformation (lambdaVal = lambda_, magnificationEta =
    eta) over the block kernel K = [[S, eta Sq], [eta Sq^T, S_QQ]]. Monotone; not
    submodular in general (lazy greedy is refused), and with a large eta K need not be
    positive definite (gains may then be NaN, as in submodlib).
    Gain: log r_e(A) - log r_e(A + Q), r_e(X) = K_ee + l - k_eX^T (K_X + l I)^-1 k_eX,
    from two incremental Cholesky factorizations.

    Cost: Q is inserted by one block Cholesky step, O(Q * (N + Q) * F + Q^2 * (N + Q) +
    Q * (k + Q) * (N + Q)); gains O(N) from the state; an update one kernel column
    O((N + Q) * F) plus O((k + Q) * (N + Q)) per state. Memory: 2 (k + Q) (N + Q) floats
    (the two factors) and a Q x (N + Q) block at ``init``.

    Args:
        pool, query, metric, chunk_size: as :func:`fl1mi`.
        eta: the scale of the pool-query block, >= 0.
        lambda_: the diagonal regularizer, > 0.
    """
    eta, lambda_ = _checks.nonnegative_float(eta, "eta"), _checks.positive_float(lambda_, "lambda_")
    sets = _concat(pool, ("query", query))
    table = ((1.0, eta), (eta, 1.0))
    fn, insert = _log_determinant_over(sets, table, metric, chunk_size, lambda_)
    fn = submodular_mutual_information(fn, sets.indices(1), insert=insert)
    hparams = {"eta": eta, "lambda_": lambda_, "metric": metric}
    return _named(restrict(fn, sets.sizes[0]), "logdetmi", **hparams)


def flcg(
    pool: Points,
    private: Points,
    *,
    nu: float = 1.0,
    metric: str = "cosine",
    ground: jax.Array | None = None,
    chunk_size: int = 1024,
    dense: bool | None = None,
) -> SubmodularFn:
    """Facility-location conditional gain: f(A | P) with f facility location over V + P.

    submodlib's FacilityLocationConditionalGain (privacyHardness = nu): rows V, columns
    V + P, private columns scaled by nu, so the memo starts at p_i = max(0, nu max_p Sp_ip)
    (equal to ``conditional_gain`` over that f). Monotone submodular.
    Gain: sum_i max(0, S_ie - m_i), m_i = max(p_i, max_{j in A} S_ij).

    Cost and memory: see :func:`~jaxal.selectors.facility_location` (the pool kernel), plus the
    [N, P] kernel, O(N * P * F) work and N * P floats.

    Args:
        pool, metric, ground, chunk_size, dense: as :func:`fl1mi`.
        private: P private points in the pool's representation.
        nu: the privacy hardness (the private columns' scale), >= 0.
    """
    nu = _checks.nonnegative_float(nu, "nu")
    floor = nu * jnp.max(_query_kernel(pool, private, metric, "private"), axis=1)
    kernel = _pool_kernel(pool, metric, chunk_size, dense)
    fn = facility_location(kernel, symmetric=True, floor=floor, ground=ground)
    return _named(fn, "flcg", nu=nu, metric=metric)


def gccg(
    pool: Points,
    private: Points,
    *,
    nu: float = 1.0,
    lambda_: float = 1.0,
    metric: str = "cosine",
    ground: jax.Array | None = None,
    chunk_size: int = 1024,
) -> SubmodularFn:
    """Graph-cut conditional gain: f(A | P) with f graph cut over V + P, coverage rows V.

    submodlib's GraphCutConditionalGain (lambdaVal = lambda_, privacyHardness = nu), the
    pool-private block scaled by nu. Submodular.
    Gain: sum_{i in V} S_ie - lambda (S_ee + 2 sum_{j in A} S_je) - 2 lambda nu sum_p Sp_ep.

    Cost: the coverage sums at ``init``, one on-the-fly pass O((N + P)^2 * F), and P
    columns O(P * (N + P) * F); then gains O(N) from the state, an update one column
    O((N + P) * F). Memory O(N + P) plus one block of at most 2^22 entries.

    Args:
        pool, private, nu, metric, ground, chunk_size: as :func:`flcg`.
        lambda_: the redundancy weight, >= 0.
    """
    nu, lambda_ = _checks.nonnegative_float(nu, "nu"), _checks.nonnegative_float(lambda_, "lambda_")
    sets = _concat(pool, ("private", private))
    n, p = sets.sizes
    table = ((1.0, nu), (nu, 1.0))
    kernel = _square_kernel(sets.points, sets.blocks, table, metric, chunk_size)
    coverage = ground_mask(ground, n)
    coverage = jnp.concatenate([coverage, jnp.zeros((p,), bool)])
    fn = graph_cut(kernel, lambda_=lambda_, ground=coverage)
    fn = conditional_gain(fn, sets.indices(1))
    return _named(restrict(fn, n), "gccg", nu=nu, lambda_=lambda_, metric=metric)


def logdetcg(
    pool: Points,
    private: Points,
    *,
    nu: float = 1.0,
    lambda_: float = 1.0,
    metric: str = "cosine",
    chunk_size: int = 1024,
) -> SubmodularFn:
    """Log-determinant conditional gain: log det(K_{A+P} + l I) - log det(K_P + l I).

    submodlib's LogDeterminantConditionalGain over K = [[S, nu Sp], [nu Sp^T, S_PP]].
    Submodular while K is positive semi-definite. Gain: log r_e(A + P) (see
    :func:`logdetmi`).

    Cost: P inserted by one block Cholesky step, O(P * (N + P) * (F + k + P)); gains O(N);
    an update O((N + P) * F + (k + P) * (N + P)). Memory: (k + P) (N + P) floats and a
    P x (N + P) block at ``init``.

    Args:
        pool, private, nu, metric, chunk_size: as :func:`flcg`.
        lambda_: the diagonal regularizer, > 0.
    """
    nu, lambda_ = _checks.nonnegative_float(nu, "nu"), _checks.positive_float(lambda_, "lambda_")
    sets = _concat(pool, ("private", private))
    table = ((1.0, nu), (nu, 1.0))
    fn, insert = _log_determinant_over(sets, table, metric, chunk_size, lambda_)
    fn = conditional_gain(fn, sets.indices(1), insert=insert)
    hparams = {"nu": nu, "lambda_": lambda_, "metric": metric}
    return _named(restrict(fn, sets.sizes[0]), "logdetcg", **hparams)


def flcmi(
    pool: Points,
    query: Points,
    private: Points,
    *,
    eta: float = 1.0,
    nu: float = 1.0,
    metric: str = "cosine",
    ground: jax.Array | None = None,
    chunk_size: int = 1024,
    dense: bool | None = None,
) -> SubmodularFn:
    """Facility-location conditional MI: I_f(A; Q | P), f facility location over V + Q + P.

    submodlib's FacilityLocationConditionalMutualInformation (magnificationEta = eta,
    privacyHardness = nu): rows V, columns V + Q + P with blocks [S, eta Sq, nu Sp]. Per
    row, f(A + P) + f(Q + P) - f(A + Q + P) - f(P) = min(max(a_i, p_i), c_i) - p_i with
    p_i = max(0, nu max_p Sp_ip) and c_i = max(p_i, eta max_q Sq_iq): facility location
    with a floor and a cap (equal to
    ``submodular_mutual_information(conditional_gain(f))``, in one
    state). Monotone submodular. Gain: f(e | A + P) - f(e | A + Q + P).

    Cost and memory: see :func:`~jaxal.selectors.facility_location` (the pool kernel), plus the
    [N, Q] and [N, P] kernels, O(N * (Q + P) * F) work and N * (Q + P) floats.

    Args:
        pool, query, eta, metric, ground, chunk_size, dense: as :func:`fl1mi`.
        private, nu: as :func:`flcg`.
    """
    eta, nu = _checks.nonnegative_float(eta, "eta"), _checks.nonnegative_float(nu, "nu")
    floor = nu * jnp.max(_query_kernel(pool, private, metric, "private"), axis=1)
    cap = jnp.maximum(floor, eta * jnp.max(_query_kernel(pool, query, metric), axis=1))
    kernel = _pool_kernel(pool, metric, chunk_size, dense)
    fn = facility_location(kernel, symmetric=True, floor=floor, cap=cap, ground=ground)
    return _named(fn, "flcmi", eta=eta, nu=nu, metric=metric)


def logdetcmi(
    pool: Points,
    query: Points,
    private: Points,
    *,
    eta: float = 1.0,
    nu: float = 1.0,
    lambda_: float = 1.0,
    metric: str = "cosine",
    chunk_size: int = 1024,
) -> SubmodularFn:
    """Log-determinant conditional MI: I_f(A; Q | P) with the log-determinant f.

    submodlib's LogDeterminantConditionalMutualInformation over
    K = [[S, eta Sq, nu Sp], [eta Sq^T, S_QQ, S_QP], [nu Sp^T, S_PQ, S_PP]] (the Q-P block
    is not scaled). Not submodular in general. Gain: log r_e(A + P) - log r_e(A + Q + P).

    Cost: P, then Q, inserted by block Cholesky steps, O((Q + P) * M * (F + k + Q + P))
    with M = N + Q + P; gains O(N); an update O(M * F + (k + Q + P) * M) per state.
    Memory: 2 (k + Q + P) M floats and a (Q or P) x M block at ``init``.

    Args:
        pool, query, eta, metric, chunk_size: as :func:`logdetmi`.
        private, nu: as :func:`flcg`.
        lambda_: the diagonal regularizer, > 0.
    """
    eta, nu = _checks.nonnegative_float(eta, "eta"), _checks.nonnegative_float(nu, "nu")
    lambda_ = _checks.positive_float(lambda_, "lambda_")
    sets = _concat(pool, ("query", query), ("private", private))
    table = ((1.0, eta, nu), (eta, 1.0, 1.0), (nu, 1.0, 1.0))
    fn, insert = _log_determinant_over(sets, table, metric, chunk_size, lambda_)
    fn = conditional_gain(fn, sets.indices(2), insert=insert)
    fn = submodular_mutual_information(fn, sets.indices(1), insert=insert)
    hparams = {"eta": eta, "nu": nu, "lambda_": lambda_, "metric": metric}
    return _named(restrict(fn, sets.sizes[0]), "logdetcmi", **hparams)


class MeasureSpec(NamedTuple):
    """What a measure reads: its sets, hyperparameters, and how its gains are computed.

    Attributes:
        factory: the function above.
        sets: ``("query",)``, ``("private",)`` or ``("query", "private")``.
        hparams: the hyperparameters it takes among eta, nu, lambda_.
        takes_ground: whether it takes ``ground`` (a coverage over the pool rows).
        cheap_gains: a full gain pass is O(N) (gains kept in the state) or O(N * Q)
            (the [N, Q] query kernel): no dearer than one lazy round (a top-k over N), so
            the strategies run the naive greedy for these (the same picks, faster).
        on_the_fly: whether it reads pool-pool similarities (``chunk_size`` applies).
        takes_dense: whether it may store its pool kernel (``dense`` applies).
    """

    factory: Callable[..., SubmodularFn]
    sets: tuple[str, ...]
    hparams: tuple[str, ...] = ()
    takes_ground: bool = False
    cheap_gains: bool = False
    on_the_fly: bool = False
    takes_dense: bool = False


_FACILITY_LOCATION = {"takes_ground": True, "on_the_fly": True, "takes_dense": True}
_LOG_DETERMINANT = {"cheap_gains": True, "on_the_fly": True}

INFORMATION_MEASURES = MappingProxyType(
    {
        "fl1mi": MeasureSpec(fl1mi, ("query",), ("eta",), **_FACILITY_LOCATION),
        "fl2mi": MeasureSpec(fl2mi, ("query",), ("eta",), cheap_gains=True),
        "gcmi": MeasureSpec(gcmi, ("query",), cheap_gains=True),
        "logdetmi": MeasureSpec(logdetmi, ("query",), ("eta", "lambda_"), **_LOG_DETERMINANT),
        "com": MeasureSpec(com, ("query",), ("eta",), cheap_gains=True),
        "flcg": MeasureSpec(flcg, ("private",), ("nu",), **_FACILITY_LOCATION),
        "gccg": MeasureSpec(
            gccg,
            ("private",),
            ("nu", "lambda_"),
            takes_ground=True,
            cheap_gains=True,
            on_the_fly=True,
        ),
        "logdetcg": MeasureSpec(logdetcg, ("private",), ("nu", "lambda_"), **_LOG_DETERMINANT),
        "flcmi": MeasureSpec(flcmi, ("query", "private"), ("eta", "nu"), **_FACILITY_LOCATION),
        "logdetcmi": MeasureSpec(
            logdetcmi, ("query", "private"), ("eta", "nu", "lambda_"), **_LOG_DETERMINANT
        ),
    }
)
"""Measure name -> :class:`MeasureSpec` (SMI: ``MI_FUNCTIONS``, SCG: ``CG_FUNCTIONS``,
SCMI: ``CMI_FUNCTIONS``)."""


def information_measure(
    name: str,
    pool: Points,
    query: Points | None = None,
    private: Points | None = None,
    *,
    eta: float = 1.0,
    nu: float = 1.0,
    lambda_: float = 1.0,
    metric: str = "cosine",
    ground: jax.Array | None = None,
    chunk_size: int = 1024,
    dense: bool | None = None,
) -> SubmodularFn:
    """The measure ``name`` of :data:`INFORMATION_MEASURES`, with the arguments it reads.

    Hyperparameters and sets the measure does not read are ignored; a set it reads must
    be given (ValueError otherwise). Returns a function over the N pool elements.
    """
    _checks.one_of(name, tuple(INFORMATION_MEASURES), "function")
    spec = INFORMATION_MEASURES[name]
    sets = {"query": query, "private": private}
    args = []
    for set_name in spec.sets:
        if sets[set_name] is None:
            raise ValueError(f"{name} needs the {set_name} points")
        args.append(sets[set_name])
    values = {"eta": eta, "nu": nu, "lambda_": lambda_}
    kwargs: dict[str, Any] = {hp: values[hp] for hp in spec.hparams}
    if spec.takes_ground:
        kwargs["ground"] = ground
    if spec.on_the_fly:
        kwargs["chunk_size"] = chunk_size
    if spec.takes_dense:
        kwargs["dense"] = dense
    return spec.factory(pool, *args, metric=metric, **kwargs)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _pool_kernel(pool: Points, metric: str, chunk_size: int, dense: bool | None) -> _kernels.Kernel:
    """The square K3 kernel of the pool: stored when ``dense`` (None:
    ``kernels.stored_by_default``), else a :class:`Similarity` evaluated on the fly."""
    _checks.one_of(metric, METRICS, "metric")
    _concat(pool)
    sim = Similarity(pool, None, metric, chunk_size, shift=True)
    n = _num_points(pool)
    if dense is None:
        dense = _kernels.stored_by_default(n)
    return _kernels.dense_kernel(sim) if dense else sim


def _log_determinant_over(sets, table, metric, chunk_size, lambda_) -> tuple[SubmodularFn, Insert]:
    """log det(K_S + lambda I) over V + Q + P (the block-scaled square K3 kernel), and the
    bulk insert of its state that conditions on a whole set at once."""
    kernel = _square_kernel(sets.points, sets.blocks, table, metric, chunk_size)
    return log_determinant(kernel, lambda_=lambda_), log_determinant_insert(kernel, lambda_)


def _square_kernel(points, blocks, table, metric, chunk_size) -> Similarity:
    """The on-the-fly square K3 kernel over V + Q + P with a symmetric block table."""
    _checks.one_of(metric, METRICS, "metric")
    return Similarity(
        points, None, metric, chunk_size, shift=True, row_blocks=blocks, block_scales=table
    )


def _query_kernel(pool: Points, other: Points, metric: str, name: str = "query") -> jax.Array:
    """float32 [N, Q]: the dense K3 kernel (K + 1) / 2, clipped at 0 against round-off."""
    _checks.one_of(metric, METRICS, "metric")
    _concat(pool, (name, other))  # the same representation and width, at least one point each
    return jnp.maximum(0.5 * (similarity_kernel(pool, other, metric=metric) + 1.0), 0.0)


class _Combined(NamedTuple):
    """The pool, query and private points one after the other (V first)."""

    points: Points
    blocks: jax.Array  # int32 [N + Q + P]: 0 for the pool, then 1, 2 for the other sets
    starts: tuple[int, ...]  # the first position of every set (static)
    sizes: tuple[int, ...]  # the size of every set (static)

    def indices(self, block: int) -> jax.Array:
        """int32: the positions of one set in the combined ground set."""
        return jnp.arange(
            self.starts[block], self.starts[block] + self.sizes[block], dtype=jnp.int32
        )


def _concat(pool: Points, *others: tuple[str, Points]) -> _Combined:
    """Check that every set has the pool's representation and width; concatenate them."""
    sets = [("pool", pool), *others]
    reference = _leaves(pool)
    for name, points in sets:
        if isinstance(points, OuterProduct) != isinstance(pool, OuterProduct):
            raise TypeError(
                f"{name} must have the pool's representation (an array or an OuterProduct)"
            )
        for leaf, like in zip(_leaves(points), reference, strict=True):
            if jnp.ndim(leaf) != 2 or jnp.shape(leaf)[1] != jnp.shape(like)[1]:
                raise ValueError(
                    f"{name} must be [n, {jnp.shape(like)[1]}] like the pool, got shape "
                    f"{jnp.shape(leaf)}"
                )
        if _num_points(points) < 1:
            raise ValueError(f"{name} must hold at least one point")
    sizes = tuple(_num_points(points) for _, points in sets)
    starts = tuple(int(s) for s in np.cumsum((0, *sizes[:-1])))
    blocks = jnp.concatenate([jnp.full((size,), i, jnp.int32) for i, size in enumerate(sizes)])
    parts = [_leaves(points) for _, points in sets]
    leaves = tuple(
        jnp.concatenate([jnp.asarray(p[j], jnp.float32) for p in parts])
        for j in range(len(reference))
    )
    points = OuterProduct(*leaves) if isinstance(pool, OuterProduct) else leaves[0]
    return _Combined(points, blocks, starts, sizes)


def _leaves(points: Points) -> tuple[jax.Array, ...]:
    return tuple(points) if isinstance(points, OuterProduct) else (points,)


def _num_points(points: Points) -> int:
    return int(jnp.shape(_leaves(points)[0])[0])


def _named(fn: SubmodularFn, name: str, **hparams: Any) -> SubmodularFn:
    return fn._replace(name=name, hparams=MappingProxyType(hparams))

"""SIMILAR (Kothawade et al. 2021): submodular information measures over the pool.

``smi`` picks pool points like a labeled query set (submodular mutual information),
``scg`` points unlike a labeled private set (conditional gain), ``scmi`` both
(conditional mutual information), as DISTIL's SMI, SCG and SCMI. The query and private
sets travel as extra inputs (``Strategy.inputs``), traced arguments of ``select``:

    strategy = jaxal.strategies.smi(model, budget=100, function="fl2mi")
    round_fn = jax.jit(jaxal.make_round(strategy))
    pool, idx = round_fn(params, pool, key, query_x=query_x, query_y=query_y)

Representations as DISTIL: the unlabeled pool's last-layer gradient embeddings at the
predicted labels, the query and private sets' at their true labels (``gradient``: bias,
linear or both), or the penultimate embeddings of every set. Kernels are DISTIL's K3
(cosine or euclidean, then (K + 1) / 2), the measures
``jaxal.selectors.INFORMATION_MEASURES``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal.model import GRADIENT_EMBEDDINGS, Model, forward, gradient_embedding
from jaxal.pool import Pool
from jaxal.selectors import CG_FUNCTIONS, CMI_FUNCTIONS, INFORMATION_MEASURES, MI_FUNCTIONS
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    finite_points,
    make_strategy,
    no_score,
)

REPRESENTATIONS = ("gradient", "embedding")

_COMMON_DOC = """
    Only unlabeled pool points are candidates and coverage rows; query and private points
    are never picked, and the returned indices are pool indices in pick order (-1 for
    slots no unlabeled point can fill, under jit).

    Cost, with N pool points, Q query / P private points, k = budget and F the cost of
    one similarity (about C + D for gradient embeddings of C classes over D features,
    which stay factored): one forward pass over the pool and each set; the [N, Q] / [N, P]
    kernels, O(N (Q + P) F) work and memory; then the measure (``jaxal.selectors``):
    fl2mi, gcmi and com need nothing more; the facility-location measures (fl1mi, flcg,
    flcmi) store the N x N pool kernel up to N = 11,585 (512 MB) and compute it on the
    fly beyond (memory O(N)),
    O(N^2 F) once plus the lazy greedy's column reads; gccg one on-the-fly pass
    O(N^2 F) with O(N) memory; the log-determinant measures one kernel column per pick,
    O(N F), and two (k + Q + P) x N factors, O(k (k + Q + P) N) work.

    Optimizers: ``"lazy"`` (DISTIL's LazyGreedy, the default) gives the exact greedy's
    picks for the submodular measures; for measures whose gains come from an O(N) state
    (gcmi, gccg and the log-determinant ones, of which logdetmi and logdetcmi are not
    submodular) or from the [N, Q] query kernel (fl2mi, com) a full gain pass costs no
    more than a lazy round, and the exact naive greedy runs instead (the same picks).
    Ties go to the lowest index (submodlib's to the highest).
"""


def smi(
    model: Model,
    budget: int,
    *,
    function: str = "fl2mi",
    representation: str = "gradient",
    gradient: str = "bias_linear",
    metric: str = "cosine",
    optimizer: str = "lazy",
    epsilon: float = 0.1,
    eta: float = 1.0,
    lambda_: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """Submodular mutual information with a labeled query set (DISTIL's SMI).

    ``select(params, pool, key, query_x=..., query_y=...)`` greedily maximizes
    I_f(A; Q) over the unlabeled pool: points similar to the query set (e.g. examples of
    a rare class), covering it diversely.

    Args:
        model: the :class:`jaxal.Model`.
        budget: points per selection.
        function: ``"fl2mi"`` (the default: FLQMI, the SIMILAR paper's strongest
            query-focused measure, and the cheapest besides gcmi: an [N, Q] kernel only),
            ``"fl1mi"``, ``"gcmi"`` (modular: the top-k of the summed query similarity),
            ``"logdetmi"`` or ``"com"``.
        representation: ``"gradient"`` (last-layer gradients: the pool at its predicted
            labels, the query set at ``query_y``) or ``"embedding"`` (penultimate
            features; the labels are then unused).
        gradient: ``"bias_linear"`` (DISTIL's default gradType), ``"bias"`` or
            ``"linear"``.
        metric: ``"cosine"`` or ``"euclidean"`` (before K <- (K + 1) / 2).
        optimizer: ``"lazy"``, ``"naive"`` or ``"stochastic"``.
        epsilon: the stochastic optimizer's epsilon, in (0, 1).
        eta: the query magnification (fl1mi, logdetmi: the query block's scale; fl2mi,
            com: the modular term's weight; unused by gcmi), >= 0.
        lambda_: logdetmi's diagonal regularizer, > 0.
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` takes ``query_x`` [Q, ...] and
        ``query_y`` int [Q] and returns int32 [budget] in pick order; ``score`` is None.
    """
    return _information_strategy(
        "smi",
        MI_FUNCTIONS,
        model,
        budget,
        function=function,
        representation=representation,
        gradient=gradient,
        metric=metric,
        optimizer=optimizer,
        epsilon=epsilon,
        measure_hparams={"eta": eta, "lambda_": lambda_},
        batch_size=batch_size,
    )


def scg(
    model: Model,
    budget: int,
    *,
    function: str = "flcg",
    representation: str = "gradient",
    gradient: str = "bias_linear",
    metric: str = "cosine",
    optimizer: str = "lazy",
    epsilon: float = 0.1,
    nu: float = 1.0,
    lambda_: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """Submodular conditional gain away from a labeled private set (DISTIL's SCG).

    ``select(params, pool, key, private_x=..., private_y=...)`` greedily maximizes
    f(A | P) over the unlabeled pool: diverse points unlike the private set (e.g.
    out-of-distribution or already well-covered examples).

    Args:
        model, budget, representation, gradient, metric, optimizer, epsilon, batch_size:
            as :func:`smi`.
        function: ``"flcg"`` (the default: facility location, monotone submodular,
            cheap with lazy greedy), ``"gccg"`` or ``"logdetcg"``.
        nu: the privacy hardness (the private block's scale), >= 0.
        lambda_: gccg's redundancy weight (>= 0) or logdetcg's regularizer (> 0).

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` takes ``private_x`` [P, ...]
        and ``private_y`` int [P] and returns int32 [budget] in pick order; ``score`` is
        None.
    """
    return _information_strategy(
        "scg",
        CG_FUNCTIONS,
        model,
        budget,
        function=function,
        representation=representation,
        gradient=gradient,
        metric=metric,
        optimizer=optimizer,
        epsilon=epsilon,
        measure_hparams={"nu": nu, "lambda_": lambda_},
        batch_size=batch_size,
    )


def scmi(
    model: Model,
    budget: int,
    *,
    function: str = "flcmi",
    representation: str = "gradient",
    gradient: str = "bias_linear",
    metric: str = "cosine",
    optimizer: str = "lazy",
    epsilon: float = 0.1,
    eta: float = 1.0,
    nu: float = 1.0,
    lambda_: float = 1.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """Submodular conditional mutual information (DISTIL's SCMI).

    ``select(params, pool, key, query_x=..., query_y=..., private_x=..., private_y=...)``
    greedily maximizes I_f(A; Q | P): points like the query set and unlike the private
    set.

    Args:
        model, budget, representation, gradient, metric, optimizer, epsilon, batch_size:
            as :func:`smi`.
        function: ``"flcmi"`` (the default: facility location, submodular, lazy greedy
            applies) or ``"logdetcmi"``.
        eta: the query block's scale, >= 0.
        nu: the private block's scale, >= 0.
        lambda_: logdetcmi's diagonal regularizer, > 0.

    Returns:
        A :class:`jaxal.strategies.Strategy` whose ``select`` takes ``query_x``, ``query_y``,
        ``private_x`` and ``private_y`` and returns int32 [budget] in pick order;
        ``score`` is None.
    """
    return _information_strategy(
        "scmi",
        CMI_FUNCTIONS,
        model,
        budget,
        function=function,
        representation=representation,
        gradient=gradient,
        metric=metric,
        optimizer=optimizer,
        epsilon=epsilon,
        measure_hparams={"eta": eta, "nu": nu, "lambda_": lambda_},
        batch_size=batch_size,
    )


for _factory in (smi, scg, scmi):
    _factory.__doc__ = (_factory.__doc__ or "") + _COMMON_DOC


def _information_strategy(
    name: str,
    functions: tuple[str, ...],
    model: Model,
    budget: int,
    *,
    function: str,
    representation: str,
    gradient: str,
    metric: str,
    optimizer: str,
    epsilon: float,
    measure_hparams: dict[str, float],
    batch_size: int,
) -> Strategy:
    budget, batch_size = check_common(model, budget, batch_size)
    _checks.one_of(function, functions, "function")
    _checks.one_of(representation, REPRESENTATIONS, "representation")
    _checks.one_of(gradient, GRADIENT_EMBEDDINGS, "gradient")
    _checks.one_of(metric, selectors.METRICS, "metric")
    _checks.one_of(optimizer, selectors.OPTIMIZERS, "optimizer")
    epsilon = _checks.positive_float(epsilon, "epsilon")
    if not epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    measure_hparams = {k: _checks.nonnegative_float(v, k) for k, v in measure_hparams.items()}
    spec = INFORMATION_MEASURES[function]
    if "lambda_" in spec.hparams and function != "gccg" and measure_hparams["lambda_"] <= 0:
        raise ValueError(f"lambda_ must be > 0 for {function}, got {measure_hparams['lambda_']}")
    sets = spec.sets
    input_names = tuple(f"{set_name}_{part}" for set_name in sets for part in ("x", "y"))
    run_optimizer = "naive" if optimizer == "lazy" and spec.cheap_gains else optimizer

    def select(params: Any, pool: Pool, key: jax.Array, **inputs: jax.Array) -> jax.Array:
        _check_input_names(name, inputs, input_names)
        candidates = candidates_for(pool, budget)
        logits, embeddings = forward(model, params, pool.x, batch_size)
        _checks.finite(logits, "logits")
        _checks.finite(embeddings, "embeddings")
        candidates, (logits, embeddings) = finite_points(candidates, logits, embeddings)
        points: dict[str, Any] = {"pool": _points(logits, embeddings, None)}
        for set_name in sets:
            x, y = _labeled_set(pool, inputs, set_name, logits.shape[-1])
            set_logits, set_embeddings = forward(model, params, x, batch_size)
            _checks.finite(set_logits, f"{set_name} logits")
            _checks.finite(set_embeddings, f"{set_name} embeddings")
            points[set_name] = _points(set_logits, set_embeddings, y)
        fn = selectors.information_measure(
            function,
            points["pool"],
            points.get("query"),
            points.get("private"),
            eta=measure_hparams.get("eta", 1.0),
            nu=measure_hparams.get("nu", 1.0),
            lambda_=measure_hparams["lambda_"],
            metric=metric,
            ground=candidates,
        )
        return selectors.submodular_greedy(
            fn, candidates, budget, key, optimizer=run_optimizer, epsilon=epsilon
        ).indices

    def _points(logits, embeddings, labels):
        if representation == "embedding":
            return embeddings
        return gradient_embedding(logits, embeddings, gradient, labels)

    hparams = {
        "function": function,
        "representation": representation,
        "gradient": gradient,
        "metric": metric,
        "optimizer": optimizer,
        "epsilon": epsilon,
        **measure_hparams,
        "batch_size": batch_size,
    }
    return make_strategy(name, budget, hparams, select, no_score, input_names)


def _check_input_names(name: str, inputs: dict[str, Any], expected: tuple[str, ...]) -> None:
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise TypeError(f"{name} got unexpected inputs {unknown}; it takes {', '.join(expected)}")
    missing = [input_name for input_name in expected if inputs.get(input_name) is None]
    if missing:
        raise TypeError(
            f"{name} needs the inputs {', '.join(expected)}; missing {', '.join(missing)} "
            f"(pass them to select, to the round or as jaxal.select(..., inputs=...))"
        )


def _labeled_set(
    pool: Pool, inputs: dict[str, Any], set_name: str, num_classes: int
) -> tuple[jax.Array, jax.Array]:
    """The set's inputs and labels, checked against the pool's input shape."""
    x, y = jnp.asarray(inputs[f"{set_name}_x"]), jnp.asarray(inputs[f"{set_name}_y"])
    if x.ndim != pool.x.ndim or x.shape[1:] != pool.x.shape[1:] or x.shape[0] < 1:
        raise ValueError(
            f"{set_name}_x must be [n >= 1, {', '.join(map(str, pool.x.shape[1:]))}] like the "
            f"pool's inputs, got shape {x.shape}"
        )
    if y.shape != x.shape[:1]:
        raise ValueError(f"{set_name}_y must have shape ({x.shape[0]},), got {y.shape}")
    _checks.labels_in_range(y, num_classes, f"{set_name}_y")
    return x, y

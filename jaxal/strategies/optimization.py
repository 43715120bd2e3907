"""Gradient-optimization strategies: GLISTER-active and GradMatch-active.

Both work on last-layer gradient embeddings at the predicted labels, in factored form
(``jaxal.model.gradient_embedding``: a (x) [1, h], never the [N, C * (D + 1)] matrix), and
both accept an optional validation set as extra traced inputs (``Strategy.inputs``):
``select(params, pool, key, validation_x=..., validation_y=...)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks, selectors
from jaxal._points import finite_rows, points_sum, zero_rows
from jaxal.model import GRADIENT_EMBEDDINGS, Model, forward, gradient_embedding
from jaxal.pool import Pool
from jaxal.strategies._base import (
    DEFAULT_BATCH_SIZE,
    Strategy,
    candidates_for,
    check_common,
    make_strategy,
    no_score,
    renamed,
)

VALIDATION_INPUTS = ("validation_x", "validation_y")
TARGET_SCALES = ("budget", "pool")


def glister(
    model: Model,
    budget: int,
    *,
    lr: float = 0.01,
    regularizer: str = "none",
    lambda_: float | None = None,
    gradient: str = "bias_linear",
    batch_size: int = DEFAULT_BATCH_SIZE,
    lam: float | None = None,
) -> Strategy:
    """GLISTER-active (Killamsetty et al. 2021), as DISTIL's ``GLISTER``.

    One simulated SGD step on the last layer with the summed gradients of the labeled
    points (at their labels), then ``budget`` greedy picks, each the unlabeled point whose
    gradient (at its predicted label) most reduces the validation loss under a one-step
    Taylor approximation, followed by a simulated step on that point's gradient
    (``jaxal.selectors.glister`` has the algorithm and the costs: O(budget *
    (N + V) * C * (D + 1)) without a regularizer, never an [N, C * D] matrix).

    The validation set (``select``'s keyword inputs ``validation_x`` [V, ...] and
    ``validation_y`` int [V], given together or not at all): when absent, as DISTIL, it is
    the whole pool: unlabeled points at their predicted labels, labeled points at their
    labels. A labeled point whose label is still unknown (y == -1, e.g. right after a
    round) uses its predicted label, both there and in the labeled-gradient sum. On a
    large pool give a held-out validation set of V << N points: every greedy step
    computes the validation gradient over all V points, O(V C (D + 1)), which with the
    default is a pass over the whole pool.

    Differences from DISTIL: the validation gradient is the mean over the V validation
    points at every step (DISTIL divides the first one by the number of unlabeled points
    and later ones by V, which shifts the balance against ``lambda_``); ``"random"`` returns
    exactly ``budget`` points (DISTIL: budget + 1 when (1 - lambda_) * budget is
    fractional),
    its random picks drawn with ``key``; the distances of the regularizers are computed
    from the factors (no N x N matrix; see the selector for the cost of
    ``"facility_location"``, whose every step is O(N^2 * (C + D))).

    Args:
        model: the :class:`jaxal.Model`.
        budget: points per selection.
        lr: the learning rate of the simulated steps (DISTIL requires ``args['lr']``; the
            default 0.01 is ``jaxal.train``'s learning rate), > 0.
        regularizer: ``"none"``, ``"random"`` (DISTIL's 'Rand'), ``"facility_location"``
            ('FacLoc') or ``"diversity"`` ('Diversity').
        lambda_: the regularizer's weight (DISTIL's ``lam``), required with a regularizer
            and only there: in (0, 1) for ``"random"`` (the fraction of random picks),
            >= 0 otherwise.
        gradient: the last-layer gradient: ``"bias_linear"`` (DISTIL), ``"linear"`` or
            ``"bias"`` (the simulated step then moves those parameters only).
        batch_size: points per forward pass.
        lam: the deprecated name of ``lambda_``.

    Returns:
        A :class:`jaxal.strategies.Strategy` named ``"glister"`` whose ``select(params, pool,
        key, **inputs)`` (inputs: ``validation_x`` [V, ...], ``validation_y`` int [V],
        optional) returns int32 [budget] in pick order; ``score`` is None.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    lr = _checks.positive_float(lr, "lr")
    _checks.one_of(regularizer, selectors.GLISTER_REGULARIZERS, "regularizer")
    _checks.one_of(gradient, GRADIENT_EMBEDDINGS, "gradient")
    lambda_ = renamed("glister", "lambda_", "lam", lambda_, lam, None)
    if regularizer == "none":
        if lambda_ is not None:
            raise ValueError("lambda_ applies only with a regularizer; regularizer='none'")
        weight = 0.0
    else:
        if lambda_ is None:
            raise ValueError(f"lambda_ is required with regularizer={regularizer!r}")
        weight = _checks.nonnegative_float(lambda_, "lambda_")
        selectors.glister_greedy_count(
            budget, regularizer, weight
        )  # checks 0 < lambda_ < 1 for "random"

    def select(params, pool, key, validation_x=None, validation_y=None):
        candidates = candidates_for(pool, budget)
        validation = _validation(model, params, pool, validation_x, validation_y, batch_size)
        logits, hidden, finite = _finite_forward(model, params, pool.x, batch_size)
        candidates = candidates & finite
        known = pool.labeled & (pool.y >= 0)
        _checks.labels_in_range(
            jnp.where(known, pool.y, 0), logits.shape[1], "pool.y (the labeled points' labels)"
        )
        labels = jnp.where(known, pool.y, jnp.argmax(logits, axis=1)).astype(jnp.int32)
        pool_gradients = zero_rows(gradient_embedding(logits, hidden, gradient), finite)
        at_labels = zero_rows(_at_labels(logits, hidden, gradient, labels), finite)
        start = points_sum(at_labels, pool.labeled.astype(at_labels.left.dtype))
        if validation is None:
            val_logits, val_right, val_labels = logits, at_labels.right, labels
        else:
            val_logits, val_hidden, val_labels = validation
            val_right = gradient_embedding(val_logits, val_hidden, gradient).right
        return selectors.glister(
            pool_gradients,
            candidates,
            val_logits,
            val_right,
            val_labels,
            budget,
            key,
            lr=lr,
            start_gradient=start,
            regularizer=regularizer,
            lam=weight,
        ).indices

    hparams = {
        "lr": lr,
        "regularizer": regularizer,
        "lambda_": lambda_,
        "gradient": gradient,
        "batch_size": batch_size,
    }
    return make_strategy("glister", budget, hparams, select, no_score, VALIDATION_INPUTS)


def gradmatch(
    model: Model,
    budget: int,
    *,
    gradient: str = "bias_linear",
    weighted: bool = False,
    omp_reg: float = 0.0,
    omp_tol: float = 1e-4,
    target_scale: str = "budget",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Strategy:
    """GradMatch-active (Killamsetty et al. 2021), as DISTIL's ``GradMatchActive``.

    The points are the unlabeled points' last-layer gradients at their predicted labels;
    the target is the summed gradient b of the validation set at its labels (n_b = V), or
    without one the summed gradient of the unlabeled points (n_b = their number).

    * ``weighted=False`` (DISTIL's default): fixed-weight greedy
      (``jaxal.selectors.gradmatch``) of the subset *sum* against the target
      (k / n_b) * b = k * mean: the objective DISTIL documents, ||sum_{i in X} g_i -
      (k / N) grad L||. DISTIL's code matches (N / n_b) * b instead (N unlabeled points),
      i.e. the full sum when there is no validation set, which with k << N rewards
      alignment with the mean gradient rather than matching it; ``target_scale="pool"``
      reproduces it for cross-checks. O(budget * N * C * (D + 1)).
    * ``weighted=True``: orthogonal matching pursuit with non-negative weights against b
      (``jaxal.selectors.gradmatch_omp``, which also returns the weights; ``select``
      returns the indices). Picks with weight 0 are replaced by uniform draws with ``key``.
      It runs on any device (DISTIL's needs CUDA).

    Indices come in pick order (DISTIL sorts the fixed-weight picks ascending).

    Args:
        model: the :class:`jaxal.Model`.
        budget: points per selection.
        gradient: ``"bias_linear"`` (DISTIL's default), ``"linear"`` or ``"bias"``.
        weighted: OMP with weights instead of the fixed-weight greedy.
        omp_reg: the ridge term of the OMP weight system (DISTIL's ``omp_reg``), >= 0.
        omp_tol: OMP stops once the residual is below this fraction of ||b|| (DISTIL 1e-4).
        target_scale: fixed-weight target (k / n_b) * b (``"budget"``) or DISTIL's
            (N / n_b) * b (``"pool"``).
        batch_size: points per forward pass.

    Returns:
        A :class:`jaxal.strategies.Strategy` named ``"gradmatch"`` whose ``select(params,
        pool, key, **inputs)`` (inputs: ``validation_x`` [V, ...], ``validation_y`` int
        [V], optional) returns int32 [budget] in pick order; ``score`` is None.
    """
    budget, batch_size = check_common(model, budget, batch_size)
    _checks.one_of(gradient, GRADIENT_EMBEDDINGS, "gradient")
    if not isinstance(weighted, bool):
        raise TypeError(f"weighted must be a bool, got {type(weighted).__name__}")
    omp_reg = _checks.nonnegative_float(omp_reg, "omp_reg")
    omp_tol = _checks.nonnegative_float(omp_tol, "omp_tol")
    _checks.one_of(target_scale, TARGET_SCALES, "target_scale")

    def select(params, pool, key, validation_x=None, validation_y=None):
        candidates = candidates_for(pool, budget)
        validation = _validation(model, params, pool, validation_x, validation_y, batch_size)
        logits, hidden, finite = _finite_forward(model, params, pool.x, batch_size)
        candidates = candidates & finite
        points = zero_rows(gradient_embedding(logits, hidden, gradient), finite)
        unlabeled = jnp.sum(candidates).astype(points.left.dtype)
        if validation is None:
            target = points_sum(points, candidates.astype(points.left.dtype))
            count = unlabeled
        else:
            val_logits, val_hidden, val_labels = validation
            at_labels = _at_labels(val_logits, val_hidden, gradient, val_labels)
            target = points_sum(at_labels, jnp.ones(val_labels.shape, at_labels.left.dtype))
            count = jnp.asarray(val_labels.shape[0], target.dtype)
        if weighted:
            return selectors.gradmatch_omp(
                points, candidates, target, budget, key, reg=omp_reg, tol=omp_tol
            )[0]
        scale = (budget if target_scale == "budget" else unlabeled) / jnp.maximum(count, 1)
        return selectors.gradmatch(points, candidates, scale * target, budget)

    hparams = {
        "gradient": gradient,
        "weighted": weighted,
        "omp_reg": omp_reg,
        "omp_tol": omp_tol,
        "target_scale": target_scale,
        "batch_size": batch_size,
    }
    return make_strategy("gradmatch", budget, hparams, select, no_score, VALIDATION_INPUTS)


def _forward(model: Model, params: Any, x: jax.Array, batch_size: int):
    logits, hidden = forward(model, params, x, batch_size)
    _checks.finite(logits, "logits")
    _checks.finite(hidden, "embeddings")
    return logits, hidden


def _finite_forward(model: Model, params: Any, x: jax.Array, batch_size: int):
    """(logits [N, C], embeddings [N, D], finite bool [N]): the forward pass with the rows
    of non-finite points zeroed (outside ``jit`` those raise instead); their gradients are
    zeroed too, so they neither contend nor move a sum."""
    logits, hidden = _forward(model, params, x, batch_size)
    finite = finite_rows(logits) & finite_rows(hidden)
    return zero_rows(logits, finite), zero_rows(hidden, finite), finite


def _at_labels(
    logits: jax.Array, hidden: jax.Array, kind: str, labels: jax.Array
) -> selectors.OuterProduct:
    """The gradient embedding at given (already checked) labels.

    ``gradient_embedding(..., labels)`` would check the labels with jnp ops, which fail on
    a concrete array closed over by a jitted function (a bound validation set).
    """
    predicted = gradient_embedding(logits, hidden, kind)
    probs = jax.nn.softmax(logits.astype(predicted.left.dtype), axis=-1)
    target = jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    return selectors.OuterProduct(probs - target, predicted.right)


def _validation(
    model: Model,
    params: Any,
    pool: Pool,
    validation_x: Any,
    validation_y: Any,
    batch_size: int,
) -> tuple[jax.Array, jax.Array, jax.Array] | None:
    """(logits [V, C], embeddings [V, D], labels int32 [V]) of the validation set, or None
    when neither input is given; ValueError / TypeError naming the bad input."""
    checked = _check_validation(pool, validation_x, validation_y)
    if checked is None:
        return None
    x, y = checked
    classes = jax.eval_shape(lambda: model.apply(params, x[:1], None))[0].shape[-1]
    _checks.labels_in_range(y, classes, "validation_y")
    logits, hidden = _forward(model, params, x, batch_size)
    return logits, hidden, y.astype(jnp.int32)


def _check_validation(
    pool: Pool, validation_x: Any, validation_y: Any
) -> tuple[jax.Array, jax.Array] | None:
    """The validation arrays after the checks that need no forward pass, or None."""
    if validation_x is None and validation_y is None:
        return None
    if validation_x is None or validation_y is None:
        raise ValueError("validation_x and validation_y must be given together (or neither)")
    x = jnp.asarray(validation_x)
    y = jnp.asarray(validation_y)
    if x.ndim < 1 or x.shape[1:] != pool.x.shape[1:]:
        raise ValueError(
            f"validation_x must have shape [V, {', '.join(map(str, pool.x.shape[1:]))}] "
            f"like the pool's inputs, got {x.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError("validation_x must hold at least one point")
    if y.shape != x.shape[:1]:
        raise ValueError(f"validation_y must have shape ({x.shape[0]},), got {y.shape}")
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(f"validation_y must hold integer labels, got dtype {y.dtype}")
    _checks.finite(x, "validation_x")
    return x, y

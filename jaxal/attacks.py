"""Adversarial attacks for active learning: DeepFool and iterated sign-gradient steps (BIM).

Each attack is written for ONE example ``x`` of any shape (an image [H, W, C], a feature
vector [D], a sequence, ...) and returns ``(perturbation_sq_norm, flipped, iterations)``:
the squared Euclidean norm of the perturbation found, whether it changed the model's
predicted class, and the number of steps taken. The loop is a bounded ``lax.while_loop``,
and gradients are taken with respect to the input with ``jax.grad`` / ``jax.jacrev`` on the
deterministic (eval) forward pass ``model.apply(params, x[None], None)``.

:func:`perturbation_scores` runs an attack over a pool, ``jax.vmap`` over the points of a
chunk of ``batch_size`` points and ``lax.map`` over chunks.

Letters: N points, B points per chunk (``batch_size``), C classes, K classes DeepFool
considers (``num_classes``, default C).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxal import _checks
from jaxal._chunks import map_chunks
from jaxal.model import Model

# attack(model, params, x [...], active=...) -> (sq_norm [], flipped bool [], iterations int32 [])
AttackFn = Callable[..., tuple[jax.Array, jax.Array, jax.Array]]

#: DeepFool's minimum step length: each step goes ``1e-4`` past the linearized boundary
#: (Moosavi-Dezfooli et al.'s reference code and DISTIL).
DEEPFOOL_MIN_STEP = 1e-4


def deepfool(
    model: Model,
    params: Any,
    x: jax.Array,
    *,
    max_iter: int = 50,
    overshoot: float = 0.02,
    num_classes: int | None = None,
    active: jax.Array | bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """DeepFool (Moosavi-Dezfooli et al., CVPR 2016) on one example, as in DFAL / DISTIL.

    With f = the logits, ``label`` = argmax f(x) and I = the classes sorted by f(x),
    descending (``I[0] = label``), starting from r_tot = 0 and x' = x, while
    argmax f(x') = label and fewer than ``max_iter`` steps were taken:

    1. w_k = grad f_{I[k]}(x') - grad f_{I[0]}(x') and f_k = f_{I[k]}(x') - f_{I[0]}(x')
       for k = 1 .. K-1;
    2. pick the k minimising |f_k| / ||w_k|| (the first in I-order on ties);
    3. r_tot += (|f_k| / ||w_k|| + 1e-4) * w_k / ||w_k||, and x' = x + (1 + overshoot) r_tot.

    The score is ``||(1 + overshoot) r_tot||^2``. Unlike DISTIL, any input rank works, and
    classes with w_k = 0 (the linearization cannot reach them) are skipped instead of
    producing inf / NaN; if every w_k is 0 the point cannot move, and the loop stops there
    (not flipped; that null step is not counted).

    Per-class input gradients come from one ``jax.jacrev`` of the K selected logits: memory
    O(K * size of x) per example.

    Args:
        model: the :class:`jaxal.Model`; its eval pass is attacked.
        params: the model's parameters.
        x: one example, any shape (no batch axis). Integer and low-precision floating inputs
            are attacked in float32.
        max_iter: the cap on steps, a Python int >= 1 (DISTIL: 50).
        overshoot: a float >= 0 (DISTIL: 0.02, fixed).
        num_classes: K, consider only the K classes with the highest initial logits (as in
            the original DeepFool code, which defaults to 10); None for all C classes
            (DISTIL). Values above C mean C.
        active: a bool scalar (may be traced); False skips the attack and returns
            ``(0, False, 0)`` after one forward pass. Under ``vmap`` it lets masked points
            skip the loop.

    Returns:
        ``(sq_norm float [], flipped bool [], iterations int32 [])``; ``sq_norm`` is NaN
        when the clean logits are not finite.

    Raises:
        ValueError: bad hyperparameters, or a model with fewer than two classes.
    """
    max_iter = _checks.positive_int(max_iter, "max_iter")
    overshoot = _checks.nonnegative_float(overshoot, "overshoot")
    num_classes = check_num_classes(num_classes)
    x = _as_float(x)
    logits_of = _logits_fn(model, params)
    logits0 = logits_of(x)
    n_classes = _check_classes(logits0)
    k = n_classes if num_classes is None else min(num_classes, n_classes)
    order = jnp.argsort(-logits0, stable=True)[:k]  # I: ties to the lower class index
    label = order[0]
    scale = 1.0 + overshoot

    def differences(point):  # f_{I[k]} - f_{I[0]}, k = 1 .. K-1
        selected = logits_of(point)[order]
        return selected[1:] - selected[0]

    def cond(state):
        _, steps, logits, stuck = state
        return active & (jnp.argmax(logits) == label) & (steps < max_iter) & ~stuck

    def body(state):
        r_tot, steps, logits, _ = state
        w = jax.jacrev(differences)(x + scale * r_tot)  # [K-1, *x.shape]
        f = logits[order[1:]] - logits[label]
        w_norm = jnp.sqrt(jnp.sum(jnp.square(w.reshape(k - 1, -1)), axis=1))
        reachable = w_norm > 0
        safe_norm = jnp.where(reachable, w_norm, 1.0)
        pert = jnp.where(reachable, jnp.abs(f) / safe_norm, jnp.inf)
        best = jnp.argmin(pert)  # the first minimum: DISTIL's strict `<` in I-order
        stuck = ~reachable[best]
        step = (pert[best] + DEEPFOOL_MIN_STEP) / safe_norm[best] * w[best]
        r_tot = r_tot + jnp.where(stuck, 0.0, step).astype(r_tot.dtype)
        logits = jnp.where(stuck, logits, logits_of(x + scale * r_tot))
        return r_tot, steps + jnp.where(stuck, 0, 1), logits, stuck

    init = (jnp.zeros_like(x), jnp.int32(0), logits0, jnp.bool_(False))
    r_tot, steps, logits, _ = jax.lax.while_loop(cond, body, init)
    flipped = active & (jnp.argmax(logits) != label)
    return _unless_non_finite(_sq_norm(scale * r_tot), logits0), flipped, steps


def bim(
    model: Model,
    params: Any,
    x: jax.Array,
    *,
    eps: float = 0.05,
    max_iter: int = 1000,
    active: jax.Array | bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Iterated sign-gradient steps (BIM: Kurakin et al. 2016; as DISTIL, after Tramèr et al.
    2017 and DFAL) on one example.

    With y0 = argmax f(x) and eta = 0: while argmax f(x + eta) = y0 and fewer than
    ``max_iter`` steps were taken, eta += eps * sign(grad_x CE(f(x + eta), y0)). The score
    is ``||eta||^2``. As in DISTIL there is no projection onto an eps-ball and no clamp to
    an input range (unbounded iterated FGSM).

    The step direction is computed from L = logsumexp_{c != y0}(f_c - f_y0), since
    CE = softplus(L) and softplus is increasing: sign(grad CE) = sign(grad L) exactly,
    but grad L keeps its precision when the prediction is confident, where CE's gradient
    (1 - p_y0 ...) rounds to 0 in float32 and the attack would stall. A point whose
    gradient is exactly 0 (e.g. every ReLU dead) cannot move: the loop stops there (not
    flipped; that null step is not counted) instead of idling up to the cap.

    Args:
        model: the :class:`jaxal.Model`; its eval pass is attacked.
        params: the model's parameters.
        x: one example, any shape (no batch axis). Integer and low-precision floating inputs
            are attacked in float32.
        eps: the step size, a float > 0 (DISTIL: 0.05).
        max_iter: the cap on steps, a Python int >= 1 (DISTIL: 1000).
        active: a bool scalar (may be traced); False skips the attack and returns
            ``(0, False, 0)`` after one forward pass.

    Returns:
        ``(sq_norm float [], flipped bool [], iterations int32 [])``; ``sq_norm`` is NaN
        when the clean logits are not finite.

    Raises:
        ValueError: bad hyperparameters, or a model with fewer than two classes.
    """
    eps = _checks.positive_float(eps, "eps")
    max_iter = _checks.positive_int(max_iter, "max_iter")
    x = _as_float(x)
    logits_of = _logits_fn(model, params)
    logits0 = logits_of(x)
    n_classes = _check_classes(logits0)
    label = jnp.argmax(logits0)
    others = jnp.arange(n_classes) != label

    def direction_loss(point):
        logits = logits_of(point)
        margins = jnp.where(others, logits - logits[label], -jnp.inf)
        return jax.nn.logsumexp(margins), logits

    # Check-then-step in one pass: the gradient's forward pass also gives the prediction,
    # so each step costs one forward and one backward pass (plus one at the end).
    def cond(state):
        _, _, done, _ = state
        return ~done

    def body(state):
        eta, steps, _, _ = state
        grad, logits = jax.grad(direction_loss, has_aux=True)(x + eta)
        flipped = jnp.argmax(logits) != label
        moving = active & ~flipped & (steps < max_iter)
        step = eps * jnp.sign(grad)
        moves = jnp.any(step != 0)
        eta = jnp.where(moving, eta + step.astype(eta.dtype), eta)
        steps = steps + (moving & moves).astype(jnp.int32)
        return eta, steps, ~(moving & moves), active & flipped

    init = (jnp.zeros_like(x), jnp.int32(0), jnp.bool_(False), jnp.bool_(False))
    eta, steps, _, flipped = jax.lax.while_loop(cond, body, init)
    return _unless_non_finite(_sq_norm(eta), logits0), flipped, steps


def _unless_non_finite(sq_norm: jax.Array, logits: jax.Array) -> jax.Array:
    """``sq_norm``, or NaN when the logits [C] at the clean input are not finite (no
    attack means anything there; the strategies never pick a NaN score)."""
    return jnp.where(jnp.all(jnp.isfinite(logits)), sq_norm, jnp.nan)


def perturbation_scores(
    attack_fn: AttackFn,
    model: Model,
    params: Any,
    x: jax.Array,
    batch_size: int,
    active: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Run a per-example attack over a pool, ``batch_size`` points at a time.

    Each chunk of B points is one ``jax.vmap`` of ``attack_fn``; chunks run one after the
    other (``lax.map``). A vmapped ``while_loop`` runs until its slowest lane finishes (the
    finished lanes are carried unchanged), so a point that needs the whole iteration cap
    holds up only the B - 1 other points of its chunk, not the whole pool: smaller
    ``batch_size`` wastes fewer idle lane-iterations, larger amortizes each step over more
    points. Memory is O(B * the attack's per-example memory).

    Args:
        attack_fn: ``attack_fn(model, params, x_one, active=...) -> (sq_norm, flipped,
            iterations)``, e.g. ``functools.partial(jaxal.attacks.deepfool, max_iter=20)``.
        model: the :class:`jaxal.Model`.
        params: its parameters.
        x: inputs [N, ...].
        batch_size: B, a Python int >= 1.
        active: optional bool [N]; False points skip the attack (0, False, 0).

    Returns:
        ``(sq_norm float [N], flipped bool [N], iterations int32 [N])``.
    """
    batch_size = _checks.positive_int(batch_size, "batch_size")
    _checks.rank_at_least(x, 1, "x")
    if active is None:
        active = jnp.ones(x.shape[0], bool)

    def one(point, is_active):
        return attack_fn(model, params, point, active=is_active)

    def one_chunk(chunk, chunk_active, index):
        del index
        return jax.vmap(one)(chunk, chunk_active)

    return map_chunks(one_chunk, x, jnp.asarray(active, bool), chunk_size=batch_size)


def check_num_classes(value: object) -> int | None:
    """DeepFool's ``num_classes``: None or a Python int >= 2."""
    number = _checks.optional_positive_int(value, "num_classes")
    if number is not None and number < 2:
        raise ValueError(f"num_classes must be >= 2 (the label and one other), got {number}")
    return number


def _as_float(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return x.astype(jnp.float32)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _logits_fn(model: Model, params: Any) -> Callable[[jax.Array], jax.Array]:
    def logits_of(point: jax.Array) -> jax.Array:
        logits, _ = model.apply(params, point[None], None)
        return logits[0]

    return logits_of


def _check_classes(logits: jax.Array) -> int:
    if logits.ndim != 1 or logits.shape[0] < 2:
        raise ValueError(
            "the model must return logits [B, C] with C >= 2 classes for an attack, got "
            f"shape {(1, *logits.shape)}"
        )
    return int(logits.shape[0])


def _sq_norm(perturbation: jax.Array) -> jax.Array:
    return jnp.sum(jnp.square(perturbation))

"""The model protocol, the Flax adapters, and chunked passes of a model over a pool.

Letters: N points, B points per chunk (``batch_size``), C classes, D embedding size,
S Monte-Carlo (dropout) samples, P parameters in a per-example gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import _checks
from jaxal._chunks import map_chunks, map_slices
from jaxal._points import OuterProduct

# apply(params, x [B, ...], rng | None) -> (logits [B, C], embedding [B, D])
ApplyFn = Callable[[Any, jax.Array, jax.Array | None], tuple[jax.Array, jax.Array]]
# head(params, embedding [B, D]) -> logits [B, C]
HeadFn = Callable[[Any, jax.Array], jax.Array]

GRADIENT_EMBEDDINGS = ("linear", "bias", "bias_linear")


class Model(NamedTuple):
    """A classifier as pure functions.

    Attributes:
        apply: ``apply(params, x, rng) -> (logits [B, C], embedding [B, D])``. ``rng=None``
            is the deterministic (eval) forward pass; a PRNG key turns dropout on. The
            embedding is the input of the last layer (penultimate features).
        head: optional ``head(params, embedding [B, D]) -> logits [B, C]``, the last layer
            alone. When given, MC-dropout samples drop units of the embedding only: one
            deterministic forward pass, then S cheap head passes.
        head_dropout: the dropout rate applied to the embedding on the ``head`` path.
    """

    apply: ApplyFn
    head: HeadFn | None = None
    head_dropout: float = 0.5


def from_flax(
    module: Any,
    *,
    head: HeadFn | None = None,
    head_dropout: float = 0.5,
    eval_kwargs: Mapping[str, Any] | None = None,
    mc_kwargs: Mapping[str, Any] | None = None,
) -> Model:
    """Wrap a Flax module whose call returns ``(logits, embedding)``.

    ``flax.linen``: ``module.__call__(x, train: bool)``; params are its variables (the
    dict from ``module.init``). The eval pass calls it with ``eval_kwargs`` (default
    ``{"train": False}``), the MC-dropout pass with ``mc_kwargs`` (default
    ``{"train": True}``) and the ``'dropout'`` rng stream. If the variables hold
    ``batch_stats`` and ``mc_kwargs`` is left at its default, the MC pass raises a
    ValueError: one ``train`` flag would also switch BatchNorm to batch statistics. Give
    the module a separate dropout flag and pass it through ``mc_kwargs``.

    ``flax.nnx``: ``module.__call__(x)``; params are its whole state (``nnx.state(module)``)
    or its ``nnx.Param`` state alone (``_, params, _ = nnx.split(module, nnx.Param, ...)``),
    as State or pure dict. With the Param state alone, the rest of the state (BatchNorm
    statistics, ...) is the one ``module`` holds when ``from_flax`` is called. The eval
    pass puts every submodule in eval mode; the MC pass does the same and then turns on
    only the ``nnx.Dropout`` layers, each with its own key derived from ``rng``, so
    BatchNorm keeps its running statistics.

    Args:
        module: a ``flax.linen.Module`` or a ``flax.nnx.Module``.
        head, head_dropout: see :class:`Model`.
        eval_kwargs, mc_kwargs: linen only, keyword arguments of the two passes.

    Returns:
        A :class:`Model`. Its apply raises a ValueError when params is None, or, for nnx,
        when params is neither of the two states above.
    """
    from flax import linen, nnx

    if isinstance(module, nnx.Module):
        if eval_kwargs is not None or mc_kwargs is not None:
            raise ValueError("eval_kwargs and mc_kwargs apply to flax.linen modules only")
        return Model(_nnx_apply(module), head, head_dropout)
    if isinstance(module, linen.Module):
        return Model(_linen_apply(module, eval_kwargs, mc_kwargs), head, head_dropout)
    raise TypeError(f"module must be a flax.linen or flax.nnx Module, got {type(module).__name__}")


def _linen_apply(module, eval_kwargs, mc_kwargs) -> ApplyFn:
    guard_batch_norm = mc_kwargs is None
    eval_kwargs = {"train": False} if eval_kwargs is None else dict(eval_kwargs)
    mc_kwargs = {"train": True} if mc_kwargs is None else dict(mc_kwargs)

    def apply(params, x, rng):
        if params is None:
            raise ValueError("params is None: pass the module's variables from module.init(...)")
        if rng is None:
            return module.apply(params, x, **eval_kwargs)
        if guard_batch_norm and "batch_stats" in params:
            raise ValueError(
                "this linen module has batch_stats: calling it with train=True for MC dropout "
                "would switch BatchNorm to batch statistics. Give the module a separate "
                "dropout flag and pass it with from_flax(module, mc_kwargs={...})."
            )
        return module.apply(params, x, rngs={"dropout": rng}, **mc_kwargs)

    return apply


def _nnx_apply(module) -> ApplyFn:
    """The apply of an nnx module; params are its whole state or its ``nnx.Param`` state.

    The module is split once here into (graphdef, Param state, rest). A call whose params
    hold only the Param leaves takes the rest (BatchNorm statistics, RNG state, ...) from
    this split; a call with the whole state uses none of it.
    """
    from flax import nnx

    graphdef, param_state, *rest = nnx.split(module, nnx.Param, ...)  # rest: [State]
    param_paths = _nnx_leaf_paths(param_state)
    full_paths = _nnx_leaf_paths(nnx.state(module))

    def apply(params, x, rng):
        if params is None:
            raise ValueError(
                "params is None: pass nnx.state(module), or the nnx.Param state from "
                "nnx.split(module, nnx.Param, ...)"
            )
        paths = _nnx_leaf_paths(params)
        if paths == full_paths:
            model = nnx.merge(graphdef, params)
        elif paths == param_paths:
            # A copy of the stored rest, so that nothing the call does can write into it.
            model = nnx.merge(graphdef, params, *rest, copy=True)
        else:
            raise ValueError(_nnx_params_mismatch(params, paths, full_paths, param_paths))
        model.eval()
        if rng is not None:
            dropouts = [sub for _, sub in nnx.iter_modules(model) if isinstance(sub, nnx.Dropout)]
            for layer, sub in enumerate(dropouts):
                # A fresh stream per layer, created in this trace (the merged state's own
                # RngKey may belong to an outer trace and cannot be mutated here).
                sub.rngs = nnx.Rngs(**{sub.rng_collection: jax.random.fold_in(rng, layer)})
                sub.deterministic = False
        return model(x)

    return apply


def _nnx_leaf_paths(state: Any) -> frozenset[str]:
    """The paths of the variables in an nnx state or in its pure-dict form.

    A ``Variable`` counts as one leaf, so ``nnx.state(m)`` and ``nnx.to_pure_dict`` of it
    give the same paths, e.g. ``"['dense']['kernel']"``.
    """
    from flax import nnx

    leaves = jax.tree_util.tree_leaves_with_path(
        state, is_leaf=lambda leaf: isinstance(leaf, nnx.Variable)
    )
    return frozenset(jax.tree_util.keystr(path) for path, _ in leaves)


def _nnx_params_mismatch(
    params: Any, paths: frozenset[str], full_paths: frozenset[str], param_paths: frozenset[str]
) -> str:
    """The message for params that are neither the module's full state nor its Param state."""
    if isinstance(params, Mapping):
        got = f"{type(params).__name__} with top-level keys {sorted(map(str, params))}"
    else:
        got = type(params).__name__
    missing = sorted(param_paths - paths)[:3]
    extra = sorted(paths - full_paths)[:3]
    return (
        "params must be nnx.state(module) or the nnx.Param state from "
        f"nnx.split(module, nnx.Param, ...) ({len(full_paths)} or {len(param_paths)} "
        f"variables); got a {got}, {len(paths)} leaves"
        + (f"; missing e.g. {', '.join(missing)}" if missing else "")
        + (f"; unknown e.g. {', '.join(extra)}" if extra else "")
    )


def forward(
    model: Model, params: Any, x: jax.Array, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """The deterministic forward pass over a pool, ``batch_size`` points at a time.

    The outputs are written in place (``map_slices``): the model acts on each row alone,
    as every chunked pass assumes, so the last chunk may overlap the one before it.

    Args:
        x: inputs [N, ...].

    Returns:
        (logits float [N, C], embeddings float [N, D]).
    """
    return map_slices(
        lambda chunk, index: model.apply(params, chunk, None), x, chunk_size=batch_size
    )


def probability_map(
    model: Model,
    params: Any,
    x: jax.Array,
    batch_size: int,
    reduce: Callable[[jax.Array], Any],
) -> Any:
    """The deterministic softmax per chunk, reduced per point before the next chunk.

    Args:
        x: inputs [N, ...].
        batch_size: B, points per chunk.
        reduce: maps probabilities [B, C] to a pytree of per-point arrays [B, ...].

    Returns:
        ``reduce``'s outputs for all points, leading axis N; floating outputs are NaN for
        points whose logits are not finite.
    """

    def one_chunk(chunk, index):
        del index
        logits, _ = model.apply(params, chunk, None)
        return _nan_where_non_finite(reduce(softmax(logits)), logits)

    return map_chunks(one_chunk, x, chunk_size=batch_size)


def mc_map(
    model: Model,
    params: Any,
    x: jax.Array,
    key: jax.Array,
    mc_samples: int,
    batch_size: int,
    reduce: Callable[[jax.Array], Any],
    offset: jax.Array | int = 0,
    *,
    consistent: bool = False,
    logits: bool = False,
    in_place: bool = False,
) -> Any:
    """MC-dropout probabilities per chunk, reduced per point before the next chunk.

    Sample s of point i uses randomness derived from ``key``, s and the global index
    ``offset + i``, so results depend neither on ``batch_size`` nor on streaming the pool
    in chunks. With ``consistent=True`` the point index is left out: sample s drops the
    same units for every point, i.e. each sample is one network (BatchBALD's joint over
    several points needs this, as its "consistent MC dropout"; still independent of
    chunking). Without ``model.head``, each sample is a
    stochastic forward pass of ``model.apply`` (vmapped over samples and points); with it,
    one deterministic pass gives the embeddings and each sample drops embedding units with
    rate ``model.head_dropout`` (inverted dropout) before ``model.head``.

    Args:
        x: inputs [N, ...].
        key: PRNG key.
        mc_samples: S, a Python int >= 1.
        batch_size: B, points per chunk.
        reduce: maps probabilities [S, B, C] (float32 at least) to a pytree of
            per-point arrays [B, ...] (memory stays O(S * B * C)).
        offset: int32 scalar, the global index of ``x[0]`` (``Pool.offset``).
        consistent: one dropout mask per sample, shared by all points.
        logits: hand ``reduce`` the logits [S, B, C] (float32 at least) instead of
            the probabilities.
        in_place: write each chunk's outputs in place into arrays of N rows
            (``jaxal._chunks.map_slices``) instead of concatenating the chunks' outputs:
            for a ``reduce`` with large per-point outputs (e.g. every sample's
            probabilities), whose concatenation would be a second copy.

    Returns:
        ``reduce``'s outputs for all points, leading axis N; floating outputs are NaN for
        points whose logits are not finite.
    """
    sample_keys = jax.random.split(key, mc_samples)

    def one_chunk(chunk, index):
        if consistent:
            index = jnp.zeros_like(index)
        if model.head is None:
            sampled = _stochastic_passes(model, params, chunk, index, sample_keys)
        else:
            sampled = _head_passes(model, params, chunk, index, sample_keys)
        sampled = _at_least_float32(sampled)
        reduced = reduce(sampled if logits else jax.nn.softmax(sampled, axis=-1))
        return _nan_where_non_finite(reduced, jnp.swapaxes(sampled, 0, 1))

    chunked = map_slices if in_place else map_chunks
    return chunked(one_chunk, x, chunk_size=batch_size, offset=offset)


def _stochastic_passes(model, params, chunk, index, sample_keys):
    def one(point, i, sample_key):
        logits, _ = model.apply(params, point[None], jax.random.fold_in(sample_key, i))
        return logits[0]

    over_points = jax.vmap(one, in_axes=(0, 0, None))
    return jax.vmap(over_points, in_axes=(None, None, 0))(chunk, index, sample_keys)


def _head_passes(model, params, chunk, index, sample_keys):
    _, embedding = model.apply(params, chunk, None)
    scaled = embedding / (1.0 - model.head_dropout)

    def one_sample(sample_key):
        seed = jax.random.bits(sample_key, (), jnp.uint32)
        keep = dropout_keep_mask(seed, index, embedding.shape[-1], model.head_dropout)
        return model.head(params, jnp.where(keep, scaled, 0.0))

    return jax.lax.map(one_sample, sample_keys)


def _nan_where_non_finite(reduced: Any, logits: jax.Array) -> Any:
    """``reduced`` (a pytree of per-point arrays [B, ...]) with its floating entries NaN
    for the points whose logits (leading axis B) hold NaN or infinity.

    Under jit, XLA on CPU may turn a row of NaN logits into finite probabilities (its
    min / max reductions need not propagate NaN): the scores must still say NaN, which
    no strategy picks.
    """
    finite = jnp.all(jnp.isfinite(logits.reshape(logits.shape[0], -1)), axis=1)

    def mark(leaf):
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            return leaf
        keep = finite.reshape(finite.shape + (1,) * (leaf.ndim - 1))
        return jnp.where(keep, leaf, jnp.nan)

    return jax.tree.map(mark, reduced)


def softmax(logits: jax.Array) -> jax.Array:
    """Class probabilities [..., C] of logits [..., C], computed in float32 at least
    (a float16 or bfloat16 model's logits are upcast first)."""
    return jax.nn.softmax(_at_least_float32(logits), axis=-1)


def _at_least_float32(x: jax.Array) -> jax.Array:
    return x.astype(jnp.result_type(x.dtype, jnp.float32))


def dropout_keep_mask(seed: jax.Array, index: jax.Array, width: int, rate: float) -> jax.Array:
    """Bernoulli(1 - rate) keep mask from a counter-based hash.

    Unit d of point i is kept when hash(seed, i, d) >= rate * 2^32, with the murmur3
    finalizer as the hash. One 32-bit hash per unit (two multiplies and three shifts)
    is much cheaper on CPU than ``jax.random.bernoulli``, and the mask depends only on
    the seed and the global index i, not on chunking.

    Args:
        seed: uint32 scalar, one per MC sample.
        index: int [B], global point indices.
        width: D, the number of units.
        rate: drop probability in [0, 1).

    Returns:
        bool [B, D], True where the unit is kept.
    """
    point_hash = _fmix32(seed ^ (index.astype(jnp.uint32) * _GOLDEN))
    unit = jnp.arange(width, dtype=jnp.uint32) * _MIX
    bits = _fmix32(point_hash[:, None] + unit)
    return bits >= jnp.uint32(min(int(rate * 2.0**32), 2**32 - 1))


_GOLDEN = np.uint32(0x9E3779B9)  # NumPy: importing jaxal must not start a JAX backend
_MIX = np.uint32(0x85EBCA6B)


def _fmix32(h: jax.Array) -> jax.Array:
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def gradient_embedding(
    logits: jax.Array, embeddings: jax.Array, kind: str, labels: jax.Array | None = None
) -> OuterProduct:
    """Last-layer cross-entropy gradients at the predicted (or given) labels, factored.

    With p = softmax(logits) and a = p - onehot(y) (d loss / d logits) for y = argmax p,
    or ``labels`` when given (true-label gradients, e.g. of a query set), the gradient
    for the last layer's weights is a (x) h. Row i of the returned :class:`OuterProduct` is

    * ``"linear"``: a (x) h, dimension C * D (DISTIL's BADGE default);
    * ``"bias"``: a, dimension C;
    * ``"bias_linear"``: a (x) [1, h], dimension C * (D + 1): the bias and weight gradients
      together (DISTIL concatenates [a, a (x) h]; the same entries in another order, so
      every distance is the same).

    Args:
        logits: float [N, C].
        embeddings: float [N, D], the last layer's input.
        kind: one of ``"linear"``, ``"bias"``, ``"bias_linear"``.
        labels: int [N] in [0, C), or None for the predicted labels.

    Returns:
        ``OuterProduct(left=a [N, C], right=[N, D] | [N, 1] | [N, D + 1])``.
    """
    if kind not in GRADIENT_EMBEDDINGS:
        raise ValueError(f"embedding must be one of {GRADIENT_EMBEDDINGS}, got {kind!r}")
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    if labels is None:
        labels = jnp.argmax(probs, axis=-1)
    elif jnp.shape(labels) != probs.shape[:1]:
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {jnp.shape(labels)}")
    else:
        _checks.labels_in_range(labels, probs.shape[-1], "labels")
    target = jax.nn.one_hot(labels, probs.shape[-1], dtype=probs.dtype)
    ones = jnp.ones((embeddings.shape[0], 1), embeddings.dtype)
    right = {
        "linear": embeddings,
        "bias": ones,
        "bias_linear": jnp.concatenate([ones, embeddings], axis=1),
    }[kind]
    return OuterProduct(probs - target, right)


def parameter_gradients(
    model: Model,
    params: Any,
    x: jax.Array,
    batch_size: int,
    params_filter: Callable[[str], bool] | str,
) -> jax.Array:
    """Per-example gradients of the cross-entropy at the predicted label, by vmap(grad).

    Only the parameter leaves whose path (keys joined by ``/``, e.g.
    ``"params/Dense_1/kernel"``) passes ``params_filter`` are differentiated; a string
    filter keeps paths containing it.

    Args:
        x: inputs [N, ...].
        batch_size: points per chunk.
        params_filter: predicate on the leaf path, or a substring of it.

    Returns:
        float32 [N, P], the selected gradients flattened and concatenated in leaf order.

    Raises:
        ValueError: no parameter leaf passes the filter.
    """
    keep = _as_predicate(params_filter)
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    selected = [i for i, (path, _) in enumerate(paths_and_leaves) if keep(_path_name(path))]
    if not selected:
        names = [_path_name(path) for path, _ in paths_and_leaves]
        raise ValueError(f"params_filter selects no parameter; the leaves are {names}")
    leaves = [leaf for _, leaf in paths_and_leaves]

    def loss(chosen, point):
        full = list(leaves)
        for i, leaf in zip(selected, chosen, strict=True):
            full[i] = leaf
        logits, _ = model.apply(jax.tree_util.tree_unflatten(treedef, full), point[None], None)
        log_probs = jax.nn.log_softmax(logits[0])
        return -log_probs[jax.lax.stop_gradient(jnp.argmax(log_probs))]

    def one_chunk(chunk, index):
        del index
        grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))([leaves[i] for i in selected], chunk)
        return jnp.concatenate([g.reshape(chunk.shape[0], -1) for g in grads], axis=1)

    return map_chunks(one_chunk, x, chunk_size=batch_size).astype(jnp.float32)


def _as_predicate(params_filter: Callable[[str], bool] | str) -> Callable[[str], bool]:
    if isinstance(params_filter, str):
        return lambda name: params_filter in name
    return params_filter


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)

"""The model layer: Flax adapters, chunked passes, MC dropout and gradient embeddings."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxal
from jaxal.model import (
    dropout_keep_mask,
    forward,
    gradient_embedding,
    mc_map,
    parameter_gradients,
)
from tests.conftest import N_CLASSES, N_FEATURES, N_HIDDEN, N_POINTS, numpy_mlp, softmax


def test_forward_matches_numpy_and_chunks(model, params, mlp):
    x = mlp[2]
    logits, hidden = numpy_mlp(params, x)
    for batch_size in (7, 32, 1000):
        got_logits, got_hidden = forward(model, params, x, batch_size)
        np.testing.assert_allclose(got_logits, logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got_hidden, hidden, rtol=1e-4, atol=1e-4)


def test_head_path_matches_numpy_with_the_same_masks(head_model, params, mlp, key):
    x = mlp[2]
    samples = 5
    probs = mc_map(head_model, params, x, key, samples, 11, lambda p: jnp.swapaxes(p, 0, 1))
    logits, hidden = numpy_mlp(params, x)
    p1 = np.asarray(params["params"]["Dense_1"]["kernel"], np.float64)
    b1 = np.asarray(params["params"]["Dense_1"]["bias"], np.float64)
    for s, sample_key in enumerate(jax.random.split(key, samples)):
        seed = jax.random.bits(sample_key, (), jnp.uint32)
        keep = np.asarray(dropout_keep_mask(seed, jnp.arange(N_POINTS), N_HIDDEN, 0.5))
        expected = softmax((hidden * keep * 2.0) @ p1 + b1)
        np.testing.assert_allclose(probs[:, s], expected, rtol=1e-4, atol=1e-5)


def test_stochastic_path_uses_per_point_keys(model, params, mlp, key):
    x = mlp[2]
    samples = 3
    probs = mc_map(model, params, x, key, samples, 10, lambda p: jnp.swapaxes(p, 0, 1))
    sample_keys = jax.random.split(key, samples)
    for i in (0, 17, N_POINTS - 1):
        for s in range(samples):
            logits, _ = model.apply(params, x[i : i + 1], jax.random.fold_in(sample_keys[s], i))
            np.testing.assert_allclose(probs[i, s], jax.nn.softmax(logits[0]), rtol=1e-5)
    assert not np.allclose(probs[:, 0], probs[:, 1]), "dropout samples should differ"


@pytest.mark.parametrize("which", ["apply", "head"])
def test_mc_samples_do_not_depend_on_batch_size(which, model, head_model, params, mlp, key):
    chosen = model if which == "apply" else head_model
    small = mc_map(chosen, params, mlp[2], key, 4, 5, lambda p: p.mean(0))
    large = mc_map(chosen, params, mlp[2], key, 4, 64, lambda p: p.mean(0))
    np.testing.assert_allclose(small, large, rtol=1e-6, atol=1e-7)


def _per_sample(probs):
    """mc_map's reduce that keeps every sample: [S, B, C] -> [B, S, C]."""
    return jnp.swapaxes(probs, 0, 1)


@pytest.mark.parametrize("which", ["apply", "head"])
def test_consistent_samples_are_one_network_each(which, model, head_model, params, key):
    """consistent=True: sample s drops the same units for every point (BatchBALD)."""
    chosen = model if which == "apply" else head_model
    x = jax.random.normal(jax.random.key(3), (9, N_FEATURES))
    x = jnp.concatenate([x, jnp.repeat(x[:1], 4, axis=0)])
    probs = {
        batch_size: np.asarray(
            mc_map(chosen, params, x, key, 6, batch_size, _per_sample, consistent=True)
        ).swapaxes(0, 1)
        for batch_size in (4, 13)
    }
    np.testing.assert_allclose(probs[4], probs[13], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(probs[4][:, 9:], np.repeat(probs[4][:, :1], 4, axis=1), atol=1e-7)
    assert not np.allclose(probs[4][0], probs[4][1]), "the samples should differ"
    per_point = np.asarray(mc_map(chosen, params, x, key, 6, 4, _per_sample)).swapaxes(0, 1)
    assert not np.allclose(per_point[:, 9:], np.repeat(per_point[:, :1], 4, axis=1))
    if which == "head":  # against NumPy: sample s keeps the units of point index 0's mask
        logits, hidden = numpy_mlp(params, x)
        layer = params["params"]["Dense_1"]
        for s, sample_key in enumerate(jax.random.split(key, 6)):
            seed = jax.random.bits(sample_key, (), jnp.uint32)
            keep = np.asarray(dropout_keep_mask(seed, jnp.zeros(1, jnp.int32), N_HIDDEN, 0.5))
            expected = softmax(
                (hidden * keep * 2.0) @ np.asarray(layer["kernel"], np.float64)
                + np.asarray(layer["bias"], np.float64)
            )
            np.testing.assert_allclose(probs[4][s], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_mask_keep_rate_and_independence(rate):
    keep = np.asarray(dropout_keep_mask(jnp.uint32(1234), jnp.arange(4000), 64, rate))
    n = keep.size
    assert abs(keep.mean() - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / n)
    # Neighbouring units and points are uncorrelated.
    centred = keep - keep.mean()
    for a, b in ((centred[:, :-1], centred[:, 1:]), (centred[:-1], centred[1:])):
        correlation = (a * b).mean() / centred.var()
        assert abs(correlation) < 0.02
    other_seed = np.asarray(dropout_keep_mask(jnp.uint32(1235), jnp.arange(4000), 64, rate))
    assert (keep != other_seed).mean() > 0.5 * 2 * rate * (1 - rate)


@pytest.mark.parametrize("kind", ["linear", "bias", "bias_linear"])
def test_gradient_embedding_matches_distil_layout(kind):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, N_CLASSES)).astype(np.float32) * 3
    hidden = np.abs(rng.normal(size=(20, N_HIDDEN))).astype(np.float32)
    grad_logits = softmax(logits.astype(np.float64))
    grad_logits[np.arange(20), logits.argmax(1)] -= 1.0
    outer = np.einsum("nc,nd->ncd", grad_logits, hidden).reshape(20, -1)
    distil = {
        "linear": outer,
        "bias": grad_logits,
        "bias_linear": np.concatenate([grad_logits, outer], axis=1),
    }[kind]
    factored = gradient_embedding(jnp.asarray(logits), jnp.asarray(hidden), kind)
    got = np.asarray(factored.materialize(), np.float64)
    assert got.shape == distil.shape
    np.testing.assert_allclose(np.sort(got, axis=1), np.sort(distil, axis=1), atol=1e-5)
    distances = ((distil[:, None] - distil[None]) ** 2).sum(-1)
    got_distances = jaxal.selectors.sq_distances(factored, factored)
    np.testing.assert_allclose(got_distances, distances, rtol=1e-4, atol=1e-4)


def test_gradient_embedding_at_given_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(15, N_CLASSES)).astype(np.float32) * 3
    hidden = rng.normal(size=(15, N_HIDDEN)).astype(np.float32)
    labels = rng.integers(0, N_CLASSES, 15)
    grad_logits = softmax(logits.astype(np.float64))
    grad_logits[np.arange(15), labels] -= 1.0
    expected = np.einsum("nc,nd->ncd", grad_logits, hidden).reshape(15, -1)
    got = gradient_embedding(
        jnp.asarray(logits), jnp.asarray(hidden), "linear", jnp.asarray(labels)
    )
    np.testing.assert_allclose(np.asarray(got.materialize(), np.float64), expected, atol=1e-5)


@pytest.mark.parametrize(("labels", "match"), [([0, 4], "in \\[0, 4\\)"), ([0], "shape")])
def test_gradient_embedding_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        gradient_embedding(jnp.zeros((2, 4)), jnp.zeros((2, 3)), "linear", jnp.asarray(labels))


def test_gradient_embedding_rejects_unknown_kind():
    with pytest.raises(ValueError, match="embedding"):
        gradient_embedding(jnp.zeros((2, 3)), jnp.zeros((2, 4)), "weights")


def test_parameter_gradients_match_closed_form_for_dense_head(model, params, mlp):
    x = mlp[2]
    logits, hidden = numpy_mlp(params, x)
    grad_logits = softmax(logits)
    grad_logits[np.arange(N_POINTS), logits.argmax(1)] -= 1.0
    # Leaf order under "Dense_1": bias [C], then kernel [D, C] (D-major flattening).
    expected = np.concatenate(
        [grad_logits, np.einsum("nd,nc->ndc", hidden, grad_logits).reshape(N_POINTS, -1)], 1
    )
    got = parameter_gradients(model, params, x, 13, "Dense_1")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    only_kernel = parameter_gradients(model, params, x, 13, lambda path: path.endswith("1/kernel"))
    np.testing.assert_allclose(only_kernel, expected[:, N_CLASSES:], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="params_filter"):
        parameter_gradients(model, params, x, 13, "Dense_9")


class _SharedFlagNet(nn.Module):
    """One `train` flag drives both BatchNorm and Dropout: the trap."""

    @nn.compact
    def __call__(self, x, train: bool):
        hidden = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(8)(x)))
        hidden = nn.Dropout(0.5, deterministic=not train)(hidden)
        return nn.Dense(3)(hidden), hidden


class _SeparateFlagNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool, dropout: bool = False):
        hidden = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(8)(x)))
        dropped = nn.Dropout(0.5, deterministic=not dropout)(hidden)
        return nn.Dense(3)(dropped), dropped


def _with_running_stats(variables):
    """Give BatchNorm running statistics far from any batch's own statistics."""
    stats = variables["batch_stats"]["BatchNorm_0"]
    return {
        **variables,
        "batch_stats": {"BatchNorm_0": {"mean": stats["mean"] - 3.0, "var": stats["var"] * 5}},
    }


def test_linen_shared_train_flag_with_batch_norm_raises_clearly():
    module = _SharedFlagNet()
    x = jnp.ones((4, 5))
    variables = module.init(jax.random.key(0), x, train=False)
    model = jaxal.from_flax(module)
    model.apply(variables, x, None)  # the eval pass is fine
    with pytest.raises(ValueError, match="BatchNorm"):
        model.apply(variables, x, jax.random.key(1))
    pool = jaxal.Pool.create(jnp.ones((10, 5)))
    with pytest.raises(ValueError, match="batch_stats"):
        jaxal.strategies.bald(model, 2).select(variables, pool, jax.random.key(2))


def test_linen_separate_dropout_flag_keeps_running_stats():
    module = _SeparateFlagNet()
    x = jax.random.normal(jax.random.key(3), (6, 5))
    variables = _with_running_stats(module.init(jax.random.key(0), x, train=False))
    model = jaxal.from_flax(module, mc_kwargs={"train": False, "dropout": True})
    eval_logits, eval_hidden = model.apply(variables, x, None)
    mc_logits, mc_hidden = model.apply(variables, x, jax.random.key(1))
    # Running statistics in both passes: every kept unit is the eval unit times 1 / (1 - 0.5).
    assert np.all(np.asarray(eval_hidden) > 0)
    kept = np.asarray(mc_hidden) != 0
    np.testing.assert_allclose(np.asarray(mc_hidden)[kept], 2 * np.asarray(eval_hidden)[kept])
    assert 0.2 < kept.mean() < 0.8 and not np.allclose(mc_logits, eval_logits)


class _NnxNet(nnx.Module):
    def __init__(self, rate: float, rngs: nnx.Rngs):
        self.dense = nnx.Linear(5, 8, rngs=rngs)
        self.norm = nnx.BatchNorm(8, rngs=rngs)
        self.dropout = nnx.Dropout(rate, rngs=rngs)
        self.out = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        hidden = nnx.relu(self.norm(self.dense(x)))
        return self.out(self.dropout(hidden)), hidden


def _nnx_net(rate):
    net = _NnxNet(rate, nnx.Rngs(0, dropout=1))
    net.norm.mean[...] = net.norm.mean[...] - 3.0
    net.norm.var[...] = net.norm.var[...] * 5.0
    return net


def test_nnx_eval_pass_uses_running_statistics():
    net = _nnx_net(0.5)
    model = jaxal.from_flax(net)
    params = nnx.state(net)
    x = jax.random.normal(jax.random.key(3), (6, 5))
    logits, hidden = model.apply(params, x, None)
    h = x @ net.dense.kernel[...] + net.dense.bias[...]
    h = (h - net.norm.mean[...]) / jnp.sqrt(net.norm.var[...] + net.norm.epsilon)
    h = jax.nn.relu(h * net.norm.scale[...] + net.norm.bias[...])
    assert (np.asarray(h) > 0).mean() > 0.5
    np.testing.assert_allclose(hidden, h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logits, h @ net.out.kernel[...] + net.out.bias[...], rtol=1e-5)


def test_nnx_mc_pass_turns_on_dropout_only():
    x = jax.random.normal(jax.random.key(3), (6, 5))
    no_dropout = _nnx_net(0.0)
    model = jaxal.from_flax(no_dropout)
    params = nnx.state(no_dropout)
    eval_logits, _ = model.apply(params, x, None)
    mc_logits, _ = model.apply(params, x, jax.random.key(1))
    np.testing.assert_allclose(mc_logits, eval_logits, rtol=1e-6)  # BatchNorm stayed in eval
    with_dropout = _nnx_net(0.5)
    model = jaxal.from_flax(with_dropout)
    params = nnx.state(with_dropout)
    first = model.apply(params, x, jax.random.key(1))[0]
    second = model.apply(params, x, jax.random.key(2))[0]
    repeat = model.apply(params, x, jax.random.key(1))[0]
    assert not np.allclose(first, second)
    np.testing.assert_allclose(first, repeat)


def test_nnx_strategy_end_to_end():
    net = _nnx_net(0.5)
    model = jaxal.from_flax(net)
    params = nnx.state(net)
    pool = jaxal.Pool.create(jax.random.normal(jax.random.key(4), (30, 5)), labeled=jnp.arange(5))
    for strategy in (jaxal.strategies.bald(model, 4), jaxal.strategies.badge(model, 4)):
        indices = np.asarray(jax.jit(strategy.select)(params, pool, jax.random.key(5)))
        assert len(set(indices.tolist())) == 4 and indices.min() >= 5


def test_from_flax_rejects_other_objects():
    with pytest.raises(TypeError, match="flax"):
        jaxal.from_flax(lambda x: x)

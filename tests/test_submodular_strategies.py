"""FASS and submodular sampling end to end against NumPy float64 references."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxal
from tests import reference, reference_submodular
from tests.conftest import numpy_mlp, softmax


@pytest.mark.parametrize("uncertainty", ["entropy", "margin", "least_confidence"])
def test_fass_is_facility_location_over_the_most_uncertain(uncertainty, model, params, pool, key):
    budget, top_n = 4, 3
    strategy = jaxal.strategies.fass(model, budget, top_n=top_n, uncertainty=uncertainty)
    got = np.asarray(strategy.select(params, pool, key))
    logits, hidden = numpy_mlp(params, pool.x)
    measure = {
        "entropy": reference.entropy,
        "margin": reference.margin,
        "least_confidence": reference.least_confidence,
    }[uncertainty]
    unlabeled = ~np.asarray(pool.labeled)
    filtered = reference.top_k(measure(softmax(logits)), unlabeled, budget * top_n)
    assert set(got.tolist()) <= set(filtered.tolist()), "FASS picked outside its filter"
    kernel = reference_submodular.cosine_kernel(hidden[filtered])

    def value(chosen):
        return reference_submodular.facility_location(kernel, chosen)

    local, _ = reference_submodular.naive_greedy(
        value, len(filtered), np.ones(len(filtered), bool), budget
    )
    np.testing.assert_array_equal(got, filtered[local])


@pytest.mark.parametrize(
    ("function", "hparams"),
    [
        ("facility_location", {}),
        ("graph_cut", {"lambda_": 0.4}),
        ("log_determinant", {"lambda_": 1.0}),
        ("disparity_sum", {}),
    ],
)
@pytest.mark.parametrize("max_dense", [16384, 0], ids=["dense", "on-the-fly"])
def test_submodular_matches_numpy_greedy(function, hparams, max_dense, model, params, pool, key):
    budget = 5
    strategy = jaxal.strategies.submodular(
        model, budget, function=function, optimizer="naive", max_dense=max_dense, **hparams
    )
    got = np.asarray(strategy.select(params, pool, key))
    _, hidden = numpy_mlp(params, pool.x)
    unlabeled = ~np.asarray(pool.labeled)
    kernel = reference_submodular.cosine_kernel(hidden)
    ground = unlabeled if function in ("facility_location", "graph_cut") else None

    def value(chosen):
        f = getattr(reference_submodular, function)
        if ground is not None:
            return f(kernel, chosen, ground=ground, **hparams)
        return f(kernel, chosen, **hparams)

    expected, _ = reference_submodular.naive_greedy(value, len(hidden), unlabeled, budget)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("function", "hparams"), [("facility_location", {}), ("graph_cut", {"lambda_": 0.3})]
)
def test_represented_sample_is_the_ground_set(function, hparams, model, params, pool, key):
    """With represented=R the function sums over R unlabeled points drawn from the key."""
    budget, represented = 5, 30
    strategy = jaxal.strategies.submodular(
        model, budget, optimizer="naive", represented=represented
    )
    got = np.asarray(strategy.select(params, pool, key))
    unlabeled = ~np.asarray(pool.labeled)
    sample = np.asarray(
        jaxal.selectors.random_subset(pool.unlabeled, represented, jax.random.split(key)[1])
    )
    assert len(set(sample.tolist())) == represented and unlabeled[sample].all()
    ground = np.zeros(len(unlabeled), bool)
    ground[sample] = True
    _, hidden = numpy_mlp(params, pool.x)
    kernel = reference_submodular.cosine_kernel(hidden)

    def value(chosen):
        return reference_submodular.facility_location(kernel, chosen, ground=ground)

    expected, _ = reference_submodular.naive_greedy(value, len(hidden), unlabeled, budget)
    np.testing.assert_array_equal(got, expected)
    everything = jaxal.strategies.submodular(model, budget, optimizer="naive")
    assert not np.array_equal(got, np.asarray(everything.select(params, pool, key)))


def test_lazy_equals_naive_strategy(model, params, pool, key):
    lazy = jaxal.strategies.submodular(model, 6, optimizer="lazy")
    naive = jaxal.strategies.submodular(model, 6, optimizer="naive")
    np.testing.assert_array_equal(
        np.asarray(lazy.select(params, pool, key)), np.asarray(naive.select(params, pool, key))
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"function": "coverage"}, "function"),
        ({"metric": "manhattan"}, "metric"),
        ({"optimizer": "greedy"}, "optimizer"),
        ({"function": "graph_cut"}, "lambda_"),
        ({"representation": "pixels"}, "representation"),
        ({"function": "log_determinant", "lambda_": 1.0, "represented": 10}, "represented"),
        ({"represented": 0}, "represented"),
        ({"max_dense": -1}, "max_dense"),
    ],
)
def test_submodular_bad_arguments(kwargs, match, model):
    with pytest.raises((ValueError, TypeError), match=match):
        jaxal.strategies.submodular(model, 3, **kwargs)


def test_fass_bad_arguments(model):
    with pytest.raises(ValueError, match="uncertainty"):
        jaxal.strategies.fass(model, 3, uncertainty="bald")
    with pytest.raises(ValueError, match="top_n"):
        jaxal.strategies.fass(model, 3, top_n=0)

"""One call signature for every strategy: ``select(params, pool, key, **inputs)``."""

from __future__ import annotations

import inspect

import jax
import numpy as np
import pytest

import jaxal
from tests.test_contract import INPUTS, model_for

VALIDATION = {"validation_x": INPUTS["validation_x"], "validation_y": INPUTS["validation_y"]}


@pytest.mark.parametrize("name", sorted(jaxal.strategies.REGISTRY))
def test_every_select_and_score_has_one_signature(name, model):
    strategy = jaxal.strategies.get(name)(model_for(name, model), 3)
    for fn in (strategy.select, strategy.score):
        parameters = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in parameters[:3]] == ["params", "pool", "key"]
        assert parameters[3].kind is inspect.Parameter.VAR_KEYWORD and len(parameters) == 4


@pytest.mark.parametrize("name", ["entropy", "coreset", "glister"])
def test_unknown_inputs_are_refused(name, model, params, pool, key):
    strategy = jaxal.strategies.get(name)(model, 3)
    with pytest.raises(TypeError, match=rf"{name} got unexpected inputs \['query_x'\]"):
        strategy.select(params, pool, key, query_x=INPUTS["query_x"])


def test_partition_passes_inputs_to_every_part(model, params, pool, key):
    wrapped = jaxal.strategies.partition(model, 4, strategy="glister", parts=2)
    assert wrapped.inputs == ("validation_x", "validation_y")
    picked = np.asarray(wrapped.select(params, pool, key, **VALIDATION))
    # Each part is GLISTER over its half of the pool with the same validation set.
    half = pool.size // 2
    part = jaxal.strategies.glister(model, 2)
    for i, (start, stop) in enumerate([(0, half), (half, pool.size)]):
        sub_pool = jaxal.Pool(
            pool.x[start:stop], pool.y[start:stop], pool.labeled[start:stop], pool.offset
        )
        sub_key = jax.random.fold_in(jax.random.split(key)[1], i)
        expected = np.asarray(part.select(params, sub_pool, sub_key, **VALIDATION)) + start
        np.testing.assert_array_equal(picked[2 * i : 2 * i + 2], expected)


def test_renamed_keywords_still_work_with_a_warning(model, params, pool, key):
    with pytest.warns(DeprecationWarning, match="embedding= is deprecated; use gradient="):
        old = jaxal.strategies.badge(model, 3, embedding="bias")
    new = jaxal.strategies.badge(model, 3, gradient="bias")
    assert old.gradient == new.gradient == "bias"
    np.testing.assert_array_equal(
        np.asarray(old.select(params, pool, key)), np.asarray(new.select(params, pool, key))
    )
    with pytest.warns(DeprecationWarning, match="lam= is deprecated; use lambda_="):
        old = jaxal.strategies.glister(model, 3, regularizer="diversity", lam=0.5)
    assert old.lambda_ == 0.5
    with pytest.raises(ValueError, match="pass gradient= only"):
        jaxal.strategies.badge(model, 3, gradient="bias", embedding="bias")
    with pytest.warns(DeprecationWarning, match="use jaxal.selectors.submodular_mutual_info"):
        combinator = jaxal.selectors.mutual_information
    assert combinator is jaxal.selectors.submodular_mutual_information

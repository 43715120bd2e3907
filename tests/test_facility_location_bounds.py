"""Facility location with a floor and a cap per row against NumPy float64, dense and on the
fly, square and rectangular; and the old names of the selectors that changed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import selectors
from jaxal.selectors import Similarity, facility_location, similarity_kernel


def reference_value(kernel, members, floor, cap, ground):
    """f(S) = sum_{i in V} [min(max(l_i, max_{j in S} K_ij), c_i) - min(l_i, c_i)], float64."""
    best = floor.copy()
    if members:
        best = np.maximum(best, kernel[:, members].max(axis=1))
    return float(np.sum((np.minimum(best, cap) - np.minimum(floor, cap))[ground]))


def reference_gains(kernel, members, floor, cap, ground):
    base = reference_value(kernel, members, floor, cap, ground)
    return np.array(
        [
            reference_value(kernel, [*members, e], floor, cap, ground) - base
            for e in range(kernel.shape[1])
        ]
    )


@pytest.mark.parametrize("on_the_fly", [False, True])
@pytest.mark.parametrize("shape", [(30, 30), (22, 30)])
@pytest.mark.parametrize("bounds", ["floor", "cap", "both", "none"])
def test_gains_match_numpy(on_the_fly, shape, bounds):
    m, n = shape
    rng = np.random.default_rng(m + n + len(bounds))
    rows, columns = rng.normal(size=(m, 4)), rng.normal(size=(n, 4))
    if m == n:
        columns = rows
    kernel64 = np.asarray(similarity_kernel(jnp.asarray(rows), jnp.asarray(columns)), np.float64)
    floor = rng.uniform(0.0, 0.6, size=m) if bounds in ("floor", "both") else np.zeros(m)
    cap = floor + rng.uniform(0.0, 0.5, size=m) if bounds in ("cap", "both") else np.full(m, np.inf)
    ground = rng.uniform(size=m) < 0.8
    members = [3, 11, 7]
    kernel = (
        Similarity(jnp.asarray(rows), jnp.asarray(columns), chunk_size=7)
        if on_the_fly
        else jnp.asarray(kernel64, jnp.float32)
    )
    fn = facility_location(
        kernel,
        ground=jnp.asarray(ground),
        floor=None if bounds in ("cap", "none") else jnp.asarray(floor),
        cap=None if bounds in ("floor", "none") else jnp.asarray(cap),
    )
    state = fn.init(len(members))
    for step in range(len(members) + 1):
        want = reference_gains(kernel64, members[:step], floor, cap, ground)
        np.testing.assert_allclose(np.asarray(fn.gains(state)), want, rtol=1e-5, atol=1e-5)
        some = jnp.asarray([0, 5, n - 1])
        np.testing.assert_allclose(np.asarray(fn.gains_at(state, some)), want[[0, 5, n - 1]],
                                   rtol=1e-5, atol=1e-5)  # fmt: skip
        if step < len(members):
            state = fn.update(state, jnp.int32(members[step]))


def test_greedy_with_bounds_matches_brute_force_first_pick_and_ties_low():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    kernel64 = np.asarray(similarity_kernel(jnp.asarray(x)), np.float64)
    floor, cap = rng.uniform(0, 0.3, 12), rng.uniform(0.4, 0.9, 12)
    fn = facility_location(
        jnp.asarray(kernel64, jnp.float32), floor=jnp.asarray(floor), cap=jnp.asarray(cap),
        symmetric=True,
    )  # fmt: skip
    picks, info = selectors.submodular_greedy(fn, jnp.ones(12, bool), 4)
    chosen: list[int] = []
    for t in range(4):  # plain greedy, ties to the lowest index
        ground = np.ones(12, bool)
        gains = reference_gains(kernel64, chosen, floor, cap, ground)
        gains[chosen] = -np.inf
        best = int(np.argmax(gains))
        assert int(picks[t]) == best
        np.testing.assert_allclose(float(info.gains[t]), gains[best], rtol=1e-5, atol=1e-6)
        chosen.append(best)


def test_floor_and_cap_shapes_are_checked():
    kernel = jnp.eye(5)
    with pytest.raises(ValueError, match="floor must have shape"):
        facility_location(kernel, floor=jnp.zeros(4))
    with pytest.raises(ValueError, match="cap must have shape"):
        facility_location(kernel, cap=jnp.zeros(6))


# --------------------------------------------------------------------------------------
# Old names
# --------------------------------------------------------------------------------------


def test_old_names_warn_and_return_what_they_returned():
    rng = np.random.default_rng(1)
    kernel = jnp.asarray(np.asarray(similarity_kernel(jnp.asarray(rng.normal(size=(9, 3))))))
    floor, cap = jnp.full(9, 0.1), jnp.full(9, 0.7)
    with pytest.warns(DeprecationWarning, match="use jaxal.selectors.facility_location"):
        capped = selectors.capped_facility_location
    old = capped(kernel, floor=floor, cap=cap)
    new = facility_location(kernel, floor=floor, cap=cap, symmetric=True)
    np.testing.assert_array_equal(
        np.asarray(old.gains(old.init(1))), np.asarray(new.gains(new.init(1)))
    )

    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(4, 9, 3))), axis=-1)
    candidates = jnp.ones(9, bool)
    with pytest.warns(DeprecationWarning, match="use jaxal.selectors.batchbald"):
        with_scores = selectors.batchbald_with_scores
    picks, batch_scores = with_scores(probs, candidates, 3, jax.random.key(0))
    selection = selectors.batchbald(probs, candidates, 3, jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(picks), np.asarray(selection.indices))
    np.testing.assert_array_equal(np.asarray(batch_scores), np.asarray(selection.info.scores))
    assert isinstance(selection, selectors.Selection)
    assert isinstance(selection.info, selectors.BatchBaldInfo)
    with pytest.warns(DeprecationWarning, match="use jaxal.selectors.glister"):
        assert callable(selectors.glister_with_gains)
    with pytest.raises(AttributeError, match="no attribute 'not_a_selector'"):
        selectors.not_a_selector  # noqa: B018

"""Stopping rules against the NumPy float64 references of ``tests/reference_stopping.py`` on
recorded histories: the round at which each fires (every round's decision, in fact), the
value it compared, jit against no jit; Cohen's kappa against scikit-learn; any_of, the
registry, the sentences and the errors."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from jaxal import stopping
from jaxal.stopping import RoundOutputs
from tests import reference_stopping as reference

ROUNDS = 8


def replay(rule, history, jit):
    """Every round's (stop, reason, state) of ``rule`` over ``history`` (RoundOutputs)."""
    update = jax.jit(rule.update) if jit else rule.update
    state = rule.init(history[0])
    out = []
    for outputs in history:
        state, stop, reason = update(state, outputs)
        assert stop.shape == () and stop.dtype == bool
        assert reason.shape == () and reason.dtype == jnp.int32
        out.append((bool(stop), int(reason), jax.device_get(state)))
    return out


def check(rule, history, expected, value_of=None, values=None):
    """``rule`` replayed with and without jit agrees with the reference decisions
    ``expected`` (and ``value_of(state)`` with ``values``); the two replays agree leaf by
    leaf. Returns the jitted replay."""
    assert any(expected) and not all(expected), "the history must make the rule fire, not always"
    eager, jitted = replay(rule, history, jit=False), replay(rule, history, jit=True)
    for (stop_e, reason_e, state_e), (stop_j, reason_j, state_j) in zip(eager, jitted, strict=True):
        assert (stop_e, reason_e) == (stop_j, reason_j)
        for a, b in zip(jax.tree.leaves(state_e), jax.tree.leaves(state_j), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert [stop for stop, _, _ in jitted] == expected
    assert all((reason > 0) == stop for stop, reason, _ in jitted)
    if value_of is not None:
        got = [value_of(state) for _, _, state in jitted]
        np.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-6)
    return jitted


def one_hot_probs(predictions, num_classes, rng):
    """float32 probabilities [S, C] whose argmax is ``predictions``."""
    scores = np.eye(num_classes)[predictions] * num_classes + rng.random(
        (len(predictions), num_classes)
    )
    return jnp.asarray(scores / scores.sum(axis=1, keepdims=True), jnp.float32)


# ------------------------------------------------------------------------------------------
# Cohen's kappa
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "num_classes", "seed"), [(7, 2, 0), (50, 3, 1), (300, 10, 2)])
def test_cohen_kappa_matches_sklearn_and_the_confusion_matrix(size, num_classes, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, num_classes, size)
    for b in (rng.integers(0, num_classes, size), np.where(rng.random(size) < 0.8, a, 0), a):
        got = float(stopping.cohen_kappa(a, b, num_classes))
        expected = cohen_kappa_score(a, b, labels=np.arange(num_classes))
        assert got == pytest.approx(expected, abs=1e-6)
        assert got == pytest.approx(reference.cohen_kappa(a, b, num_classes), abs=1e-6)
    assert float(jax.jit(stopping.cohen_kappa, static_argnums=2)(a, a, num_classes)) == 1.0


def test_cohen_kappa_of_constant_predictions():
    same = np.full(20, 2)
    # Both constant, one class: 0 / 0, undefined; 1.0 here (complete agreement).
    assert float(stopping.cohen_kappa(same, same, 3)) == 1.0
    assert reference.cohen_kappa(same, same, 3) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(cohen_kappa_score(same, same, labels=[0, 1, 2]))
    # Both constant, different classes; one constant, the other not: defined, as sklearn.
    other = np.arange(20) % 3
    for a, b in [(same, np.zeros(20, int)), (same, other), (other, same)]:
        expected = cohen_kappa_score(a, b, labels=[0, 1, 2])
        assert float(stopping.cohen_kappa(a, b, 3)) == pytest.approx(expected, abs=1e-6)


def test_cohen_kappa_stays_accurate_near_full_expected_agreement():
    # One point in 100,000 differs from the majority class in each labeling: p_e ~ 1 - 2e-5.
    # kappa = -1 / (S - 1); the float32 differences p_o - p_e and 1 - p_e would lose it.
    size = 100_000
    a, b = np.zeros(size, int), np.zeros(size, int)
    a[3], b[7] = 1, 1
    got = float(stopping.cohen_kappa(a, b, 2))
    assert got == pytest.approx(reference.cohen_kappa(a, b, 2), abs=1e-7)
    assert got == pytest.approx(-1 / (size - 1), rel=1e-2)


def test_cohen_kappa_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one shape with S >= 1"):
        stopping.cohen_kappa(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(ValueError, match="one shape with S >= 1"):
        stopping.cohen_kappa(np.zeros(0, int), np.zeros(0, int), 2)


# ------------------------------------------------------------------------------------------
# Each rule against its reference
# ------------------------------------------------------------------------------------------


def drifting_predictions(seed, size=200, num_classes=4):
    """Stop-set predictions over ROUNDS rounds, each round changing fewer of them."""
    rng = np.random.default_rng(seed)
    current = rng.integers(0, num_classes, size)
    history = [current]
    for share in [0.6, 0.3, 0.12, 0.04, 0.01, 0.0, 0.0][: ROUNDS - 1]:
        changed = rng.random(size) < share
        current = np.where(changed, rng.integers(0, num_classes, size), current)
        history.append(current)
    return history, rng


@pytest.mark.parametrize(
    ("threshold", "window", "aggregate", "seed"),
    [(0.99, 3, "mean", 0), (0.9, 3, "mean", 1), (0.95, 2, "min", 2), (0.8, 1, "mean", 3)],
)
def test_stabilizing_predictions(threshold, window, aggregate, seed):
    predictions, rng = drifting_predictions(seed)
    history = [RoundOutputs(stop_probs=one_hot_probs(p, 4, rng)) for p in predictions]
    expected, values = reference.stabilizing_predictions(
        predictions, 4, threshold, window, aggregate
    )
    assert all(abs(v - threshold) > 1e-5 for v in values if not np.isnan(v))
    rule = stopping.stabilizing_predictions(threshold=threshold, window=window, aggregate=aggregate)

    def value_of(state):
        if int(state.seen) - 1 < window:
            return np.nan
        return state.kappas.mean() if aggregate == "mean" else state.kappas.min()

    replayed = check(rule, history, expected, value_of, values)
    assert stopping.describe(rule, replayed[expected.index(True)][2]).startswith(
        f"predictions have been stable for {window} round"
    )


def test_stabilizing_predictions_never_fires_before_window_plus_one_rounds():
    same = one_hot_probs(np.zeros(30, int), 3, np.random.default_rng(0))
    rule = stopping.stabilizing_predictions(threshold=-1.0, window=4)
    stops = [stop for stop, _, _ in replay(rule, [RoundOutputs(stop_probs=same)] * 7, True)]
    assert stops == [False] * 4 + [True] * 3


def test_labeling_budget():
    rng = np.random.default_rng(0)
    labeled = list(np.cumsum(rng.integers(0, 9, ROUNDS)) + 20)
    history = [RoundOutputs(labeled=jnp.int32(count)) for count in labeled]
    budget = int(labeled[4] - labeled[0])
    expected, spent = reference.labeling_budget(labeled, budget)
    rule = stopping.labeling_budget(budget)
    replayed = check(rule, history, expected, lambda s: s.spent, spent)
    fired = expected.index(True)
    assert stopping.describe(rule, replayed[fired][2]) == (
        f"labeling budget spent: {int(spent[fired])} labels of {budget}"
    )
    assert stopping.describe(rule, replayed[0][2]) == f"0 of {budget} labels spent"


def pool_history(seed, size=120, num_classes=3):
    """Pool probabilities growing more certain each round, the unlabeled mask shrinking to
    nothing in the last round."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(size, num_classes))
    order = rng.permutation(size)
    probs, masks = [], []
    for t in range(ROUNDS):
        probs.append(np.asarray(jax.nn.softmax(jnp.asarray(logits * 2.0**t, jnp.float32))))
        unlabeled = np.ones(size, bool)
        unlabeled[order[: 10 * (t + 1) if t < ROUNDS - 1 else size]] = False
        masks.append(unlabeled)
    history = [
        RoundOutputs(pool_probs=jnp.asarray(p), unlabeled=jnp.asarray(m))
        for p, m in zip(probs, masks, strict=True)
    ]
    return history, probs, masks


@pytest.mark.parametrize(
    ("factory", "how"), [("overall_uncertainty", "mean"), ("max_confidence", "max")]
)
def test_pool_uncertainty_rules(factory, how):
    history, probs, masks = pool_history(0)
    _, values = reference.pool_uncertainty(probs, masks, 1.0, how)
    threshold = (values[3] + values[4]) / 2  # between two rounds: no value near it
    expected, values = reference.pool_uncertainty(probs, masks, threshold, how)
    rule = stopping.get(factory)(threshold=threshold)
    replayed = check(rule, history, expected, lambda s: s.value, values)
    reasons = [reason for _, reason, _ in replayed]
    assert reasons == [0, 0, 0, 0, 1, 1, 1, 2]  # 2: no unlabeled point left
    assert rule.reasons[2] == "no unlabeled point left"
    sentence = stopping.describe(rule, replayed[4][2])
    word = "mean" if how == "mean" else "largest"
    assert sentence.startswith(f"{word} uncertainty of the {masks[4].sum()} unlabeled points")
    assert sentence.endswith(f"below {threshold:g}") and "not below" not in sentence


def test_selected_accuracy():
    rng = np.random.default_rng(0)
    batch = 10
    labels = [np.full(batch, -1)]  # round 0: nothing selected
    predictions = [rng.integers(0, 5, batch)]
    for wrong in [6, 4, 1, 0, 3, 0, 2]:
        given = rng.integers(0, 5, batch)
        predicted = given.copy()
        predicted[:wrong] = (given[:wrong] + 1) % 5
        if wrong == 0:
            given[-3:] = -1  # unlabeled slots are skipped
            predicted[-3:] = (predicted[-3:] + 1) % 5
        labels.append(given)
        predictions.append(predicted)
    history = [
        RoundOutputs(batch_predictions=jnp.asarray(p), batch_labels=jnp.asarray(y))
        for p, y in zip(predictions, labels, strict=True)
    ]
    expected, accuracy = reference.selected_accuracy(predictions, labels, 0.85)
    rule = stopping.selected_accuracy(threshold=0.85)
    replayed = check(rule, history, expected, lambda s: s.accuracy, accuracy)
    assert stopping.describe(rule, replayed[0][2]) == "no labeled batch to check yet"
    assert stopping.describe(rule, replayed[4][2]) == (
        "the model predicted 1.000 of the 7 labels just given (reached 0.85)"
    )


@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "mode"),
    [
        ([0.5, 0.6, 0.6, 0.65, 0.64, 0.652, 0.66, 0.6, 0.58], 2, 0.005, "max"),
        ([2.0, 1.5, 1.6, 1.2, 1.25, 1.19, 1.3, 1.4, 1.1], 3, 0.02, "min"),
        ([0.5, np.nan, 0.7, 0.7, 0.71, 0.9, 0.9, 0.9], 1, 0.0, "max"),
    ],
)
def test_validation_plateau(values, patience, min_delta, mode):
    history = [RoundOutputs(validation=jnp.float32(v)) for v in values]
    expected, waits = reference.validation_plateau(values, patience, min_delta, mode)
    rule = stopping.validation_plateau(patience=patience, min_delta=min_delta, mode=mode)
    replayed = check(rule, history, expected, lambda s: s.wait, waits)
    fired = replayed[expected.index(True)][2]
    assert stopping.describe(rule, fired).startswith(f"no improvement for {patience} round")


def test_any_of_reports_the_first_rule_that_fires():
    budget = stopping.labeling_budget(10)
    plateau = stopping.validation_plateau(patience=2)
    rule = stopping.any_of(plateau, budget)
    assert rule.needs == ("validation", "labeled")
    assert rule.hparams["rules"] == ("validation_plateau", "labeling_budget")
    assert rule.reasons == (
        "continue",
        "validation_plateau: validation stopped improving",
        "labeling_budget: labeling budget spent",
    )
    labeled = [0, 5, 10, 15, 20]
    values = [0.5, 0.6, 0.6, 0.6, 0.7]  # plateau fires at round 3, the budget at round 2
    history = [
        RoundOutputs(labeled=jnp.int32(n), validation=jnp.float32(v))
        for n, v in zip(labeled, values, strict=True)
    ]
    replayed = replay(rule, history, jit=True)
    assert [reason for _, reason, _ in replayed] == [0, 0, 2, 1, 2]
    assert [stop for stop, _, _ in replayed] == [False, False, True, True, True]
    assert stopping.describe(rule, replayed[3][2]) == (
        "no improvement for 2 rounds (best validation 0.6000, patience 2); "
        "labeling budget spent: 15 labels of 10"
    )
    assert stopping.describe(rule, replayed[1][2]) == (
        "validation improved to 0.6000; 5 of 10 labels spent"
    )


# ------------------------------------------------------------------------------------------
# Registry and errors
# ------------------------------------------------------------------------------------------


def test_registry_builds_every_rule_with_defaults():
    for name, factory in stopping.REGISTRY.items():
        rule = factory(budget=5) if name == "labeling_budget" else factory()
        assert rule.name == name and stopping.get(name) is factory
        assert rule.reasons[0] == "continue" and set(rule.needs) <= set(RoundOutputs._fields)
    assert stopping.stabilizing_predictions().threshold == 0.99
    assert stopping.stabilizing_predictions().window == 3
    with pytest.raises(ValueError, match="Did you mean 'labeling_budget'"):
        stopping.get("labeling_budgt")


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: stopping.labeling_budget(0), ValueError, "budget must be >= 1"),
        (lambda: stopping.labeling_budget(2.5), TypeError, "budget must be a Python int"),
        (lambda: stopping.stabilizing_predictions(threshold=1.5), ValueError, r"\[-1, 1\]"),
        (lambda: stopping.stabilizing_predictions(window=0), ValueError, "window must be >= 1"),
        (lambda: stopping.stabilizing_predictions(aggregate="median"), ValueError, "'mean'"),
        (lambda: stopping.overall_uncertainty(threshold=0), ValueError, r"\(0, 1\]"),
        (lambda: stopping.max_confidence(threshold=True), TypeError, "real number"),
        (lambda: stopping.selected_accuracy(threshold=float("nan")), ValueError, "threshold"),
        (lambda: stopping.validation_plateau(patience=0), ValueError, "patience must be >= 1"),
        (lambda: stopping.validation_plateau(min_delta=-1), ValueError, "min_delta must be >= 0"),
        (lambda: stopping.validation_plateau(mode="up"), ValueError, "mode must be one of"),
        (lambda: stopping.any_of(), ValueError, "at least one rule"),
        (lambda: stopping.any_of("kappa"), TypeError, "StoppingRule arguments"),
        (
            lambda: stopping.any_of(stopping.labeling_budget(1), stopping.labeling_budget(2)),
            ValueError,
            "one rule name twice",
        ),
    ],
)
def test_bad_hyperparameters_are_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_missing_or_misshapen_outputs_are_named():
    rule = stopping.stabilizing_predictions()
    with pytest.raises(TypeError, match=r"needs outputs.stop_probs \(float \[S, C\]\)"):
        rule.init(RoundOutputs(labeled=jnp.int32(3)))
    with pytest.raises(ValueError, match=r"outputs.stop_probs must be float \[S, C\]"):
        rule.init(RoundOutputs(stop_probs=jnp.ones(4)))
    state = rule.init(RoundOutputs(stop_probs=jnp.ones((5, 2)) / 2))
    with pytest.raises(ValueError, match="use the same stop set every round"):
        rule.update(state, RoundOutputs(stop_probs=jnp.ones((6, 2)) / 2))
    with pytest.raises(TypeError, match="takes a jaxal.stopping.RoundOutputs"):
        stopping.labeling_budget(3).update(None, {"labeled": 3})
    with pytest.raises(ValueError, match="at least 2 classes"):
        stopping.overall_uncertainty().update(
            None, RoundOutputs(pool_probs=jnp.ones((4, 1)), unlabeled=jnp.ones(4, bool))
        )


def test_describe_needs_concrete_state():
    rule = stopping.labeling_budget(3)

    @jax.jit
    def traced(state):
        stopping.describe(rule, state)
        return state

    with pytest.raises(TypeError, match="call it outside jit"):
        traced(rule.init(RoundOutputs()))

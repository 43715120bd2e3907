"""Plain NumPy float64 references of the stopping rules, written from the definitions.

Nothing here imports jaxal. Each rule takes a whole recorded history (one entry per round)
and returns, per round, whether the rule says to stop after it, and the value it compared.
"""

from __future__ import annotations

import numpy as np


def cohen_kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
    """(p_o - p_e) / (1 - p_e) from the confusion matrix; 1.0 when p_e = 1 (both labelings
    one and the same constant class)."""
    confusion = np.zeros((num_classes, num_classes), np.float64)
    np.add.at(confusion, (np.asarray(a), np.asarray(b)), 1.0)
    confusion /= confusion.sum()
    observed = np.trace(confusion)
    expected = confusion.sum(axis=1) @ confusion.sum(axis=0)
    if expected == 1.0:
        return 1.0
    return float((observed - expected) / (1.0 - expected))


def stabilizing_predictions(
    predictions: list[np.ndarray], num_classes: int, threshold: float, window: int, aggregate: str
) -> tuple[list[bool], list[float]]:
    """Per round: stop (the aggregate of the last ``window`` kappas between successive
    rounds' predictions >= threshold, once there are ``window`` of them), and that
    aggregate (NaN before)."""
    kappas: list[float] = []
    stops, values = [], []
    for t, current in enumerate(predictions):
        if t > 0:
            kappas.append(cohen_kappa(current, predictions[t - 1], num_classes))
        if len(kappas) >= window:
            last = kappas[-window:]
            value = float(np.mean(last) if aggregate == "mean" else np.min(last))
            stops.append(value >= threshold)
            values.append(value)
        else:
            stops.append(False)
            values.append(float("nan"))
    return stops, values


def labeling_budget(labeled: list[int], budget: int) -> tuple[list[bool], list[float]]:
    """Per round: labels added since the first round >= budget, and that count."""
    spent = [count - labeled[0] for count in labeled]
    return [s >= budget for s in spent], [float(s) for s in spent]


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """-sum_c p_c log p_c / log C, with 0 log 0 = 0."""
    p = np.asarray(probs, np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -np.sum(p * logs, axis=-1) / np.log(p.shape[-1])


def pool_uncertainty(
    probs: list[np.ndarray], unlabeled: list[np.ndarray], threshold: float, how: str
) -> tuple[list[bool], list[float]]:
    """Per round: stop (no unlabeled point left, or the mean / max normalized entropy over
    the unlabeled points < threshold), and that mean / max (0 with none left)."""
    stops, values = [], []
    for p, mask in zip(probs, unlabeled, strict=True):
        u = normalized_entropy(p)[np.asarray(mask, bool)]
        if u.size == 0:
            stops.append(True)
            values.append(0.0)
            continue
        value = float(u.mean() if how == "mean" else u.max())
        stops.append(value < threshold)
        values.append(value)
    return stops, values


def selected_accuracy(
    predictions: list[np.ndarray], labels: list[np.ndarray], threshold: float
) -> tuple[list[bool], list[float]]:
    """Per round: stop (some batch point has a label, and the share predicted right
    >= threshold), and that share (0 with no labeled point)."""
    stops, values = [], []
    for predicted, given in zip(predictions, labels, strict=True):
        known = given >= 0
        if not known.any():
            stops.append(False)
            values.append(0.0)
            continue
        accuracy = float(np.mean(predicted[known] == given[known]))
        stops.append(accuracy >= threshold)
        values.append(accuracy)
    return stops, values


def validation_plateau(
    values: list[float], patience: int, min_delta: float, mode: str
) -> tuple[list[bool], list[float]]:
    """Per round: stop (``patience`` rounds since the best last improved by more than
    min_delta), and the rounds waited."""
    sign = 1.0 if mode == "max" else -1.0
    best = -np.inf * sign
    wait = 0
    stops, waits = [], []
    for value in values:
        if sign * (value - best) > min_delta:
            best, wait = value, 0
        else:
            wait += 1
        stops.append(wait >= patience)
        waits.append(float(wait))
    return stops, waits

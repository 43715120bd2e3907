"""Plain NumPy float64 references for the submodular selectors, written from the math.

Nothing here imports jaxal. Set functions are evaluated from their definitions on explicit
index lists, marginal gains as f(S + e) - f(S), and the greedy is the textbook loop (ties
to the lowest index). Small N only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

SetFn = Callable[[Sequence[int]], float]

# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------


def cosine_kernel(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """[N, M]: x_i . y_j / (|x_i| |y_j|), 0 if a norm is 0; square: diagonal 1 (0 for zero rows)."""
    x = np.asarray(x, np.float64)
    other = x if y is None else np.asarray(y, np.float64)
    out = np.zeros((x.shape[0], other.shape[0]))
    for i, a in enumerate(x):
        for j, b in enumerate(other):
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            out[i, j] = a @ b / (na * nb) if na > 0 and nb > 0 else 0.0
    if y is None:
        np.fill_diagonal(out, (np.linalg.norm(x, axis=1) > 0).astype(np.float64))
    return out


def euclidean_kernel(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """[N, M]: exp(-||x_i - y_j|| / F), the distance not squared, F = number of features."""
    x = np.asarray(x, np.float64)
    other = x if y is None else np.asarray(y, np.float64)
    distances = np.sqrt(np.sum((x[:, None, :] - other[None, :, :]) ** 2, axis=-1))
    return np.exp(-distances / x.shape[1])


def kernel(x: np.ndarray, y: np.ndarray | None = None, metric: str = "cosine") -> np.ndarray:
    return cosine_kernel(x, y) if metric == "cosine" else euclidean_kernel(x, y)


# --------------------------------------------------------------------------------------
# Set functions: f(S) for an index list S (ground = the rows in V, default all)
# --------------------------------------------------------------------------------------


def _ground(k: np.ndarray, ground: np.ndarray | None) -> np.ndarray:
    return np.ones(k.shape[0], bool) if ground is None else np.asarray(ground, bool)


def facility_location(k, s, ground=None) -> float:
    """sum_{i in V} max(0, max_{j in S} K_ij)."""
    k = np.asarray(k, np.float64)
    rows = np.flatnonzero(_ground(k, ground))
    return float(sum(max([0.0] + [k[i, j] for j in s]) for i in rows))


def graph_cut(k, s, lambda_, ground=None) -> float:
    """sum_{i in V, j in S} K_ij - lambda sum_{i, j in S} K_ij (ordered pairs, i = j too)."""
    k = np.asarray(k, np.float64)
    rows = np.flatnonzero(_ground(k, ground))
    coverage = sum(k[i, j] for i in rows for j in s)
    return float(coverage - lambda_ * sum(k[i, j] for i in s for j in s))


def saturated_coverage(k, s, alpha, ground=None) -> float:
    """sum_{i in V} min(sum_{j in S} K_ij, alpha sum_{j in V} K_ij)."""
    k = np.asarray(k, np.float64)
    v = np.flatnonzero(_ground(k, ground))
    return float(sum(min(sum(k[i, j] for j in s), alpha * sum(k[i, j] for j in v)) for i in v))


def sum_redundancy(k, s) -> float:
    """-sum_{i, j in S} K_ij."""
    k = np.asarray(k, np.float64)
    return float(-sum(k[i, j] for i in s for j in s))


CONCAVE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sqrt": np.sqrt,
    "log": np.log1p,
    "inverse": lambda x: 1.0 - 1.0 / (1.0 + x),
}


def feature_based(x, s, concave="log", weights=None) -> float:
    """sum_f w_f g(sum_{j in S} X_jf)."""
    x = np.asarray(x, np.float64)
    w = np.ones(x.shape[1]) if weights is None else np.asarray(weights, np.float64)
    totals = x[list(s)].sum(axis=0) if len(s) else np.zeros(x.shape[1])
    return float(np.sum(w * CONCAVE[concave](totals)))


def log_determinant(k, s, lambda_) -> float:
    """log det(K_S + lambda I); 0 for the empty set, -inf when singular."""
    if not len(s):
        return 0.0
    k = np.asarray(k, np.float64)
    sign, logdet = np.linalg.slogdet(k[np.ix_(list(s), list(s))] + lambda_ * np.eye(len(s)))
    return float(logdet) if sign > 0 else -np.inf


def disparity_sum(k, s) -> float:
    """sum over unordered pairs {i, j} in S of 1 - K_ij."""
    k = np.asarray(k, np.float64)
    return float(sum(1.0 - k[i, j] for i, j in itertools.combinations(s, 2)))


def disparity_min(k, s) -> float:
    """min(1, min over pairs of 1 - K_ij); 0 when |S| < 2 (submodlib's definition)."""
    if len(s) < 2:
        return 0.0
    k = np.asarray(k, np.float64)
    return float(min([1.0] + [1.0 - k[i, j] for i, j in itertools.combinations(s, 2)]))


# --------------------------------------------------------------------------------------
# Gains, greedy, brute force
# --------------------------------------------------------------------------------------


def marginal_gains(f: SetFn, n: int, s: Sequence[int]) -> np.ndarray:
    """[n]: f(S + e) - f(S) for every e not in S; NaN for members of S."""
    base = f(list(s))
    return np.array([np.nan if e in s else f([*s, e]) - base for e in range(n)])


def naive_greedy(
    f: SetFn, n: int, candidates: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """The textbook greedy: the candidate with the largest gain, ties to the lowest index.

    Returns (picks int [budget] with -1 once no candidate is left, gains float [budget]).
    """
    available = np.asarray(candidates, bool).copy()
    picks, gains = np.full(budget, -1), np.zeros(budget)
    chosen: list[int] = []
    for t in range(budget):
        if not available.any():
            break
        base = f(chosen)
        best, index = -np.inf, -1
        for e in np.flatnonzero(available):
            gain = f([*chosen, int(e)]) - base
            if index < 0 or gain > best:
                best, index = gain, int(e)
        picks[t], gains[t] = index, best
        chosen.append(index)
        available[index] = False
    return picks, gains


def stochastic_greedy(
    f: SetFn, candidates: np.ndarray, budget: int, draw: Callable[[int, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Stochastic greedy on given draws: step t evaluates ``draw(t, available)`` (indices),
    keeps its available elements and picks the largest gain, ties to the lowest index.

    Returns picks int [budget], -1 once no candidate is left.
    """
    available = np.asarray(candidates, bool).copy()
    picks = np.full(budget, -1)
    chosen: list[int] = []
    for t in range(budget):
        sample = sorted(int(e) for e in draw(t, available) if available[e])
        if not sample:
            break
        base = f(chosen)
        gains = [f([*chosen, e]) - base for e in sample]
        index = sample[int(np.argmax(gains))]  # first maximum: the lowest index
        picks[t] = index
        chosen.append(index)
        available[index] = False
    return picks


def greedy_margins(f: SetFn, n: int, picks: Sequence[int], candidates: np.ndarray) -> np.ndarray:
    """Per step of a given pick sequence: (best gain) - (gain of the runner-up).

    Replays ``picks`` (teacher forcing) and returns, for every step, the gap between the
    largest and the second largest reference gain among the remaining candidates (+inf
    with a single candidate left). Small gaps mark near-ties where float32 may differ.
    """
    available = np.asarray(candidates, bool).copy()
    chosen: list[int] = []
    gaps = []
    for index in picks:
        if index < 0:
            break
        base = f(chosen)
        gains = sorted(
            (f([*chosen, int(e)]) - base for e in np.flatnonzero(available)), reverse=True
        )
        gaps.append(gains[0] - gains[1] if len(gains) > 1 else np.inf)
        chosen.append(int(index))
        available[index] = False
    return np.array(gaps)


def regret(f: SetFn, picks: Sequence[int], candidates: np.ndarray) -> np.ndarray:
    """Per step of ``picks`` (teacher forcing): best reference gain minus the pick's gain."""
    available = np.asarray(candidates, bool).copy()
    chosen: list[int] = []
    out = []
    for index in picks:
        if index < 0:
            break
        base = f(chosen)
        best = max(f([*chosen, int(e)]) - base for e in np.flatnonzero(available))
        out.append(best - (f([*chosen, int(index)]) - base))
        chosen.append(int(index))
        available[index] = False
    return np.array(out)


def brute_force_max(f: SetFn, candidates: np.ndarray, k: int) -> float:
    """max f(S) over all k-subsets of the candidates (tiny N only)."""
    indices = [int(i) for i in np.flatnonzero(candidates)]
    return max(f(list(s)) for s in itertools.combinations(indices, k))

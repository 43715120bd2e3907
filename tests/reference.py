"""Plain NumPy float64 reference implementations, written from the math.

Nothing here imports jaxal: these loops are the specification the jit-compiled selectors and
scores are checked against. They favour obviousness over speed (small N only).
"""

from __future__ import annotations

import itertools

import numpy as np

# --------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------


def entropy(probs: np.ndarray) -> np.ndarray:
    """-sum_c p_c log p_c over the last axis, with 0 log 0 = 0."""
    p = np.asarray(probs, np.float64)
    safe = np.where(p > 0, p, 1.0)
    return -np.sum(np.where(p > 0, p * np.log(safe), 0.0), axis=-1)


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """1 - max_c p_c."""
    return 1.0 - np.max(np.asarray(probs, np.float64), axis=-1)


def margin(probs: np.ndarray) -> np.ndarray:
    """p_(2) - p_(1): second largest minus largest probability (<= 0)."""
    s = np.sort(np.asarray(probs, np.float64), axis=-1)
    return s[..., -2] - s[..., -1]


def mutual_information(mc_probs: np.ndarray) -> np.ndarray:
    """H(mean_s p_s) - mean_s H(p_s), clipped at 0. mc_probs: [S, N, C]."""
    p = np.asarray(mc_probs, np.float64)
    value = entropy(p.mean(axis=0)) - entropy(p).mean(axis=0)
    return np.maximum(value, 0.0)


# --------------------------------------------------------------------------------------
# Top-k
# --------------------------------------------------------------------------------------


def top_k(scores: np.ndarray, candidates: np.ndarray, budget: int) -> np.ndarray:
    """Stable descending top-k over the candidates; ties to the lower index; -1 fill.

    ``scores`` must be free of NaN (the rank of NaN is a jaxal convention, tested apart).
    """
    scores = np.asarray(scores, np.float64)
    order = [i for i in np.argsort(-scores, kind="stable") if candidates[i]]
    out = np.full(budget, -1, np.int64)
    taken = order[:budget]
    out[: len(taken)] = taken
    return out


# --------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------


def sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] squared Euclidean distances by explicit differences (no expansion)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)


def min_sq_distances_to_members(points: np.ndarray, members: np.ndarray) -> np.ndarray:
    """[N]: squared distance to the nearest member, +inf when there is none."""
    points = np.asarray(points, np.float64)
    out = np.full(points.shape[0], np.inf)
    for j in np.flatnonzero(members):
        out = np.minimum(out, np.sum((points - points[j]) ** 2, axis=1))
    return out


def outer_materialize(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row i = outer(left[i], right[i]).ravel(), class-major, in float64."""
    left = np.asarray(left, np.float64)
    right = np.asarray(right, np.float64)
    return np.stack([np.outer(a, h).ravel() for a, h in zip(left, right, strict=True)])


# --------------------------------------------------------------------------------------
# Greedy selectors
# --------------------------------------------------------------------------------------


def k_center_greedy(
    points: np.ndarray,
    candidates: np.ndarray,
    reference: np.ndarray,
    budget: int,
    first: int | None = None,
) -> np.ndarray:
    """Greedy k-center: start from the min distance to ``reference``; pick the furthest.

    With an empty reference the first pick must be supplied as ``first`` (jaxal draws it
    from its key); later picks are deterministic. Ties go to the lowest index.
    """
    points = np.asarray(points, np.float64)
    n = points.shape[0]
    nearest = min_sq_distances_to_members(points, reference)
    available = np.asarray(candidates, bool).copy()
    out = np.full(budget, -1, np.int64)
    for t in range(budget):
        if not available.any():
            break
        if t == 0 and not np.any(reference):
            if first is None:
                raise ValueError("an empty reference set needs an explicit first pick")
            index = first
        else:
            best, index = -np.inf, -1
            for i in range(n):
                if available[i] and nearest[i] > best:
                    best, index = nearest[i], i
        out[t] = index
        available[index] = False
        nearest = np.minimum(nearest, np.sum((points - points[index]) ** 2, axis=1))
    return out


def sample_by_weight(weights: np.ndarray, uniform: float) -> int:
    """Smallest i with cumsum(w)[i] > u * sum(w)."""
    cumulative = np.cumsum(np.asarray(weights, np.float64))
    threshold = uniform * cumulative[-1]
    for i, c in enumerate(cumulative):
        if c > threshold:
            return i
    raise AssertionError("unreachable for u < 1 and a positive sum")


def kmeans_plusplus(
    points: np.ndarray, candidates: np.ndarray, uniforms: np.ndarray, first: str = "uniform"
) -> np.ndarray:
    """D^2 sampling from explicit uniforms, restricted to the available candidates."""
    points = np.asarray(points, np.float64)
    n = points.shape[0]
    budget = len(uniforms)
    available = np.asarray(candidates, bool).copy()
    chosen: list[int] = []
    out = np.full(budget, -1, np.int64)
    for t in range(budget):
        if not available.any():
            break
        if t == 0 and first == "max_norm":
            norms = np.sum(points**2, axis=1)
            best, index = -np.inf, -1
            for i in range(n):
                if available[i] and norms[i] > best:
                    best, index = norms[i], i
        else:
            if chosen:
                nearest = np.min(sq_distances(points, points[chosen]), axis=1)
            else:
                nearest = np.ones(n)
            weights = np.where(available, nearest, 0.0)
            if weights.sum() <= 0:
                weights = available.astype(np.float64)
            index = sample_by_weight(weights, float(uniforms[t]))
        out[t] = index
        chosen.append(index)
        available[index] = False
    return out


# --------------------------------------------------------------------------------------
# k-means
# --------------------------------------------------------------------------------------


def lloyd_step(points: np.ndarray, candidates: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """One Lloyd update over the candidates; an empty cluster keeps its center."""
    points = np.asarray(points, np.float64)
    centers = np.asarray(centers, np.float64)
    selected = points[np.asarray(candidates, bool)]
    assignment = np.argmin(sq_distances(selected, centers), axis=1)
    new = centers.copy()
    for k in range(centers.shape[0]):
        members = selected[assignment == k]
        if len(members):
            new[k] = members.mean(axis=0)
    return new


def inertia(points: np.ndarray, candidates: np.ndarray, centers: np.ndarray) -> float:
    """Summed squared distance of the candidates to their nearest center."""
    selected = np.asarray(points, np.float64)[np.asarray(candidates, bool)]
    return float(np.sum(np.min(sq_distances(selected, centers), axis=1)))


def lloyd(
    points: np.ndarray,
    candidates: np.ndarray,
    centers: np.ndarray,
    max_iter: int,
    tol: float = 0.0,
) -> tuple[np.ndarray, float]:
    """At most ``max_iter`` Lloyd steps; the first always runs, and it stops after a step
    that lowers the inertia by no more than ``tol`` times the inertia before it.

    Returns (centers, inertia of the returned centers).
    """
    centers = np.asarray(centers, np.float64)
    current = inertia(points, candidates, centers)
    for _ in range(max_iter):
        new = lloyd_step(points, candidates, centers)
        new_inertia = inertia(points, candidates, new)
        improved = current - new_inertia > tol * current
        centers, current = new, new_inertia
        if not improved:
            break
    return centers, current


def nearest_distinct(points: np.ndarray, candidates: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """For each center in order, the nearest not-yet-taken candidate (lowest index on ties)."""
    distances = sq_distances(points, centers)
    available = np.asarray(candidates, bool).copy()
    out = np.full(centers.shape[0], -1, np.int64)
    for t in range(centers.shape[0]):
        if not available.any():
            break
        index = int(np.argmin(np.where(available, distances[:, t], np.inf)))
        out[t] = index
        available[index] = False
    return out


# --------------------------------------------------------------------------------------
# Brute force
# --------------------------------------------------------------------------------------


def covering_radius(points: np.ndarray, centers: list[int] | np.ndarray) -> float:
    """max_i min_{c in centers} ||x_i - x_c|| (Euclidean, not squared)."""
    d = sq_distances(points, np.asarray(points, np.float64)[list(centers)])
    return float(np.sqrt(np.max(np.min(d, axis=1))))


def optimal_k_center_radius(points: np.ndarray, k: int) -> float:
    """The optimal k-center covering radius over all k-subsets (tiny N only)."""
    n = np.asarray(points).shape[0]
    return min(covering_radius(points, c) for c in itertools.combinations(range(n), k))

"""Plain NumPy float64 references for the SIMILAR information measures, from their definitions.

Nothing here imports jaxal. Every measure is a set function of an index list A over the
pool, evaluated from the definitions of DISTIL's SMI / SCG / SCMI (reference section 4):
submodlib's base functions over explicit block kernels, combined as f(A | P) =
f(A + P) - f(P), I(A; Q) = f(A) + f(Q) - f(A + Q) and I(A; Q | P) = f(A + P) + f(Q + P) -
f(A + Q + P) - f(P), or the closed forms of fl2mi, gcmi and com. Kernels are DISTIL's K3:
(K + 1) / 2 of the cosine or euclidean similarity. Small sets only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:
    from tests import reference_submodular as base
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    import reference_submodular as base  # type: ignore[no-redef]


def k3(x: np.ndarray, y: np.ndarray | None = None, metric: str = "cosine") -> np.ndarray:
    """DISTIL's K3: (K + 1) / 2, K the cosine or euclidean similarity (square: exact diagonal)."""
    return (base.kernel(x, y, metric) + 1.0) / 2.0


class Kernels:
    """The K3 kernels of a pool, a query set and a private set (float64)."""

    def __init__(self, pool, query=None, private=None, metric="cosine"):
        self.n = len(pool)
        self.s = k3(pool, metric=metric)
        self.sq = None if query is None else k3(pool, query, metric)
        self.sp = None if private is None else k3(pool, private, metric)
        self.sqq = None if query is None else k3(query, metric=metric)
        self.spp = None if private is None else k3(private, metric=metric)
        self.sqp = None if query is None or private is None else k3(query, private, metric)


def _fl(k: np.ndarray, rows: np.ndarray, x: Sequence[int]) -> float:
    """Facility location: sum_{i in rows} max(0, max_{j in X} K_ij)."""
    if not len(x):
        return 0.0
    return float(np.sum(np.maximum(0.0, k[np.ix_(rows, list(x))].max(axis=1))))


def _gc(k: np.ndarray, rows: np.ndarray, x: Sequence[int], lambda_: float) -> float:
    """Graph cut: sum_{i in rows, j in X} K_ij - lambda sum_{i, j in X} K_ij."""
    x = list(x)
    return float(k[np.ix_(rows, x)].sum() - lambda_ * k[np.ix_(x, x)].sum())


def _logdet(k: np.ndarray, x: Sequence[int], lambda_: float) -> float:
    x = list(x)
    if not x:
        return 0.0
    sign, value = np.linalg.slogdet(k[np.ix_(x, x)] + lambda_ * np.eye(len(x)))
    return float(value) if sign > 0 else -np.inf


def _rows(n: int, ground) -> np.ndarray:
    return np.flatnonzero(np.ones(n, bool) if ground is None else np.asarray(ground, bool))


def _mi(f, a, q) -> float:
    return f(a) + f(q) - f([*a, *q])


def _cmi(f, a, q, p) -> float:
    return f([*a, *p]) + f([*q, *p]) - f([*a, *q, *p]) - f(p)


def _blocks(ks: Kernels, eta: float, nu: float, square: bool, qp_scale: float = 1.0):
    """The block kernel over V + Q + P (the sets present), and the index lists of Q and P.

    Rectangular (rows V, columns V + Q + P: [S, eta Sq, nu Sp]) or square (with the Q-Q,
    P-P and Q-P blocks; the Q-P block times ``qp_scale``).
    """
    n = ks.n
    q = 0 if ks.sq is None else ks.sq.shape[1]
    p = 0 if ks.sp is None else ks.sp.shape[1]
    m = n + q + p
    k = np.zeros((m if square else n, m))
    k[:n, :n] = ks.s
    if q:
        k[:n, n : n + q] = eta * ks.sq
    if p:
        k[:n, n + q :] = nu * ks.sp
    if square:
        k[n:, :n] = k[:n, n:].T
        if q:
            k[n : n + q, n : n + q] = ks.sqq
        if p:
            k[n + q :, n + q :] = ks.spp
        if q and p:
            k[n : n + q, n + q :] = qp_scale * ks.sqp
            k[n + q :, n : n + q] = qp_scale * ks.sqp.T
    return k, list(range(n, n + q)), list(range(n + q, m))


# --- SMI ----------------------------------------------------------------------------------


def fl1mi(ks: Kernels, a, eta=1.0, ground=None) -> float:
    """sum_{i in V} min(max(0, max_{j in A} S_ij), eta max_q Sq_iq)."""
    rows = _rows(ks.n, ground)
    best = ks.s[np.ix_(rows, list(a))].max(axis=1) if len(a) else np.zeros(len(rows))
    qmax = eta * ks.sq[rows].max(axis=1)
    return float(np.sum(np.minimum(np.maximum(best, 0.0), qmax)))


def fl1mi_as_mi(ks: Kernels, a, eta=1.0, ground=None) -> float:
    """The same as the mutual information of facility location over V + Q."""
    k, q, _ = _blocks(ks, eta, 1.0, square=False)
    rows = _rows(ks.n, ground)
    return _mi(lambda x: _fl(k, rows, x), list(a), q)


def fl2mi(ks: Kernels, a, eta=1.0) -> float:
    """sum_q max(0, max_{j in A} Sq_jq) + eta sum_{j in A} max_q Sq_jq."""
    a = list(a)
    cover = np.maximum(0.0, ks.sq[a].max(axis=0)).sum() if a else 0.0
    return float(cover + eta * ks.sq[a].max(axis=1).sum())


def gcmi(ks: Kernels, a) -> float:
    """sum_{j in A} sum_q Sq_jq."""
    return float(ks.sq[list(a)].sum())


def com(ks: Kernels, a, eta=1.0) -> float:
    """eta sum_{j in A} log(1 + sum_q Sq_jq) + sum_q log(1 + sum_{j in A} Sq_jq)."""
    a = list(a)
    modular = np.log1p(ks.sq[a].sum(axis=1)).sum()
    concave = np.log1p(ks.sq[a].sum(axis=0)).sum() if a else 0.0
    return float(eta * modular + concave)


def logdetmi(ks: Kernels, a, eta=1.0, lambda_=1.0) -> float:
    """f(A) + f(Q) - f(A + Q), f = log det(K_X + lambda I), K = [[S, eta Sq], [., S_QQ]]."""
    k, q, _ = _blocks(ks, eta, 1.0, square=True)
    return _mi(lambda x: _logdet(k, x, lambda_), list(a), q)


# --- SCG ----------------------------------------------------------------------------------


def flcg(ks: Kernels, a, nu=1.0, ground=None) -> float:
    """f(A + P) - f(P), f facility location over rows V, columns V + P ([S, nu Sp])."""
    k, _, p = _blocks(ks, 1.0, nu, square=False)
    rows = _rows(ks.n, ground)
    return _fl(k, rows, [*a, *p]) - _fl(k, rows, p)


def gccg(ks: Kernels, a, nu=1.0, lambda_=1.0, ground=None) -> float:
    """f(A + P) - f(P), f graph cut over V + P with coverage rows V."""
    k, _, p = _blocks(ks, 1.0, nu, square=True)
    rows = _rows(ks.n, ground)
    return _gc(k, rows, [*a, *p], lambda_) - _gc(k, rows, p, lambda_)


def logdetcg(ks: Kernels, a, nu=1.0, lambda_=1.0) -> float:
    """f(A + P) - f(P), f = log det over K = [[S, nu Sp], [., S_PP]]."""
    k, _, p = _blocks(ks, 1.0, nu, square=True)
    return _logdet(k, [*a, *p], lambda_) - _logdet(k, p, lambda_)


# --- SCMI ---------------------------------------------------------------------------------


def flcmi(ks: Kernels, a, eta=1.0, nu=1.0, ground=None) -> float:
    """I(A; Q | P) of facility location over rows V, columns V + Q + P ([S, eta Sq, nu Sp])."""
    k, q, p = _blocks(ks, eta, nu, square=False)
    rows = _rows(ks.n, ground)
    return _cmi(lambda x: _fl(k, rows, x), list(a), q, p)


def logdetcmi(ks: Kernels, a, eta=1.0, nu=1.0, lambda_=1.0) -> float:
    """I(A; Q | P) of log det over the full block kernel (the Q-P block unscaled)."""
    k, q, p = _blocks(ks, eta, nu, square=True)
    return _cmi(lambda x: _logdet(k, x, lambda_), list(a), q, p)


MEASURES = {
    "fl1mi": (fl1mi, ("query",), ("eta",), True),
    "fl2mi": (fl2mi, ("query",), ("eta",), False),
    "gcmi": (gcmi, ("query",), (), False),
    "logdetmi": (logdetmi, ("query",), ("eta", "lambda_"), False),
    "com": (com, ("query",), ("eta",), False),
    "flcg": (flcg, ("private",), ("nu",), True),
    "gccg": (gccg, ("private",), ("nu", "lambda_"), True),
    "logdetcg": (logdetcg, ("private",), ("nu", "lambda_"), False),
    "flcmi": (flcmi, ("query", "private"), ("eta", "nu"), True),
    "logdetcmi": (logdetcmi, ("query", "private"), ("eta", "nu", "lambda_"), False),
}
"""name -> (f(kernels, A, **hparams), the sets it reads, its hyperparameters, takes ground)."""


def set_function(name: str, ks: Kernels, ground=None, **hparams):
    """The measure as a set function of an index list, with the hyperparameters it reads."""
    f, _, names, takes_ground = MEASURES[name]
    kwargs = {k: v for k, v in hparams.items() if k in names}
    if takes_ground:
        kwargs["ground"] = ground
    return lambda a: f(ks, list(a), **kwargs)


# --- the end-to-end strategies ------------------------------------------------------------


def gradient_embedding(logits: np.ndarray, hidden: np.ndarray, kind: str, labels=None):
    """DISTIL's get_grad_embedding, materialized: g = softmax - onehot, [g, g (x) h]."""
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    probs = shifted / shifted.sum(-1, keepdims=True)
    labels = probs.argmax(-1) if labels is None else np.asarray(labels)
    g = probs - np.eye(probs.shape[1])[labels]
    linear = np.einsum("nc,nd->ncd", g, np.asarray(hidden, np.float64)).reshape(len(g), -1)
    return {"bias": g, "linear": linear, "bias_linear": np.concatenate([g, linear], 1)}[kind]

"""DropQuery against a NumPy float64 reference of the reference code's algorithm (with the
strategy's own dropout masks) and against scikit-activeml's DropQuery."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal.model import mc_map
from tests.test_herding import labeled_mask, linear_model

D, C = 5, 3


def keep_masks(x, key, mc_samples, rate):
    """bool [N, M, D]: the units the strategy keeps in each dropout pass, read through an
    identity head (the masks depend on the key, the point's index, D and the rate only).
    The strategy's dropout passes use the first of ``jax.random.split(key, 3)``."""
    probe = jaxal.Model(lambda p, x, rng: (x, x), head=lambda p, e: e, head_dropout=rate)
    dropout_key = jax.random.split(key, 3)[0]
    dropped = mc_map(
        probe, None, jnp.asarray(x), dropout_key, mc_samples, 64,
        lambda s: jnp.swapaxes(s, 0, 1), logits=True,
    )  # fmt: skip
    return np.asarray(dropped) != 0


def candidates_reference(x, w, b, keep, rate, labeled, wanted):
    """The reference code's candidates (ALFM dropout.py): mismatch counts of M
    inverted-dropout passes of the head against the plain prediction, the threshold
    lowered from floor(M / 2) while fewer than ``wanted`` unlabeled points pass."""
    x, w, b = (np.asarray(a, np.float64) for a in (x, w, b))
    predicted = np.argmax(x @ w + b, axis=1)
    dropped = (x[:, None, :] * keep / (1 - rate)) @ w + b
    mismatch = (np.argmax(dropped, axis=2) != predicted[:, None]).sum(1)
    threshold = keep.shape[1] // 2
    while (~labeled & (mismatch > threshold)).sum() < wanted and threshold > 0:
        threshold -= 1
    return ~labeled & (mismatch > threshold), mismatch


def separated_blobs(seed, n=90, centers=5, spread=0.3):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centers, D)) * 10
    blob = rng.integers(centers, size=n)
    return (means[blob] + rng.normal(size=(n, D)) * spread).astype(np.float32), blob


def params_for(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(D, C)) * scale, jnp.float32),
        "b": jnp.asarray(rng.normal(size=C), jnp.float32),
    }


@functools.cache
def _dropquery(budget, **hparams):
    return jaxal.strategies.dropquery(linear_model(), budget, **hparams)


@pytest.mark.parametrize(
    ("seed", "hparams"),
    [(0, {}), (1, {"mc_samples": 5, "dropout_rate": 0.5, "candidates_per_pick": 0})],
)
def test_candidates_and_clusters_match_the_reference(seed, hparams):
    """Separated blobs: the picks are, for each blob holding candidates, the candidate
    nearest the mean of that blob's candidates (k-means' fixed point), budget = the
    number of such blobs."""
    x, blob = separated_blobs(seed)
    mask = labeled_mask(len(x), 10, seed)
    params = params_for(seed)
    key = jax.random.key(seed)
    rate, m = hparams.get("dropout_rate", 0.75), hparams.get("mc_samples", 3)
    keep = keep_masks(x, key, m, rate)
    # The budget needs the candidates, which need the budget (the widening): iterate.
    budget = 5
    for _ in range(5):
        wanted = hparams.get("candidates_per_pick", 25) * budget
        chosen, _ = candidates_reference(x, params["w"], params["b"], keep, rate, mask, wanted)
        budget = len(set(blob[chosen].tolist()))
    assert budget >= 2
    expected = set()
    for k in set(blob[chosen].tolist()):
        members = np.flatnonzero(chosen & (blob == k))
        mean = x[members].astype(np.float64).mean(0)
        expected.add(int(members[np.argmin(((x[members] - mean) ** 2).sum(1))]))
    strategy = jaxal.strategies.dropquery(linear_model(), budget, normalize=False, **hparams)
    picks = np.asarray(strategy.select(params, jaxal.Pool.create(x, labeled=mask), key))
    assert set(picks.tolist()) == expected


def test_fill_after_too_few_candidates():
    """A low dropout rate: fewer candidates than the budget; they all come first, then
    uniform random unlabeled non-candidates."""
    x, _ = separated_blobs(2)
    mask = labeled_mask(len(x), 10, 2)
    params, key = params_for(2, scale=3.0), jax.random.key(2)
    keep = keep_masks(x, key, 3, 0.1)
    chosen, _ = candidates_reference(x, params["w"], params["b"], keep, 0.1, mask, 25 * 12)
    count = int(chosen.sum())
    assert 0 < count < 12
    strategy = _dropquery(12, dropout_rate=0.1)
    picks = np.asarray(strategy.select(params, jaxal.Pool.create(x, labeled=mask), key))
    assert set(picks[:count].tolist()) == set(np.flatnonzero(chosen).tolist())
    rest = picks[count:]
    assert len(set(picks.tolist())) == 12 and not chosen[rest].any() and not mask[rest].any()


def test_cold_start_clusters_every_point():
    """No labeled point: k-means over all points (the reference's centroid init)."""
    x, blob = separated_blobs(3, centers=4)
    picks = _dropquery(4).select(params_for(3), jaxal.Pool.create(x), jax.random.key(3))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = set()
    for k in range(4):
        members = np.flatnonzero(blob == k)
        mean = unit[members].astype(np.float64).mean(0)
        expected.add(int(members[np.argmin(((unit[members] - mean) ** 2).sum(1))]))
    assert set(np.asarray(picks).tolist()) == expected


class _GivenMasks(np.random.RandomState):
    """A RandomState whose ``choice`` returns given dropout masks (True = dropped), in
    order: scikit-activeml's DropQuery, given it as ``random_state_``, then drops exactly
    the units jaxal drops."""

    def __init__(self, dropped):
        super().__init__(0)
        self._dropped = list(dropped)

    def choice(self, *args, **kwargs):
        return self._dropped.pop(0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 5])
def test_same_candidates_as_scikit_activeml(seed):
    """scikit-activeml's DropQuery with jaxal's masks, a zero-bias linear classifier (its
    zeroed, unscaled inputs and jaxal's inverted dropout then predict alike) and budget =
    the number of majority-disagreeing points: both pick exactly those points."""
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import DropQuery
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, D)).astype(np.float32)
    mask = labeled_mask(80, 15, seed)
    y = np.where(mask, rng.integers(C, size=80), np.nan)
    clf = SklearnClassifier(LogisticRegression(fit_intercept=False), classes=np.arange(C))
    clf.fit(x.astype(np.float64), y)
    params = {
        "w": jnp.asarray(clf.estimator_.coef_.T, jnp.float32),
        "b": jnp.zeros(C, jnp.float32),
    }
    key, m = jax.random.key(seed), 5
    keep = keep_masks(x, key, m, 0.75)
    chosen, _ = candidates_reference(x, params["w"], params["b"], keep, 0.75, mask, 0)
    budget = int(chosen.sum())
    assert 2 <= budget < 60
    given = _GivenMasks(~keep[~mask][:, i] for i in range(m))

    class WithGivenMasks(DropQuery):
        def _validate_data(self, *args, **kwargs):  # where it derives its RandomState
            checked = super()._validate_data(*args, **kwargs)
            self.random_state_ = given
            return checked

    peer = WithGivenMasks(n_dropout_samples=m, cluster_algo_dict={"random_state": 0})
    expected = peer.query(x.astype(np.float64), y, clf=clf, fit_clf=False, batch_size=budget)
    strategy = jaxal.strategies.dropquery(
        linear_model(), budget, mc_samples=m, candidates_per_pick=0, normalize=False
    )
    picks = strategy.select(params, jaxal.Pool.create(x, labeled=mask), key)
    assert set(np.asarray(picks).tolist()) == set(expected.tolist()) == set(np.flatnonzero(chosen))

"""Greedy BatchBALD (Kirsch, van Amersfoort & Gal 2019) over MC-dropout probabilities.

Letters: S Monte-Carlo (dropout) samples, N points, C classes, M rows of the joint table
(``max_configurations``), B candidates per chunk (``chunk_size``).

With the batch Y = (y_1, ..., y_m) chosen so far, the next pick is the candidate b that
maximises the mutual information of the extended batch's labels with the weights,

    a(b) = I(Y, y_b; w) = H(Y, y_b) - sum_{j in batch + b} E_w[H(y_j | w)]
         = I(Y; w) + I(y_b; w | Y),

where only the last term depends on b. Given MC sample s the labels are independent:
p(Y | s) = prod_j P[s, j, y_j], and p(Y) = mean_s p(Y | s).

The joint table. Row r is one label configuration mu_r of the batch, stored as
``table[r, s]`` = p(mu_r | s) / q_r with q_r = p(mu_r) = mean_s p(mu_r | s): each row has
mean 1 over s, so nothing underflows however long the batch grows, and table[r, s] / S is
the posterior p(s | mu_r) over the MC samples. Each row also has a ``weight[r]``.

* *Exact* while C^m <= M: the rows enumerate all C^m configurations (row index = base-C
  digits, oldest pick first, as DISTIL) and weight[r] = q_r.
* *Sampled* once C^m > M: M configurations drawn from p(Y) by ancestral sampling: row r
  belongs to MC sample s_r = r mod S (stratified) and its label of each batch point j is
  drawn from P[s_r, j, :]; weight[r] = 1 / (S * #rows of s_r). At the switch the rows are
  drawn from the exact table; afterwards each new batch point extends every row with one
  label drawn given the row's MC sample: the same distribution as redrawing every
  configuration (DISTIL, batchbald_redux), at O(M * S) per step.

With r_hat[r, b, c] = mean_s table[r, s] P[s, b, c] = p(y_b = c | mu_r), both modes use

    I(y_b; w | Y) ~ sum_r weight[r] (H(r_hat[r, b]) - sum_s table[r, s] / S * H(P[s, b]))
    I(Y; w)       ~ sum_r weight[r] mean_s table[r, s] log table[r, s]

(the expected information gain given each configuration, and the expected KL divergence of
the posterior over MC samples from the uniform prior). In exact mode these are exactly
a(b), identical to BatchBALD's -sum p log p over all configurations minus the conditional
entropies. In sampled mode they are unbiased estimates of the same quantities, like the
paper's importance-weighted estimate of H(Y, y_b) = E_mu[sum_c -(p(mu, c) / q(mu))
log p(mu, c)]; they differ from it in taking the conditional entropies under each sampled
configuration's posterior instead of subtracting E_w H(y_b | w) from a noisy joint
entropy. Each term is then non-negative, and the picked batches are closer to the exact
greedy's than with the paper's estimate.

Entropies use ``xlogy`` (0 log 0 = 0): saturated probabilities give finite scores, never
NaN. The first pick is the candidate with the largest ``jaxal.scores.mutual_information``
(BALD), computed by that very function.

Saturation. A row's term of I(y_b; w | Y) is the mutual information of y_b and the MC
sample under the row's posterior, at most that posterior's entropy. Once a configuration
names its MC sample (with S samples, I(Y; w) <= log S, reached after a few picks), the
row adds nothing to any gain: rows whose posterior entropy is below 1e-6 nats are
skipped (each changes a gain by less than 1e-6), and with every row skipped all gains
are 0. Gains within 1e-6 of the best tie, and ties go to the higher BALD score (then the
lower index): a saturated batch continues in BALD order instead of in index order or by
rounding noise (DISTIL's picks there depend on float noise).

Cost per step: O(N * M' * S * C) flops for the M' <= M informative rows (M' falls to 0
once the batch saturates); memory: the probabilities in point-major order [N, S, C] (one
copy), O(N * S) per-sample entropies, O(M * S) for the table and O(B * R * C) for one
block of R = 64 rows and B = ``chunk_size`` candidates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from jaxal import _checks, scores
from jaxal._chunks import map_slices
from jaxal.selectors._selection import BatchBaldInfo, Selection

DEFAULT_MAX_CONFIGURATIONS = 1000
# Gains closer than this (in nats) tie, and rows whose posterior over the MC samples has
# less entropy than this are skipped: each such row adds at most this much to any gain.
_RESOLUTION = 1e-6
# Rows of the joint table processed together in a gain pass.
_ROW_BLOCK = 64
# Points per chunk of the per-point entropies and BALD scores (bounded temporaries).
_STATS_CHUNK = 4096
# float32 matmuls may run as TF32 / bfloat16 on GPU and TPU; entropies need full precision.
_HIGHEST = jax.lax.Precision.HIGHEST


def batchbald(
    probs: jax.Array,
    candidates: jax.Array,
    budget: int,
    key: jax.Array,
    *,
    max_configurations: int = DEFAULT_MAX_CONFIGURATIONS,
    chunk_size: int = 256,
) -> Selection:
    """Greedy BatchBALD: ``budget`` candidates that jointly carry the most information.

    Step i picks the candidate maximising the mutual information I(y_1, ..., y_i; w) of
    the batch extended by it (module docstring). It is exact while the C^m label
    configurations of the m points already picked fit in ``max_configurations`` rows
    (DISTIL's rule, C^m <= M) and estimated from M sampled configurations beyond. Gains
    within 1e-6 nats tie; ties go to the higher BALD score, then the lower index (module
    docstring: this is what orders a saturated batch).

    Args:
        probs: float [S, N, C], S MC-dropout samples of the class probabilities (rows sum
            to 1).
        candidates: bool [N], the points that may be picked.
        budget: Python int, 1 <= budget <= N.
        key: PRNG key: draws the sampled configurations (unused while exact).
        max_configurations: M, rows of the joint table, a Python int >= S (DISTIL's
            ``n_samples``, default 1000). Larger is more accurate and costs O(M) time and
            memory per step.
        chunk_size: B, candidates scored at a time (memory O(B * 64 * C)).

    Returns:
        ``Selection(indices, BatchBaldInfo(scores))``: indices int32 [budget] in pick
        order, distinct candidates, -1 once none is left; scores float [budget], the
        estimated I(y_1..y_i; w) of the batch up to and including pick i (-inf for
        unfilled slots).

    Raises:
        ValueError: wrong ranks or shapes, budget outside [1, N], max_configurations < S,
            non-finite probabilities (outside jit).
    """
    _checks.rank_at_least(probs, 3, "probs")
    if jnp.ndim(probs) != 3:
        raise ValueError(f"probs must be [S, N, C], got shape {jnp.shape(probs)}")
    samples, n, classes = jnp.shape(probs)
    if jnp.shape(candidates) != (n,):
        raise ValueError(f"candidates must be bool [{n}] (N of probs), got {jnp.shape(candidates)}")
    budget = _checks.positive_int(budget, "budget")
    if budget > n:
        raise ValueError(f"budget must be in [1, {n}] (the pool size), got {budget}")
    rows = _checks.positive_int(max_configurations, "max_configurations")
    if rows < samples:
        raise ValueError(
            f"max_configurations must be >= the number of MC samples ({samples}), got {rows}"
        )
    chunk_size = _checks.positive_int(chunk_size, "chunk_size")
    _checks.finite(probs, "probs")
    indices, batch_scores = _greedy(
        probs, candidates, budget, key, rows, _exact_points(classes, rows, budget), chunk_size
    )
    return Selection(indices, BatchBaldInfo(batch_scores))


def _exact_points(classes: int, rows: int, budget: int) -> int:
    """The largest m <= budget with classes^m <= rows: batch sizes kept exact."""
    m = 0
    while m < budget and classes ** (m + 1) <= rows:
        m += 1
    return m


def _greedy(
    probs: jax.Array,
    candidates: jax.Array,
    budget: int,
    key: jax.Array,
    rows: int,
    exact_points: int,
    chunk_size: int,
) -> tuple[jax.Array, jax.Array]:
    """The loop; the joint table stays exact for batches of up to ``exact_points`` points.

    (Separate from the public function so that tests can force the sampled mode on
    problems small enough to enumerate.)
    """
    dtype = jnp.result_type(probs.dtype, jnp.float32)
    probs = jnp.asarray(probs, dtype)
    samples, n, classes = probs.shape
    by_point = jnp.swapaxes(probs, 0, 1)  # [N, S, C]: chunks of candidates
    sample_entropies, first_gain = map_slices(_point_terms, by_point, chunk_size=_STATS_CHUNK)
    first_gain = first_gain.astype(dtype)  # BALD, [N]

    row_block_size = min(_ROW_BLOCK, rows)
    order_padding = jnp.zeros((row_block_size,), jnp.int32)
    row = jnp.arange(rows)
    row_sample = row % samples  # the MC sample of each sampled row
    rows_per_sample = jnp.bincount(row_sample, length=samples)
    sampled_weight = 1.0 / (samples * rows_per_sample[row_sample].astype(dtype))

    def gains(table, weight):
        """[N]: I(y_b; w | Y) for every point b, summed over the informative rows only."""
        posterior = table / samples  # p(s | mu_r), rows sum to 1
        row_entropy = -jnp.sum(xlogy(posterior, posterior), axis=1)
        informative = (weight > 0) & (row_entropy > _RESOLUTION)
        n_informative = jnp.sum(informative)
        # Informative rows first, padded so that every block slice is in range.
        order = jnp.concatenate([jnp.argsort(~informative, stable=True), order_padding])

        def row_block(state):
            start, joint = state
            block = jax.lax.dynamic_slice(order, (start,), (row_block_size,))
            block_weight = jnp.where(
                start + jnp.arange(row_block_size) < n_informative, weight[block], 0.0
            )
            block_table = table[block]

            def one_chunk(chunk, index):
                del index
                given = jnp.einsum("rs,bsc->rbc", block_table, chunk, precision=_HIGHEST)
                given = given / samples
                entropies = -jnp.sum(xlogy(given, given), axis=-1)  # H(y_b | mu_r), [R, B]
                return jnp.dot(block_weight, entropies, precision=_HIGHEST)

            return start + row_block_size, joint + map_slices(
                one_chunk, by_point, chunk_size=chunk_size
            )

        _, joint = jax.lax.while_loop(
            lambda state: state[0] < n_informative,
            row_block,
            (jnp.int32(0), jnp.zeros((n,), dtype)),
        )
        mixture = jnp.dot(jnp.where(informative, weight, 0.0), posterior, precision=_HIGHEST)
        return joint - jnp.dot(sample_entropies, mixture, precision=_HIGHEST)

    def extend(table, point_probs, source, label):
        """Row r <- configuration source[r] extended by label[r] of the new point."""
        unnormalised = table[source] * point_probs.T[label]  # [M, S]
        ratio = jnp.mean(unnormalised, axis=1)  # p(label | configuration)
        alive = ratio > 0
        safe = jnp.where(alive, ratio, 1.0)
        return jnp.where(alive[:, None], unnormalised / safe[:, None], 0.0), ratio, alive

    def exact_update(table, weight, point_probs, step_key):
        del step_key
        source, label = row // classes, row % classes
        table, ratio, alive = extend(table, point_probs, source, label)
        return table, jnp.where(alive, weight[source] * ratio, 0.0)

    def sampled_update(table, point_probs, step_key, source):
        label = jax.random.categorical(step_key, jnp.log(point_probs[row_sample]))
        table, _, alive = extend(table, point_probs, source, label)
        return table, jnp.where(alive, sampled_weight, 0.0)

    def switch_update(table, weight, point_probs, step_key):
        configuration_key, label_key = jax.random.split(step_key)
        source = _draw_configurations(configuration_key, weight[:, None] * table, rows)
        return sampled_update(table, point_probs, label_key, source)

    def extend_update(table, weight, point_probs, step_key):
        del weight
        return sampled_update(table, point_probs, step_key, row)

    updates = (exact_update, switch_update, extend_update)

    def step(t, state):
        table, weight, available, picked, values = state
        gain = jax.lax.cond(t == 0, lambda: first_gain, lambda: gains(table, weight))
        gain = jnp.where(jnp.isnan(gain), jnp.finfo(dtype).min, gain)
        any_left = jnp.any(available)
        best = jnp.max(jnp.where(available, gain, -jnp.inf))
        tied = available & (gain >= best - _RESOLUTION)
        index = jnp.argmax(jnp.where(tied, first_gain, -jnp.inf)).astype(jnp.int32)
        index = jnp.where(any_left, index, -1)
        safe = jnp.maximum(index, 0)
        batch_information = jnp.dot(weight, jnp.mean(xlogy(table, table), axis=1))  # I(Y; w)
        value = jnp.where(any_left, batch_information + gain[safe], -jnp.inf)
        # The batch holds t + 1 points after this pick: exact, the switch, or sampled.
        mode = jnp.clip(t + 1 - exact_points, 0, 2)
        table, weight = jax.lax.switch(
            mode, updates, table, weight, by_point[safe], jax.random.fold_in(key, t)
        )
        return (
            table,
            weight,
            available.at[jnp.where(any_left, index, n)].set(False, mode="drop"),
            picked.at[t].set(index),
            values.at[t].set(value),
        )

    initial = (
        jnp.zeros((rows, samples), dtype).at[0].set(1.0),  # one empty configuration
        jnp.zeros((rows,), dtype).at[0].set(1.0),
        jnp.asarray(candidates, bool),
        jnp.full((budget,), -1, jnp.int32),
        jnp.full((budget,), -jnp.inf, dtype),
    )
    _, _, _, picked, values = jax.lax.fori_loop(0, budget, step, initial)
    return picked, values


def _point_terms(chunk: jax.Array, index: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Probabilities [B, S, C] -> (H(y_b | w = s) [B, S], BALD's I(y_b; w) [B])."""
    del index
    return scores.entropy(chunk), scores.mutual_information(jnp.swapaxes(chunk, 0, 1))


def _draw_configurations(key: jax.Array, joint: jax.Array, rows: int) -> jax.Array:
    """int [rows]: row r draws a configuration mu with probability joint[mu, r mod S].

    Args:
        joint: float [M, S], p(mu | s) of the exact table's configurations (columns sum to
            1 up to rounding).
    """
    samples = joint.shape[1]
    per_sample = -(-rows // samples)
    uniforms = jax.random.uniform(key, (per_sample, samples), joint.dtype)
    cumulative = jnp.cumsum(joint, axis=0)

    def draw(cumulative_s, joint_s, uniforms_s):
        index = jnp.searchsorted(cumulative_s, uniforms_s * cumulative_s[-1], side="right")
        last_positive = joint_s.shape[0] - 1 - jnp.argmax(joint_s[::-1] > 0)
        return jnp.minimum(index, last_positive)

    drawn = jax.vmap(draw, in_axes=(1, 1, 1), out_axes=1)(cumulative, joint, uniforms)
    return drawn.reshape(-1)[:rows]  # row k * S + s belongs to MC sample s

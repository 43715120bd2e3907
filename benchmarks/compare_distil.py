"""jaxal and DISTIL side by side: the same weights, pool and labeled set; speed and agreement.

Two libraries, two processes that never run at the same time and exchange NumPy files.
This driver runs in jaxal's environment. For every pool size N, budget and strategy it

1. writes the workload once (``_workload.compare_workload``: a seeded MLP 64 -> 128 -> 10
   with dropout 0.5 on the hidden units, a pool of N unlabeled points with 64 features and
   10 classes, 1,000 labeled points beside it, and labeled query / private sets);
2. runs DISTIL's strategy in DISTIL's own virtual environment (``_distil_worker.py``:
   CPU PyTorch, DISTIL imported from ``--distil-src``, ``batch_size`` 1000, the strategy's
   defaults, up to ``--repeats`` timed ``select(budget)`` calls), killed after
   ``--timeout`` seconds: reported as "> 600 s", and larger sizes or budgets that cannot
   finish in time are skipped;
3. then runs jaxal's strategy in a fresh jaxal process (this script with ``--jaxal-job``):
   ``jax.jit(strategy.select)`` compiled ahead of time (compile seconds reported
   separately), one warm-up call, then ``--jaxal-repeats`` timed calls with fresh keys,
   each ``jax.block_until_ready``;
4. compares the picks in NumPy (float64 references), per the strategy's ``Spec.agreement``:

   * ``top_k`` (entropy, margin, least_confidence): the same set, ties aside: points
     within 1e-6 * max|score| of the k-th float64 score form a tie band, outside which
     both picks must hold the same points;
   * ``mc`` (the ``*_mc`` variants, bald; stochastic): the overlap of the two libraries'
     picks against the overlap between two seeds of each library, and each batch's mean
     reference score (100 NumPy MC-dropout samples) beside the top-k's and the pool's;
     and level B: jaxal's score and ``top_k`` on DISTIL's own MC probabilities must give
     DISTIL's picks;
   * ``batchbald``: the overlaps and mean reference BALD, plus jaxal's BatchBALD selector
     on DISTIL's MC samples; ``random``: the overlaps;
   * greedy ones (``coreset``, ``fass``, ``facility_location``, ``information``: SMI /
     SCG / SCMI): teacher forcing in float64: each library's sequence is checked step by
     step against the greedy maximum (rtol 1e-5), and where the two sequences part, the
     gains of the two picks tell an exact tie, a near tie or a real gap;
   * ``badge``: level B: jaxal's gradient embedding and k-means++ seeding with the
     uniforms DISTIL drew must give DISTIL's picks (and a float64 replay says who leaves
     the exact sequence, and how close the uniform was to a CDF boundary); plus the
     overlaps of each library's own draws;
   * ``kmeans``: the overlaps and the k-means cost of each batch (mean squared distance
     from every pool point to its nearest pick), beside random picks';
   * ``perturbation`` (deepfool, bim): the per-point perturbations, then the picks with a
     tie band at the k-th score (rtol 1e-3 for DeepFool; BIM's scores are eps^2 times an
     integer, so ties are exact and common);
   * ``identical`` (glister, gradmatch): the fraction of identical indices; where jaxal
     fixes a DISTIL bug by default, ``Spec.compat`` runs it once more with DISTIL's
     behaviour (gradmatch: ``target_scale="pool"``) and compares those picks too.

It prints a markdown table (DISTIL s: median of its calls, "*" when the time limit cut
the calls short; jaxal s: median; jaxal's compile s; speed-up = DISTIL s / jaxal s; each
job's peak resident memory, interpreter and framework included; agreement; note: where
jaxal deliberately differs from DISTIL), writes every number to ``--out`` (JSON,
rewritten after each row) and a bar chart to ``--figure``. The workloads, every job's
``.npz`` output and log stay in ``--work-dir``.

DISTIL's environment: ``--distil-venv`` (default ``../distil-venv`` beside this
repository, outside it, so nothing needs ignoring) is created on first use with
``python3 -m venv``, ``pip install torch==2.13.0`` (``--torch-spec``; on machines without
a local CPU wheel add ``--pip-args "--index-url https://download.pytorch.org/whl/cpu"``,
or pip fetches a CUDA build) and DISTIL's requirements except its obsolete scikit-learn
pin (numpy, scipy, scikit-learn, tqdm, multipledispatch, submodlib from PyPI as
``submodlib-py``). An existing environment is reused when it imports DISTIL.
``--distil-src`` is a checkout of https://github.com/decile-team/distil (its main; the
PyPI release 0.2.0 has an older API); nothing of it is copied here.

Usage::

    python benchmarks/compare_distil.py --distil-src ../distil-src --quick
    python benchmarks/compare_distil.py --distil-src ../distil-src          # full: hours
    python benchmarks/compare_distil.py --distil-src ../distil-src --sizes 10000 \
        --budgets 100 --strategies entropy badge coreset

Run it on a quiet machine: PyTorch's OpenMP threads slow down many-fold when other
processes share the cores.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import _workload  # noqa: E402
from _report import fmt, repo_relative  # noqa: E402

JAXAL_BATCH_SIZE = 8192  # the whole pool per forward chunk, as benchmarks/strategies.py
ATTACK_BATCH_SIZE = 512  # the attacks' own default chunk
MC_SAMPLES = 10
REFERENCE_MC_SAMPLES = 100  # NumPy MC samples for the reference scores of MC strategies
TIE_RTOL = 1e-6  # tie band of top-k scores, relative to max |score|
GREEDY_RTOL = 1e-5  # teacher forcing: a pick within this of the greedy maximum is fine
FULL_REPLAY_MAX_N = 4000  # submodular replay over every candidate up to this ground set


@dataclass(frozen=True)
class Spec:
    """One row of the comparison.

    Attributes:
        jaxal: (registry name, hyperparameters). A key ``"a|b"`` means the factory's
            parameter ``a``, or ``b`` if it has no ``a`` (for strategies still being added).
        agreement: how picks are compared (see ``AGREEMENT``).
        note: where jaxal deliberately differs from DISTIL (a DISTIL bug it fixes), or
            a setting worth knowing.
        budget_exponent / n_exponent: DISTIL's cost grows at least like budget^a * N^b;
            used only to skip runs that cannot finish within the time limit.
        jaxal_batch_size: jaxal's ``batch_size`` (points per forward chunk).
        compat: hyperparameters that make jaxal reproduce a DISTIL bug it fixes by
            default: jaxal is timed with its defaults and additionally run once with these,
            and those picks are compared too.
    """

    jaxal: tuple[str, dict[str, Any]]
    agreement: str
    note: str = ""
    budget_exponent: float = 0.0
    n_exponent: float = 1.0
    jaxal_batch_size: int = JAXAL_BATCH_SIZE
    compat: dict[str, Any] | None = None

    @property
    def stochastic(self) -> bool:
        """Picks depend on the seed: both sides run at least two calls to compare."""
        return self.agreement in ("stochastic", "mc", "batchbald", "badge", "kmeans")


MC = {"mc_samples": MC_SAMPLES}
NAN_NOTE = "DISTIL: 0 log 0 = NaN for saturated softmax (jaxal: xlogy; not hit here)"
LAZY_NOTE = "LazyGreedy on ties: DISTIL takes the highest index"
SPECS: dict[str, Spec] = {
    "random": Spec(("random", {}), "stochastic"),
    "entropy": Spec(("entropy", {}), "top_k", NAN_NOTE),
    "margin": Spec(("margin", {}), "top_k"),
    "least_confidence": Spec(("least_confidence", {}), "top_k"),
    "entropy_mc": Spec(("entropy", MC), "mc", NAN_NOTE),
    "margin_mc": Spec(("margin", MC), "mc"),
    "least_confidence_mc": Spec(("least_confidence", MC), "mc"),
    "bald": Spec(("bald", MC), "mc", NAN_NOTE),
    "batchbald": Spec(
        ("batchbald", {"mc_samples": 40, "max_configurations": 1000}),
        "batchbald",
        "DISTIL's exact mode computes nothing (uninitialised buffer): its first 4 picks "
        "are garbage; DISTIL forces batch size 1",
        budget_exponent=1.0,
    ),
    "coreset": Spec(("coreset", {}), "coreset", budget_exponent=1.0),
    "badge": Spec(
        ("badge", {}),
        "badge",
        "DISTIL adds PairwiseDistance's 1e-6 (chosen points keep a tiny weight: duplicates "
        "possible); jaxal never repeats a pick",
        budget_exponent=1.0,
    ),
    "kmeans": Spec(
        ("kmeans", {"n_init": 10, "max_iter": 300}),
        "kmeans",
        "both n_init 10, max_iter 300 (jaxal's default is 1, 100); DISTIL crashes on an "
        "empty cluster",
        budget_exponent=1.0,
    ),
    "fass": Spec(("fass", {}), "fass", LAZY_NOTE, budget_exponent=1.0),
    "deepfool": Spec(
        ("deepfool", {}),
        "perturbation",
        "DISTIL takes 3-D inputs only (fed as 1x8x8 here); never-flipped points rank last in jaxal",
        jaxal_batch_size=ATTACK_BATCH_SIZE,
    ),
    "bim": Spec(
        ("bim", {}),
        "perturbation",
        "DISTIL ranks zero-gradient (never flipped) points first and breaks ties by an "
        "unstable sort; jaxal: never-flipped last, ties to the lower index",
        jaxal_batch_size=ATTACK_BATCH_SIZE,
    ),
    "submodular": Spec(
        ("submodular", {}),
        "facility_location",
        "facility location, cosine, lazy greedy on both; " + LAZY_NOTE,
        budget_exponent=1.0,
        n_exponent=2.0,
    ),
    "glister": Spec(
        ("glister", {"lr|learning_rate": 0.01}),
        "identical",
        "lr 0.01, no validation set; DISTIL normalises the first step by N, later ones by "
        "N + L (matters only with a regulariser)",
        budget_exponent=1.0,
    ),
    "gradmatch": Spec(
        ("gradmatch", {}),
        "identical",
        "DISTIL's target is N * mean gradient, not budget * mean (jaxal: "
        "target_scale='budget'; 'pool' reproduces DISTIL)",
        budget_exponent=1.0,
        compat={"target_scale": "pool"},
    ),
    "fl1mi": Spec(
        ("smi", {"function|smi_function": "fl1mi"}),
        "information",
        "query set: 100 labeled points of classes 0, 1",
        budget_exponent=1.0,
        n_exponent=2.0,
    ),
    "fl2mi": Spec(
        ("smi", {"function|smi_function": "fl2mi"}),
        "information",
        "query set: 100 labeled points of classes 0, 1",
        budget_exponent=1.0,
    ),
    "flcg": Spec(
        ("scg", {"function|scg_function": "flcg"}),
        "information",
        "private set: 100 labeled points of class 9",
        budget_exponent=1.0,
        n_exponent=2.0,
    ),
    "flcmi": Spec(
        ("scmi", {"function|scmi_function": "flcmi"}),
        "information",
        "query: classes 0, 1; private: class 9",
        budget_exponent=1.0,
        n_exponent=2.0,
    ),
}
QUICK_STRATEGIES = [
    "random",
    "entropy",
    "margin",
    "least_confidence",
    "entropy_mc",
    "bald",
    "coreset",
    "badge",
    "fass",
    "bim",
]
# The extra arrays a strategy may ask for through Strategy.inputs.
INPUTS = {
    "query_x": "x_query",
    "query_y": "y_query",
    "private_x": "x_private",
    "private_y": "y_private",
}


# --- DISTIL's environment ---------------------------------------------------------------

DISTIL_REQUIREMENTS = [
    "numpy",
    "scipy",
    "scikit-learn",  # DISTIL pins 0.23.0, which no longer builds; any current one works
    "tqdm",
    "multipledispatch",
    "submodlib-py",
]


def distil_python(args: argparse.Namespace) -> Path:
    """The DISTIL environment's interpreter, creating or completing the environment."""
    venv = args.distil_venv
    python = venv / "bin" / "python"
    if python.exists() and probe_distil(python, args.distil_src):
        return python
    pip_args = shlex.split(args.pip_args or "")
    if not python.exists():
        log(f"creating DISTIL's virtual environment in {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *pip_args]
    log(f"installing {args.torch_spec} and DISTIL's requirements into {venv}")
    subprocess.run([*pip, args.torch_spec], check=True)
    subprocess.run([*pip, *DISTIL_REQUIREMENTS], check=True)
    if not probe_distil(python, args.distil_src, show_error=True):
        raise SystemExit(f"DISTIL does not import in {venv}; see the error above")
    return python


def probe_distil(python: Path, distil_src: Path, show_error: bool = False) -> bool:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import torch, submodlib, scipy, sklearn; "
        "import distil.active_learning_strategies"
    )
    result = subprocess.run(
        [str(python), "-c", code, str(distil_src)], capture_output=True, text=True
    )
    if result.returncode and show_error:
        print(result.stderr, file=sys.stderr)
    return result.returncode == 0


def distil_versions(python: Path, distil_src: Path) -> dict[str, Any]:
    code = "import torch, numpy, submodlib; print(torch.__version__, numpy.__version__)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout
    torch_version, numpy_version = (out.split() + ["?", "?"])[:2]
    commit = subprocess.run(
        ["git", "-C", str(distil_src), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"torch": torch_version, "numpy": numpy_version, "distil_commit": commit or None}


# --- running jobs ---------------------------------------------------------------------------


def run_job(command: list[str], timeout: float, log_path: Path) -> tuple[str, float]:
    """Run ``command`` in its own process group with a wall-clock limit.

    Returns (status, seconds): status "ok", "timeout" (killed at the limit), "error"
    (non-zero exit) or "killed" (ended by a signal, e.g. out of memory).
    """
    threads = str(os.cpu_count() or 1)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    start = time.perf_counter()
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return "timeout", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if code == 0:
        return "ok", seconds
    return ("killed" if code < 0 else "error"), seconds


def read_job(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = _workload.load_npz(path)
    data["meta"] = json.loads(str(data["meta"]))
    return data


def tail(path: Path, lines: int = 1) -> str:
    try:
        text = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return ""
    return " / ".join(text[-lines:])[:300]


# --- the jaxal side (a child process: --jaxal-job) -------------------------------------------


def jaxal_job(job: dict[str, Any]) -> None:
    """Time one jaxal strategy and record its picks (runs in a fresh process)."""
    started = time.perf_counter()
    import jax
    import jax.numpy as jnp

    import jaxal

    workload = _workload.load_npz(job["workload"])
    dropout = float(workload["dropout"])

    def apply(params, x, rng):
        hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
        dropped = hidden
        if rng is not None:
            keep = jax.random.bernoulli(rng, 1.0 - dropout, hidden.shape)
            dropped = jnp.where(keep, hidden / (1.0 - dropout), 0.0)
        return head(params, dropped), hidden

    def head(params, embedding):
        return embedding @ params["w2"] + params["b2"]

    model = jaxal.Model(apply=apply, head=head, head_dropout=dropout)
    params = {k: jnp.asarray(workload[k]) for k in ("w1", "b1", "w2", "b2")}
    n = workload["x_pool"].shape[0]
    labeled = workload["x_labeled"].shape[0]
    x = np.concatenate([workload["x_pool"], workload["x_labeled"]])
    y = np.concatenate([np.full(n, -1), workload["y_labeled"]]).astype(np.int32)
    pool = jaxal.Pool.create(x, y=y, labeled=np.arange(n, n + labeled))
    budget = job["budget"]

    registry_name, hparams = job["jaxal"]
    factory = jaxal.strategies.get(registry_name)
    hparams = {"batch_size": job["batch_size"], **resolve_hparams(factory, hparams)}
    strategy = factory(model, budget, **hparams)
    # The arrays this benchmark has for the strategy's inputs; others (an optional
    # validation set) are left out, as DISTIL runs without them.
    inputs = {
        name: jnp.asarray(workload[INPUTS[name]]) for name in strategy.inputs if name in INPUTS
    }

    keys = [jax.random.key(job["seed"] * 1000 + r) for r in range(1 + job["repeats"])]
    start = time.perf_counter()
    compiled = jax.jit(strategy.select).lower(params, pool, keys[0], **inputs).compile()
    compile_s = time.perf_counter() - start
    picks, times = [], []
    for r, key in enumerate(keys):
        if times and time.perf_counter() - started + 1.1 * max(times) > 0.8 * job["timeout"]:
            break  # another call would not finish within the job's time limit
        start = time.perf_counter()
        chosen = jax.block_until_ready(compiled(params, pool, key, **inputs))
        seconds = time.perf_counter() - start
        picks.append(np.asarray(chosen))
        if r > 0:  # call 0 is the warm-up
            times.append(seconds)
    out = {
        "indices": np.stack(picks).astype(np.int64),
        "times": np.asarray(times),
        "compile_s": np.float64(compile_s),
    }
    if job.get("compat"):
        compat = factory(model, budget, **hparams, **job["compat"])
        picked = jax.jit(compat.select)(params, pool, keys[0], **inputs)
        out["compat_indices"] = np.asarray(picked)[None].astype(np.int64)
    out.update(level_b(job, jax, jaxal, model, params, pool, strategy))
    out["peak_rss_mb"] = np.float64(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    meta = {
        "jax": jax.__version__,
        "jaxal": jaxal.__version__,
        "device": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "hparams": {k: v for k, v in hparams.items() if isinstance(v, int | float | str)},
        "import_s": time.perf_counter() - started,
    }
    out["meta"] = np.array(json.dumps(meta))
    _workload.save_npz(job["out"], **out)


def resolve_hparams(factory, hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters with "a|b" keys resolved against the factory's parameters."""
    accepted = inspect.signature(factory).parameters
    resolved = {}
    for key, value in hparams.items():
        names = key.split("|")
        match = next((name for name in names if name in accepted), None)
        if match is None:
            raise TypeError(f"jaxal's factory takes none of {', '.join(names)}")
        resolved[match] = value
    return resolved


def level_b(job, jax, jaxal, model, params, pool, strategy) -> dict[str, np.ndarray]:
    """jaxal's own selection code on DISTIL's random draws, and per-point attack scores.

    * badge: jaxal's gradient embedding and ``selectors.kmeans_plusplus`` with the
      uniforms DISTIL drew (its first pick is the largest norm, no uniform);
    * the MC strategies: jaxal's score on DISTIL's MC-dropout probabilities, then
      ``selectors.top_k``; batchbald: ``selectors.batchbald`` on DISTIL's samples;
    * deepfool / bim: jaxal's per-point perturbation and whether it flipped.
    """
    import jax.numpy as jnp

    name = job["strategy"]
    distil = read_job(Path(job["distil_out"])) if job.get("distil_out") else None
    n = pool.size - int(np.sum(np.asarray(pool.labeled)))
    candidates = pool.unlabeled
    budget = job["budget"]
    out: dict[str, np.ndarray] = {}

    if name == "badge" and distil is not None and "badge_uniforms" in distil:
        logits, embeddings = jaxal.model.forward(model, params, pool.x, job["batch_size"])
        points = jaxal.model.gradient_embedding(logits, embeddings, "linear")
        runs = []
        for uniforms in distil["badge_uniforms"]:
            if np.isnan(uniforms).any():
                continue
            u = jnp.concatenate([jnp.zeros(1), jnp.asarray(uniforms, jnp.float32)])
            runs.append(jaxal.selectors.kmeans_plusplus(points, candidates, u, first="max_norm"))
        if runs:
            out["level_b_indices"] = np.stack([np.asarray(r) for r in runs]).astype(np.int64)
    if name in ("entropy_mc", "margin_mc", "least_confidence_mc") and distil is not None:
        if "mc_mean_probs" in distil:
            measure = getattr(jaxal.scores, name.removesuffix("_mc"))
            scores = measure(jnp.asarray(distil["mc_mean_probs"], jnp.float32))
            scores = jnp.concatenate([scores, jnp.full(pool.size - n, -jnp.inf)])
            out["level_b_indices"] = np.asarray(jaxal.selectors.top_k(scores, candidates, budget))[
                None
            ].astype(np.int64)
    if name == "bald" and distil is not None and "mc_probs" in distil:
        scores = jaxal.scores.mutual_information(jnp.asarray(distil["mc_probs"], jnp.float32))
        scores = jnp.concatenate([scores, jnp.full(pool.size - n, -jnp.inf)])
        out["level_b_indices"] = np.asarray(jaxal.selectors.top_k(scores, candidates, budget))[
            None
        ].astype(np.int64)
    if name == "batchbald" and distil is not None and "mc_probs" in distil:
        probs = jnp.asarray(distil["mc_probs"], jnp.float32)  # [T, N, C]
        probs = jnp.concatenate(
            [probs, jnp.full((probs.shape[0], pool.size - n, probs.shape[2]), 0.1)], axis=1
        )
        select = jax.jit(
            lambda p, c, k: (
                jaxal.selectors.batchbald(p, c, budget, k, max_configurations=1000).indices
            )
        )
        out["level_b_indices"] = np.asarray(select(probs, candidates, jax.random.key(0)))[
            None
        ].astype(np.int64)
    if name in ("deepfool", "bim"):
        attack = {"deepfool": jaxal.attacks.deepfool, "bim": jaxal.attacks.bim}[name]
        kwargs = (
            {"max_iter": strategy.max_iter, "overshoot": strategy.overshoot}
            if name == "deepfool"
            else {"eps": strategy.eps, "max_iter": strategy.max_iter}
        )

        def run(p, x, active):
            return jaxal.attacks.perturbation_scores(
                lambda *a, **k: attack(*a, **k, **kwargs), model, p, x, job["batch_size"], active
            )

        sq_norm, flipped, iterations = jax.jit(run)(params, pool.x, candidates)
        out["jaxal_sq_norm"] = np.asarray(sq_norm)[:n]
        out["jaxal_flipped"] = np.asarray(flipped)[:n]
        out["jaxal_iterations"] = np.asarray(iterations)[:n]
    return out


# --- NumPy references (float64) --------------------------------------------------------------


class Reference:
    """Float64 model outputs over the pool, computed once per workload."""

    def __init__(self, workload: dict[str, np.ndarray]):
        self.w = {k: workload[k].astype(np.float64) for k in ("w1", "b1", "w2", "b2")}
        self.dropout = float(workload["dropout"])
        self.x = workload["x_pool"].astype(np.float64)
        self.x_labeled = workload["x_labeled"].astype(np.float64)
        self.x_query, self.y_query = workload["x_query"], workload["y_query"]
        self.x_private, self.y_private = workload["x_private"], workload["y_private"]
        self.w32 = {k: workload[k] for k in ("w1", "b1", "w2", "b2")}
        self.emb = self.embed(self.x)
        self.logits = self.emb @ self.w["w2"] + self.w["b2"]
        self.probs = softmax(self.logits)
        self._mc: dict[str, np.ndarray] | None = None

    def embed(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x @ self.w["w1"] + self.w["b1"], 0.0)

    def gradients(self, x: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """Last-layer bias_linear gradient embeddings [a, a (x) h], a = p - onehot(y), at
        the predicted (``labels`` None) or given labels. The probabilities come from a
        float32 forward pass, as DISTIL's: where a softmax entry rounds to exactly 1, the
        gradient is exactly zero (cosine similarity 0 to everything)."""
        w = self.w32
        h = np.maximum(np.asarray(x, np.float32) @ w["w1"] + w["b1"], np.float32(0))
        z = h @ w["w2"] + w["b2"]
        p = np.exp(z - z.max(1, keepdims=True))
        p = p / p.sum(1, keepdims=True)
        y = p.argmax(1) if labels is None else labels
        a = (p - np.eye(p.shape[1], dtype=np.float32)[y]).astype(np.float64)
        h = h.astype(np.float64)
        return np.concatenate([a, (a[:, :, None] * h[:, None, :]).reshape(len(a), -1)], 1)

    def mc(self) -> dict[str, np.ndarray]:
        """Mean probabilities and mean per-sample entropy over many NumPy MC samples."""
        if self._mc is None:
            rng = np.random.default_rng(12345)
            mean = np.zeros_like(self.probs)
            mean_entropy = np.zeros(len(self.probs))
            for _ in range(REFERENCE_MC_SAMPLES):
                keep = rng.random(self.emb.shape) >= self.dropout
                p = softmax((self.emb * keep / (1 - self.dropout)) @ self.w["w2"] + self.w["b2"])
                mean += p / REFERENCE_MC_SAMPLES
                mean_entropy += entropy(p) / REFERENCE_MC_SAMPLES
            self._mc = {"mean": mean, "mean_entropy": mean_entropy}
        return self._mc


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)


def uncertainty(name: str, p: np.ndarray) -> np.ndarray:
    """Higher = pick first, as DISTIL's scores."""
    if name == "entropy":
        return entropy(p)
    if name == "margin":
        top2 = np.sort(p, axis=-1)[..., -2:]
        return top2[..., 0] - top2[..., 1]
    if name == "least_confidence":
        return -p.max(-1)
    raise ValueError(name)


def reference_scores(name: str, ref: Reference) -> np.ndarray:
    """The per-point score each score-based strategy ranks by, in float64."""
    base = name.removesuffix("_mc")
    if name in ("entropy", "margin", "least_confidence"):
        return uncertainty(name, ref.probs)
    mc = ref.mc()
    if name in ("bald", "batchbald"):
        return entropy(mc["mean"]) - mc["mean_entropy"]
    return uncertainty(base, mc["mean"])


# --- agreement ------------------------------------------------------------------------------


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    a, b = set(a[a >= 0].tolist()), set(b[b >= 0].tolist())
    return len(a & b) / max(len(a), len(b), 1)


def pairwise_overlap(runs_a, runs_b=None) -> float | None:
    if runs_b is None:
        pairs = [(a, b) for i, a in enumerate(runs_a) for b in runs_a[i + 1 :]]
    else:
        pairs = [(a, b) for a in runs_a for b in runs_b]
    return float(np.mean([overlap(a, b) for a, b in pairs])) if pairs else None


def top_k_agreement(d: np.ndarray, j: np.ndarray, score: np.ndarray, rtol=TIE_RTOL) -> dict:
    """Set agreement of two top-k picks under a float64 score, ties aside.

    Points whose score is within ``rtol * max|score|`` of the k-th score form the tie
    band; outside it both picks must hold the same points.
    """
    k = len(d)
    kth = np.sort(score)[::-1][k - 1]
    tol = rtol * max(float(np.max(np.abs(score))), 1e-300)
    band = np.abs(score - kth) <= tol
    must = np.flatnonzero(score > kth + tol)
    d_set, j_set = set(d.tolist()), set(j.tolist())
    outside_d = {i for i in d_set if not band[i]}
    outside_j = {i for i in j_set if not band[i]}
    missing = [i for i in must if i not in d_set or i not in j_set]
    return {
        "identical_fraction": len(d_set & j_set) / k,
        "identical_order": bool(np.array_equal(d, j)),
        "tie_band": int(band.sum()),
        "equal_outside_band": outside_d == outside_j and not missing,
        "differ_outside_band": len(outside_d ^ outside_j),
    }


def greedy_replay(
    runs: dict[str, np.ndarray], gains_fn, update_fn, state, candidates: np.ndarray
) -> dict:
    """Teacher forcing of greedy sequences.

    Along each library's own sequence, checks at every step that its pick attains the
    float64 greedy maximum within ``GREEDY_RTOL``; and along the common prefix of the two,
    reports the first step where they part and the two picks' gains there.

    Args:
        runs: {"distil": indices [k], "jaxal": indices [k]}.
        gains_fn: (state, available bool [N]) -> float64 gains [N] (-inf where unavailable).
        update_fn: (state, picked index) -> state.
        state: the initial state.
    """
    out: dict[str, Any] = {}
    for lib, seq in runs.items():
        s, available, bad = state, candidates.copy(), []
        for t, i in enumerate(seq):
            gains = gains_fn(s, available)
            best = float(np.max(gains))
            if i < 0 or not available[i] or gains[i] < best - GREEDY_RTOL * max(abs(best), 1e-12):
                bad.append(t)
            if i < 0:
                break
            available[i] = False
            s = update_fn(s, i)
        out[f"{lib}_non_greedy_steps"] = bad[:10]
        out[f"{lib}_greedy_picks"] = len(seq) - len(bad)
    d, j = runs["distil"], runs["jaxal"]
    diverge = next((t for t in range(len(d)) if d[t] != j[t]), None)
    out["first_divergence"] = diverge
    if diverge is not None:
        out["parting_picks"] = [int(d[diverge]), int(j[diverge])]
        s, available = state, candidates.copy()
        for i in d[:diverge]:
            available[i] = False
            s = update_fn(s, i)
        gains = gains_fn(s, available)
        gd, gj = float(gains[d[diverge]]), float(gains[j[diverge]])
        out["divergence_gains"] = [gd, gj]
        out["divergence_rel_gap"] = abs(gd - gj) / max(abs(gd), abs(gj), 1e-300)
    out["identical_fraction"] = overlap(d, j)
    return out


def coreset_replay(ref: Reference, runs) -> dict:
    emb, n = ref.emb, len(ref.emb)
    labeled = ref.embed(ref.x_labeled)
    delta = np.full(n, np.inf)
    for start in range(0, n, 4096):
        block = emb[start : start + 4096]
        sq = (block**2).sum(1)[:, None] + (labeled**2).sum(1)[None] - 2 * block @ labeled.T
        delta[start : start + 4096] = np.sqrt(np.maximum(sq.min(1), 0.0))

    def gains(d, available):
        return np.where(available, d, -np.inf)

    def update(d, i):
        return np.minimum(d, np.sqrt(((emb - emb[i]) ** 2).sum(1)))

    return greedy_replay(runs, gains, update, delta, np.ones(n, bool))


def memo_replay(runs, n: int, columns, gains, update, state) -> dict:
    """Teacher forcing for greedy functions whose state is a memo over rows.

    ``columns(idx)`` gives the kernel columns [rows, len(idx)] of ground elements
    ``idx``; ``gains(state, cols)`` the gain of each column; ``update(state, col)`` the
    state after picking the element of column ``col``. Full replay (every candidate's gain
    at every step) up to FULL_REPLAY_MAX_N elements; beyond, only the gains of the two
    picks where the sequences part.
    """
    if n <= FULL_REPLAY_MAX_N:
        kernel = columns(np.arange(n))

        def all_gains(st, available):
            return np.where(available, gains(st, kernel), -np.inf)

        def step(st, i):
            return update(st, kernel[:, i])

        return greedy_replay(runs, all_gains, step, state, np.ones(n, bool))
    d, j = runs["distil"], runs["jaxal"]
    diverge = next((t for t in range(len(d)) if d[t] != j[t]), None)
    out: dict[str, Any] = {"first_divergence": diverge, "identical_fraction": overlap(d, j)}
    if diverge is not None:
        out["parting_picks"] = [int(d[diverge]), int(j[diverge])]
        for i in d[:diverge]:
            state = update(state, columns(np.array([i]))[:, 0])
        gd, gj = (float(g) for g in gains(state, columns(np.array([d[diverge], j[diverge]]))))
        out["divergence_gains"] = [gd, gj]
        out["divergence_rel_gap"] = abs(gd - gj) / max(abs(gd), abs(gj), 1e-300)
    return out


def unit_rows(points: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(points, axis=1)
    return points / np.where(norms > 0, norms, 1.0)[:, None]


def facility_location_replay(points: np.ndarray, runs) -> dict:
    """Facility location over submodlib's dense cosine kernel (diagonal 1; the memo starts
    at 0), ground set = ``points``."""
    unit = unit_rows(points)

    def columns(idx):
        cols = unit @ unit[idx].T
        cols[idx, np.arange(len(idx))] = 1.0
        return cols

    def gains(memo, cols):
        return np.maximum(cols - memo[:, None], 0.0).sum(0)

    return memo_replay(runs, len(points), columns, gains, np.maximum, np.zeros(len(points)))


def information_replay(name: str, ref: Reference, runs, distil) -> dict:
    """SMI fl1mi / fl2mi, SCG flcg, SCMI flcmi over DISTIL's kernels (gradient
    embeddings, bias_linear, at predicted labels for the pool and true labels for the query
    and private sets; cosine, then (K + 1) / 2; eta = nu = 1).

    The gradient embeddings are DISTIL's own where its worker recorded them (level B:
    a nearly saturated point's gradient, p - onehot with p_max within 1e-5 of 1, has a
    direction set by float32 rounding, so any other computation of it differs), else
    :meth:`Reference.gradients`.
    """

    def gradients(set_name, x, labels):
        recorded = distil.get(f"gradients_{set_name}")
        if recorded is not None:
            return recorded.astype(np.float64)
        return ref.gradients(x, labels)

    pool = unit_rows(gradients("pool", ref.x, None))
    query = unit_rows(gradients("query", ref.x_query, ref.y_query))
    private = unit_rows(gradients("private", ref.x_private, ref.y_private))
    n = len(pool)

    def k3(a, b):
        return (a @ b.T + 1.0) / 2.0

    def columns(idx):
        return k3(pool, pool[idx])

    if name == "fl2mi":  # the state is a memo over the query points
        sq = k3(pool, query)  # [N, Q]

        def q_columns(idx):
            return sq[idx].T  # [Q, len(idx)]

        def q_gains(memo, cols):
            return np.maximum(cols - memo[:, None], 0.0).sum(0) + cols.max(0)

        return memo_replay(runs, n, q_columns, q_gains, np.maximum, np.zeros(len(query)))
    if name == "fl1mi":
        qmax = k3(pool, query).max(1)

        def gains(memo, cols):
            new = np.minimum(np.maximum(memo[:, None], cols), qmax[:, None])
            return (new - np.minimum(memo, qmax)[:, None]).sum(0)

        return memo_replay(runs, n, columns, gains, np.maximum, np.zeros(n))
    private_max = np.maximum(k3(pool, private).max(1), 0.0)
    if name == "flcg":

        def cg_gains(memo, cols):
            return np.maximum(cols - memo[:, None], 0.0).sum(0)

        return memo_replay(runs, n, columns, cg_gains, np.maximum, private_max)
    if name == "flcmi":
        both = np.maximum(private_max, k3(pool, query).max(1))

        def cmi_gains(state, cols):
            m_p, m_qp = state
            return np.maximum(cols - m_p[:, None], 0.0).sum(0) - np.maximum(
                cols - m_qp[:, None], 0.0
            ).sum(0)

        def cmi_update(state, col):
            return (np.maximum(state[0], col), np.maximum(state[1], col))

        return memo_replay(runs, n, columns, cmi_gains, cmi_update, (private_max, both))
    raise ValueError(name)


def badge_replay(ref: Reference, picks: dict[str, np.ndarray], uniforms: np.ndarray) -> dict:
    """BADGE's D^2 sampling in float64 with DISTIL's uniforms (no 1e-6): where each
    sequence leaves the exact one, and how close the uniform was to a CDF boundary."""
    a = ref.probs - np.eye(ref.probs.shape[1])[ref.probs.argmax(1)]
    h = ref.emb
    a_sq, h_sq = (a**2).sum(1), (h**2).sum(1)
    norm_sq = a_sq * h_sq

    def dist_sq(i):
        return np.maximum(norm_sq + norm_sq[i] - 2 * (a @ a[i]) * (h @ h[i]), 0.0)

    exact = [int(np.argmax(norm_sq))]
    nearest = dist_sq(exact[0])
    margins = [np.inf]
    for u in uniforms:
        cdf = np.cumsum(nearest) / nearest.sum()
        i = int(np.searchsorted(cdf, u, side="left"))
        margins.append(min(abs(cdf[i] - u), abs(u - (cdf[i - 1] if i else 0.0))))
        exact.append(i)
        nearest = np.minimum(nearest, dist_sq(i))
    exact = np.asarray(exact)
    out: dict[str, Any] = {}
    for lib, seq in picks.items():
        t = next((t for t in range(len(seq)) if seq[t] != exact[t]), None)
        out[f"{lib}_leaves_exact_at"] = t
        if t is not None:
            out[f"{lib}_cdf_margin_there"] = float(margins[t])
    out["identical_fraction"] = overlap(picks["distil"], picks["jaxal"])
    out["identical_order"] = bool(np.array_equal(picks["distil"], picks["jaxal"]))
    return out


def kmeans_cost(emb: np.ndarray, chosen: np.ndarray) -> float:
    """Mean squared distance from each pool point to its nearest chosen point."""
    centers = emb[chosen[chosen >= 0]]
    c_sq = (centers**2).sum(1)
    total = 0.0
    for start in range(0, len(emb), 4096):
        block = emb[start : start + 4096]
        sq = (block**2).sum(1)[:, None] + c_sq[None] - 2 * block @ centers.T
        total += float(np.maximum(sq.min(1), 0.0).sum())
    return total / len(emb)


def agree(name, spec, ref: Reference, distil, jaxal_out, budget) -> dict[str, Any]:
    """The agreement record (with a one-line ``summary``) for one row."""
    d_runs = [r for r in distil["indices"]] if distil is not None else []
    j_runs = [r for r in jaxal_out["indices"]]
    if not d_runs:
        return {"summary": ""}
    kind = spec.agreement
    d, j = d_runs[0], j_runs[0]
    rec: dict[str, Any] = {"kind": kind}
    if kind == "top_k":
        rec.update(top_k_agreement(d, j, reference_scores(name, ref)))
        rec["summary"] = top_k_summary(rec)
    elif kind in ("mc", "batchbald", "stochastic"):
        rec.update(stochastic_summary(name, ref, d_runs, j_runs, budget))
        if "level_b_indices" in jaxal_out:
            lb = jaxal_out["level_b_indices"][0]
            if kind == "mc":
                key = "mc_mean_probs" if name != "bald" else "mc_probs"
                samples = distil[key].astype(np.float64)
                if name == "bald":
                    score = entropy(samples.mean(0)) - entropy(samples).mean(0)
                else:
                    score = uncertainty(name.removesuffix("_mc"), samples)
                level = top_k_agreement(d, lb, score)
                rec["level_b"] = level
                rec["summary"] += "; on DISTIL's MC samples: " + top_k_summary(level)
            else:
                rec["level_b_overlap"] = overlap(d, lb)
                rec["level_b_mean_score"] = float(reference_scores(name, ref)[lb].mean())
                rec["summary"] += (
                    f"; jaxal's selector on DISTIL's samples: overlap {overlap(d, lb):.2f}, "
                    f"mean BALD {rec['level_b_mean_score']:.3g}"
                )
    elif kind == "coreset":
        rec.update(coreset_replay(ref, {"distil": d, "jaxal": j}))
        rec["summary"] = greedy_summary(rec)
    elif kind == "badge":
        if "level_b_indices" in jaxal_out and "badge_uniforms" in distil:
            lb = jaxal_out["level_b_indices"][0]
            rec.update(badge_replay(ref, {"distil": d, "jaxal": lb}, distil["badge_uniforms"][0]))
            rec["summary"] = badge_summary(rec)
        rec["own_uniforms"] = stochastic_summary(name, ref, d_runs, j_runs, budget)
        rec["summary"] = (
            rec.get("summary", "no injected uniforms")
            + "; own draws: "
            + rec["own_uniforms"]["summary"]
        )
    elif kind == "kmeans":
        rec.update(stochastic_summary(name, ref, d_runs, j_runs, budget))
        rng = np.random.default_rng(0)
        random_cost = np.mean(
            [
                kmeans_cost(ref.emb, rng.choice(len(ref.emb), budget, replace=False))
                for _ in range(3)
            ]
        )
        rec["cost_distil"] = float(np.mean([kmeans_cost(ref.emb, r) for r in d_runs]))
        rec["cost_jaxal"] = float(np.mean([kmeans_cost(ref.emb, r) for r in j_runs]))
        rec["cost_random"] = float(random_cost)
        rec["summary"] += (
            f"; k-means cost DISTIL {rec['cost_distil']:.4g}, jaxal {rec['cost_jaxal']:.4g} "
            f"(random {random_cost:.4g})"
        )
    elif kind == "fass":
        score = reference_scores("entropy", ref)
        filtered = np.argsort(-score, kind="stable")[: min(5 * budget, len(score))]
        position = {int(i): t for t, i in enumerate(filtered)}
        outside = [int(i) for i in np.concatenate([d, j]) if int(i) not in position]
        rec["picks_outside_reference_filter"] = outside[:10]
        if outside:
            rec["identical_fraction"] = overlap(d, j)
            rec["summary"] = (
                f"{overlap(d, j):.2f} identical; {len(outside)} picks outside the float64 "
                "top-5k entropy filter (tie band at its edge?)"
            )
        else:
            local = {
                "distil": np.array([position[int(i)] for i in d]),
                "jaxal": np.array([position[int(i)] for i in j]),
            }
            rec.update(facility_location_replay(ref.emb[filtered], local))
            rec["summary"] = greedy_summary(rec)
    elif kind == "facility_location":
        rec.update(facility_location_replay(ref.emb, {"distil": d, "jaxal": j}))
        rec["summary"] = greedy_summary(rec)
    elif kind == "information":
        rec.update(information_replay(name, ref, {"distil": d, "jaxal": j}, distil))
        rec["distil_gradients"] = "gradients_pool" in distil
        rec["summary"] = greedy_summary(rec, ref)
    elif kind == "perturbation":
        rec.update(perturbation_agreement(name, distil, jaxal_out, d, j))
    else:
        rec["identical_fraction"] = overlap(d, j)
        rec["identical_order"] = bool(np.array_equal(d, j))
        rec["summary"] = f"{rec['identical_fraction']:.2f} identical (as sets)"
    if "compat_indices" in jaxal_out:
        c = jaxal_out["compat_indices"][0]
        rec["compat"] = spec.compat
        rec["compat_identical_fraction"] = overlap(d, c)
        settings = ", ".join(f"{k}={v!r}" for k, v in spec.compat.items())
        rec["summary"] += f"; with {settings}: {overlap(d, c):.2f} identical"
    return rec


def top_k_summary(rec: dict) -> str:
    if rec["identical_fraction"] == 1.0:
        return "identical" + (" (same order)" if rec["identical_order"] else "")
    if rec["equal_outside_band"]:
        return (
            f"{rec['identical_fraction']:.2f} identical; equal outside a tie band of "
            f"{rec['tie_band']}"
        )
    return (
        f"{rec['identical_fraction']:.2f} identical; {rec['differ_outside_band']} differ "
        "outside the tie band"
    )


def greedy_summary(rec: dict, ref: Reference | None = None) -> str:
    """One line: identical or where the sequences part (exact / near tie or the gains'
    gap), with each pick's top probability where gradients are involved (``ref``)."""
    parts = [f"{rec['identical_fraction']:.2f} identical"]
    if rec["first_divergence"] is None:
        parts[0] = "identical (same order)"
    else:
        gap = rec.get("divergence_rel_gap")
        gap_text = f", gains rel. gap {gap:.1e}" if gap is not None else ""
        tie = ""
        if gap is not None and gap <= GREEDY_RTOL:
            tie = " (exact tie)" if gap <= 1e-12 else " (near tie)"
        parts.append(f"part at step {rec['first_divergence']}{tie}{gap_text}")
        if ref is not None and "parting_picks" in rec:
            p_max = [float(ref.probs[i].max()) for i in rec["parting_picks"]]
            rec["parting_picks_p_max"] = p_max
            parts[-1] += " (picks' p_max " + ", ".join(f"{p:.6f}" for p in p_max) + ")"
            if max(p_max) > 1 - 1e-5:
                parts[-1] += ": a nearly saturated point's gradient direction is float32 rounding"
    for lib in ("distil", "jaxal"):
        bad = rec.get(f"{lib}_non_greedy_steps")
        if bad:
            parts.append(f"{lib} non-greedy at steps {bad}")
    return "; ".join(parts)


def badge_summary(rec: dict) -> str:
    if rec["identical_order"]:
        return "injected uniforms: identical (same order)"
    parts = [f"injected uniforms: {rec['identical_fraction']:.2f} identical"]
    for lib in ("distil", "jaxal"):
        t = rec.get(f"{lib}_leaves_exact_at")
        if t is not None:
            parts.append(
                f"{lib} leaves the float64 replay at step {t} "
                f"(CDF margin {rec[f'{lib}_cdf_margin_there']:.1e})"
            )
    return "; ".join(parts)


def stochastic_summary(name, ref, d_runs, j_runs, budget) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "overlap_distil_jaxal": pairwise_overlap(d_runs, j_runs),
        "overlap_distil_distil": pairwise_overlap(d_runs),
        "overlap_jaxal_jaxal": pairwise_overlap(j_runs),
        "runs": [len(d_runs), len(j_runs)],
    }

    def fmt_overlap(v):
        return "-" if v is None else f"{v:.2f}"

    summary = (
        f"overlap D-J {fmt_overlap(rec['overlap_distil_jaxal'])} (D-D "
        f"{fmt_overlap(rec['overlap_distil_distil'])}, J-J "
        f"{fmt_overlap(rec['overlap_jaxal_jaxal'])})"
    )
    if name in SCORED_STOCHASTIC:
        score = reference_scores(name, ref)
        rec["mean_score_distil"] = float(np.mean([score[r[r >= 0]].mean() for r in d_runs]))
        rec["mean_score_jaxal"] = float(np.mean([score[r[r >= 0]].mean() for r in j_runs]))
        rec["mean_score_top_k"] = float(np.sort(score)[::-1][:budget].mean())
        rec["mean_score_pool"] = float(score.mean())
        summary += (
            f"; mean score D {rec['mean_score_distil']:.4g}, J {rec['mean_score_jaxal']:.4g} "
            f"(top-k {rec['mean_score_top_k']:.4g}, pool {rec['mean_score_pool']:.4g})"
        )
    rec["summary"] = summary
    return rec


SCORED_STOCHASTIC = ("entropy_mc", "margin_mc", "least_confidence_mc", "bald", "batchbald")


def perturbation_agreement(name, distil, jaxal_out, d, j) -> dict[str, Any]:
    """DeepFool / BIM: per-point perturbations, then the picks modulo the k-th score's band."""
    rec: dict[str, Any] = {}
    if "perturbation" not in distil or "jaxal_sq_norm" not in jaxal_out:
        rec["identical_fraction"] = overlap(d, j)
        rec["summary"] = f"{rec['identical_fraction']:.2f} identical (as sets)"
        return rec
    pd = distil["perturbation"]
    pj = jaxal_out["jaxal_sq_norm"].astype(np.float64)
    flipped = jaxal_out["jaxal_flipped"]
    rtol = 1e-3 if name == "deepfool" else 1e-6
    close = np.abs(pd - pj) <= rtol * np.maximum(np.abs(pd), 1e-12) + 1e-9
    rec["points_close"] = float(close.mean())
    rec["jaxal_not_flipped"] = int((~flipped).sum())
    rec["distil_zero_score"] = int((pd == 0).sum())
    # Rank as DISTIL does (ascending ||r||^2) for the tie band; jaxal additionally puts
    # never-flipped points last.
    score = -pd
    band_rtol = rtol if name == "deepfool" else TIE_RTOL
    rec.update(top_k_agreement(d, j, score, band_rtol))
    rec["summary"] = (
        top_k_summary(rec)
        + f"; per-point ||r||^2 within {rtol:g}: {rec['points_close']:.3f}; never flipped "
        f"(jaxal): {rec['jaxal_not_flipped']}, DISTIL score 0: {rec['distil_zero_score']}"
    )
    return rec


# --- output ---------------------------------------------------------------------------------


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| strategy | N | budget | DISTIL s | jaxal s | jaxal compile s | speed-up "
        "| peak MB DISTIL / jaxal | agreement | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        distil, jaxal = row["distil"], row["jaxal"]
        speedup = row.get("speedup")
        peak = " / ".join(
            f"{side['peak_rss_mb']:.0f}" if side.get("peak_rss_mb") else "-"
            for side in (distil, jaxal)
        )
        cells = [
            row["strategy"],
            f"{row['n']:,}",
            str(row["budget"]),
            distil_cell(distil),
            fmt(jaxal.get("median_s")) or jaxal.get("status", ""),
            fmt(jaxal.get("compile_s")),
            f"{speedup:.3g}x" if speedup else "",
            peak,
            row.get("agreement", {}).get("summary", "").replace("|", "/"),
            row.get("note", "").replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def distil_cell(distil: dict) -> str:
    status = distil.get("status")
    if distil.get("median_s") is not None:
        text = fmt(distil["median_s"])
        return text + ("*" if distil.get("calls", 0) < distil.get("repeats", 0) else "")
    if status == "timeout":
        return f"> {distil['timeout']:.0f} s"
    if status == "skipped" and distil.get("reason"):
        return distil["reason"]
    return status or ""


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["n"], r["budget"]) for r in rows})
    if not groups:
        return
    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 3.2 * len(groups)), squeeze=False)
    for ax, (n, budget) in zip(axes[:, 0], groups, strict=True):
        sel = [r for r in rows if r["n"] == n and r["budget"] == budget]
        names = [r["strategy"] for r in sel]
        x = np.arange(len(sel))
        d = [r["distil"].get("median_s") or np.nan for r in sel]
        j = [r["jaxal"].get("median_s") or np.nan for r in sel]
        ax.bar(x - 0.2, d, 0.4, label="DISTIL", color="tab:orange")
        ax.bar(x + 0.2, j, 0.4, label="jaxal", color="tab:blue")
        for xi, r in zip(x, sel, strict=True):
            if r["distil"].get("status") == "timeout":
                ax.annotate(">limit", (xi - 0.2, 1), ha="center", fontsize=7, rotation=90)
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel("seconds per select")
        ax.set_title(f"N = {n:,}, budget {budget}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def jaxal_info() -> dict[str, Any]:
    """jaxal's registry and versions, from a child process: this driver never imports
    jax (it forks the jobs, and a forked multithreaded JAX process can deadlock)."""
    code = (
        "import json, jax, jaxal; print(json.dumps({'registry': sorted(jaxal.strategies.REGISTRY),"
        " 'jax': jax.__version__, 'jaxal': jaxal.__version__, 'backend': jax.default_backend(),"
        " 'device': jax.devices()[0].device_kind}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"jaxal does not import here:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def environment(jaxal: dict, distil_info: dict) -> dict[str, Any]:
    return {
        **{k: v for k, v in jaxal.items() if k != "registry"},
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "distil": distil_info,
    }


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--distil-src",
        type=Path,
        default=REPO.parent / "distil-src",
        help="a checkout of decile-team/distil (default ../distil-src beside the repository)",
    )
    parser.add_argument(
        "--distil-venv",
        type=Path,
        default=REPO.parent / "distil-venv",
        help="DISTIL's virtual environment, created if missing (default ../distil-venv)",
    )
    parser.add_argument("--torch-spec", default="torch==2.13.0", help="pip spec for PyTorch")
    parser.add_argument("--pip-args", default="", help="extra pip arguments, e.g. an index URL")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 50000])
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(SPECS),
        metavar="NAME",
        help="default: all of " + ", ".join(SPECS),
    )
    parser.add_argument("--repeats", type=int, default=3, help="DISTIL select calls (max)")
    parser.add_argument(
        "--jaxal-repeats", type=int, default=5, help="jaxal timed calls after 1 warm-up"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per DISTIL (or jaxal) job"
    )
    parser.add_argument(
        "--distil-memory-gb",
        type=float,
        default=None,
        help="address-space cap of a DISTIL job (default: 70%% of RAM, at most 16 GB)",
    )
    parser.add_argument("--seed", type=int, default=0, help="workload and call seeds")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results" / "compare_distil.json", help="JSON output"
    )
    parser.add_argument(
        "--figure", type=Path, default=HERE / "results" / "compare_distil.png", help="bar chart"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=HERE / "results" / "compare_distil",
        help="workloads, job outputs and logs",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: N 2,000, budget 100, 1 DISTIL call, 2 jaxal calls, 10 strategies",
    )
    parser.add_argument("--jaxal-job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jaxal_job:
        return args
    if args.quick:
        args.sizes, args.budgets, args.repeats, args.jaxal_repeats = [2000], [100], 1, 2
        if args.strategies == list(SPECS):
            args.strategies = QUICK_STRATEGIES
    unknown = [s for s in args.strategies if s not in SPECS]
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(SPECS)}")
    if args.repeats < 1 or args.jaxal_repeats < 1:
        parser.error("--repeats and --jaxal-repeats must be >= 1")
    if not (args.distil_src / "distil" / "active_learning_strategies").is_dir():
        parser.error(
            f"--distil-src {args.distil_src} is not a DISTIL checkout "
            "(git clone https://github.com/decile-team/distil)"
        )
    return args


def memory_cap(args: argparse.Namespace) -> int:
    if args.distil_memory_gb is not None:
        return int(args.distil_memory_gb * 2**30)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(min(0.7 * total, 16 * 2**30))


def expected_seconds(spec: Spec, done: dict, name: str, n: int, budget: int) -> str | None:
    """Why DISTIL cannot finish (name, n, budget) in time, judging by smaller runs."""
    for (other, n0, b0), result in done.items():
        if other != name or (n0, b0) == (n, budget) or n0 > n or b0 > budget:
            continue
        if result["status"] == "timeout":
            return f"skipped: > {result['timeout']:.0f} s at N = {n0:,}, budget {b0}"
        seconds = result.get("median_s")
        if seconds is None:
            continue
        estimate = seconds * (n / n0) ** spec.n_exponent * (budget / b0) ** spec.budget_exponent
        if estimate > result["timeout"]:
            return (
                f"skipped: ~{estimate:.0f} s expected ({seconds:.3g} s at N = {n0:,}, budget {b0})"
            )
    return None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.jaxal_job:
        jaxal_job(json.loads(Path(args.jaxal_job).read_text()))
        return

    python = distil_python(args)
    distil_info = distil_versions(python, args.distil_src)
    jaxal = jaxal_info()
    env = environment(jaxal, distil_info)
    log(
        f"DISTIL {distil_info['distil_commit']} (torch {distil_info['torch']}) vs jaxal "
        f"{env['jaxal']} (jax {env['jax']}), {env['cpu_count']} CPUs"
    )
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    cap = memory_cap(args)
    rows: list[dict] = []
    done: dict[tuple[str, int, int], dict] = {}
    started = time.perf_counter()

    def save() -> None:
        report = {
            "environment": env,
            "settings": {
                k: (repo_relative(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
                if k != "jaxal_job"
            }
            | {
                "distil_batch_size": 1000,
                "jaxal_batch_size": JAXAL_BATCH_SIZE,
                "labeled": _workload.LABELED,
                "model": "MLP 64 -> 128 (ReLU) -> dropout 0.5 -> 10; N unlabeled pool "
                "points plus 1,000 labeled",
                "distil_memory_cap_gb": cap / 2**30,
            },
            "rows": rows,
            "table_markdown": markdown_table(rows),
            "elapsed_s": time.perf_counter() - started,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=to_json) + "\n")

    for n in args.sizes:
        workload_path = work / f"workload_n{n}_seed{args.seed}.npz"
        workload = _workload.compare_workload(n, args.seed)
        _workload.save_npz(workload_path, **workload)
        ref = Reference(workload)
        accuracy = np.mean(ref.probs.argmax(1) == workload["y_pool"])
        log(f"N={n:,}: model accuracy on the pool {accuracy:.2f}")
        for budget in args.budgets:
            for name in args.strategies:
                spec = SPECS[name]
                row: dict[str, Any] = {
                    "strategy": name,
                    "n": n,
                    "budget": budget,
                    "jaxal_strategy": spec.jaxal[0],
                    "jaxal_hparams": spec.jaxal[1],
                    "note": spec.note,
                    "distil": {},
                    "jaxal": {},
                }
                if spec.jaxal[0] not in jaxal["registry"]:
                    row["note"] = f"not in jaxal's registry yet: skipped. {spec.note}".strip()
                    row["distil"] = {"status": "skipped"}
                    row["jaxal"] = {"status": "missing"}
                    rows.append(row)
                    save()
                    log(f"  {name}: not in jaxal's registry, skipped")
                    continue
                tag = f"{name}_n{n}_b{budget}"
                # DISTIL first, then jaxal: never at the same time.
                distil_out = work / f"distil_{tag}.npz"
                distil_out.unlink(missing_ok=True)
                skip = expected_seconds(spec, done, name, n, budget)
                if skip:
                    row["distil"] = {"status": "skipped", "reason": skip, "timeout": args.timeout}
                else:
                    command = [
                        str(python),
                        str(HERE / "_distil_worker.py"),
                        "--distil-src",
                        str(args.distil_src),
                        "--workload",
                        str(workload_path),
                        "--strategy",
                        name,
                        "--budget",
                        str(budget),
                        "--repeats",
                        str(args.repeats),
                        "--timeout",
                        str(args.timeout),
                        "--seed",
                        str(args.seed),
                        "--memory-bytes",
                        str(cap),
                        "--min-calls",
                        str(2 if spec.stochastic else 1),
                        "--out",
                        str(distil_out),
                    ]
                    status, wall = run_job(command, args.timeout, work / f"distil_{tag}.log")
                    row["distil"] = summarize_distil(
                        status, wall, read_job(distil_out), args, work / f"distil_{tag}.log"
                    )
                done[(name, n, budget)] = row["distil"]
                distil = read_job(distil_out) if row["distil"].get("calls") else None

                jaxal_out = work / f"jaxal_{tag}.npz"
                jaxal_out.unlink(missing_ok=True)
                job = {
                    "workload": str(workload_path),
                    "strategy": name,
                    "budget": budget,
                    "jaxal": spec.jaxal,
                    "batch_size": spec.jaxal_batch_size,
                    "compat": spec.compat,
                    "repeats": args.jaxal_repeats,
                    "timeout": args.timeout,
                    "seed": args.seed,
                    "out": str(jaxal_out),
                    "distil_out": str(distil_out) if distil is not None else None,
                }
                job_path = work / f"jaxal_{tag}.json"
                job_path.write_text(json.dumps(job))
                status, wall = run_job(
                    [sys.executable, str(Path(__file__).resolve()), "--jaxal-job", str(job_path)],
                    args.timeout,
                    work / f"jaxal_{tag}.log",
                )
                jaxal_result = read_job(jaxal_out) if status == "ok" else None
                row["jaxal"] = summarize_jaxal(
                    status, wall, jaxal_result, work / f"jaxal_{tag}.log"
                )
                if row["distil"].get("median_s") and row["jaxal"].get("median_s"):
                    row["speedup"] = row["distil"]["median_s"] / row["jaxal"]["median_s"]
                if distil is not None and jaxal_result is not None:
                    try:
                        row["agreement"] = agree(name, spec, ref, distil, jaxal_result, budget)
                    except Exception as exc:  # a broken comparison must not end the run
                        row["agreement"] = {"summary": f"comparison failed: {exc!r}"[:200]}
                rows.append(row)
                save()
                jaxal_s = row["jaxal"].get("median_s")
                log(
                    f"  {name} N={n:,} budget={budget}: DISTIL {distil_cell(row['distil'])}"
                    f"{' s' if row['distil'].get('median_s') else ''}, jaxal "
                    f"{fmt(jaxal_s) + ' s' if jaxal_s else row['jaxal']['status']}; "
                    f"{row.get('agreement', {}).get('summary', '')}"
                )

    table = markdown_table(rows)
    print(table)
    save()
    plot(rows, args.figure)
    log(f"wrote {args.out} and {args.figure} ({time.perf_counter() - started:.0f} s)")


def summarize_distil(status, wall, result, args, log_path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": status,
        "wall_s": wall,
        "repeats": args.repeats,
        "timeout": args.timeout,
    }
    if result is not None:
        times = result["times"].tolist()
        out.update(
            calls=len(times),
            times_s=times,
            median_s=statistics.median(times) if times else None,
            peak_rss_mb=float(result["peak_rss_mb"]) if times else None,
            meta=result["meta"],
        )
        if result["meta"].get("error"):
            out["error"] = result["meta"]["error"]
    if status in ("error", "killed") and not out.get("error"):
        out["error"] = tail(log_path)
    if status != "ok" and out.get("calls"):
        out["status"] = "ok"  # some calls finished before the limit
        out["ended"] = status
    if out.get("error") and not out.get("calls"):
        out["status"] = "fails: " + out["error"][:80]
    return out


def summarize_jaxal(status, wall, result, log_path) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "wall_s": wall}
    if result is None:
        out["error"] = tail(log_path)
        out["status"] = "fails: " + out["error"][-80:] if status != "timeout" else "timeout"
        return out
    times = result["times"].tolist()
    out.update(
        times_s=times,
        median_s=statistics.median(times),
        min_s=min(times),
        compile_s=float(result["compile_s"]),
        peak_rss_mb=float(result["peak_rss_mb"]),
        meta=result["meta"],
    )
    return out


def to_json(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


if __name__ == "__main__":
    main()

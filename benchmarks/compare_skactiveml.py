"""jaxal and scikit-activeml side by side: cold-start and low-budget strategies on embeddings.

Both libraries get the same seeded embeddings, labeled set and budget, with settings
matched so that they do the same work, and each (library, strategy, N) runs in its own
process (this script with ``--worker``), one at a time, so that each job's peak resident
memory can be measured. For every pool size N and strategy the driver runs

1. jaxal: ``jax.jit(strategy.select).lower(params, pool, key).compile()`` (compile seconds
   reported separately), ``--warmup`` untimed calls of the compiled function, then
   ``--repeats`` timed calls with fresh keys, each ``jax.block_until_ready``;
2. then scikit-activeml 1.0.1 (``skactiveml.pool``): ``--warmup`` untimed ``query`` calls,
   then ``--repeats`` timed ones, each on a fresh query-strategy object (ProbCover caches
   its N x N distances and its delta on the object at the first query) with
   ``random_state`` = seed + call.

Every job runs under ``--timeout`` seconds (killed at the limit; the calls it finished
still count) and an address-space cap of ``--max-gb`` GiB (``resource.setrlimit
(RLIMIT_AS)`` in the job), so a job that needs an N x N matrix it cannot hold stops with a
``MemoryError`` and is reported as failed with that reason. A job stops starting new calls
once another call would likely pass 80% of its time limit; a row whose median is its
warm-up call alone is marked "*". Peak memory is the job's resident high-water mark
(``ru_maxrss`` from ``os.wait4``: interpreter, libraries and the workload included).

The workload (``make_workload``, NumPy only, rebuilt identically in each job): ``--classes``
Gaussian blobs in D = ``--dim`` dimensions (unit-variance centers, within-blob standard
deviation ``BLOB_STD``), every point scaled to unit L2 norm (as every one of these methods
expects its features: the papers use L2-normalised self-supervised embeddings) and stored
as float32; ``--labeled`` points drawn at random with their blob as label (0: cold start);
budget ``--budget``. DropQuery needs a classifier: both libraries get the same linear one,
W = the unit blob centers (transposed) times ``LOGIT_SCALE``, bias 0 (with no bias,
scikit-activeml's zeroed, unscaled inputs and jaxal's inverted dropout predict the same
classes for the same mask). jaxal's model returns (x @ W + b, x) with ``head`` the linear
layer, so its dropout acts on the embedding = the input, as scikit-activeml's does;
scikit-activeml gets a ``SklearnClassifier(LogisticRegression(fit_intercept=False))`` set
up on C dummy points and given ``coef_`` = W^T, ``intercept_`` = 0 (``fit_clf=False``).

The matched settings (``SETTINGS``, also written to the JSON):

* MaxHerding: Gaussian kernel exp(-||x - x'||^2 / h^2), h = 1 (jaxal's ``bandwidth``;
  scikit-activeml's ``metric="rbf"`` with gamma = 1 / h^2), unit-normalised points.
* TypiClust: |L| + budget k-means clusters (one k-means++ run, at most 100 Lloyd
  iterations), typicality from K = 5 nearest neighbours (scikit-activeml's ``k``, jaxal's
  ``neighbors``), clusters of every size (jaxal ``min_cluster_size=0``).
* ProbCover: delta chosen by ball purity >= 0.95 over the grid 0.2, 0.4, ..., 2.0 with a
  k-means of 10 pseudo-classes (one run, 100 iterations) in both; jaxal's edges are
  ``<`` delta, scikit-activeml's ``<=`` (the same for continuous data).
* DropQuery: 3 dropout passes at rate 0.75, candidates = the unlabeled points most of the
  passes disagree on (jaxal ``candidates_per_pick=0``: no widening), k-means (one run,
  100 iterations) of the candidates' embeddings into ``budget`` clusters. With fewer
  candidates than the budget jaxal fills at random, scikit-activeml by disagreement.
  With ``--labeled 0`` jaxal clusters every point (its cold-start rule: an untrained
  head's disagreement means nothing) while scikit-activeml still filters by the given
  classifier's disagreement: not the same work there.

Both libraries' k-means use k-means++ seeding with different random streams (and
scikit-learn's ``tol`` is relative to the data's variance, jaxal's to the inertia), so
picks that go through k-means agree in distribution, not point for point; the overlap
column (|jaxal picks & scikit-activeml picks| / budget, first call of each) says how far.
MaxHerding and ProbCover are deterministic greedy maximisations and should overlap
almost fully (ties aside). TypiClust and ProbCover rows appear only with a jaxal that
has them in ``jaxal.strategies.REGISTRY``. scikit-activeml 1.0.1 has no UHerding.

It prints a markdown table and writes every number (with the environment, date and jaxal
commit) to ``--out``, rewritten after each row; job logs and results stay in
``--work-dir``.

Usage::

    python benchmarks/compare_skactiveml.py --sizes 2000 --repeats 1     # smoke run
    python benchmarks/compare_skactiveml.py                              # N = 10,000, 50,000
    python benchmarks/compare_skactiveml.py --sizes 50000 --strategies maxherding --max-gb 32

Run it on a quiet machine: other processes on the same cores distort both sides.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BLOB_STD = 2.0  # within-blob standard deviation per dimension (centers ~ N(0, 1))
LOGIT_SCALE = 10.0  # DropQuery's linear classifier: W = LOGIT_SCALE * unit centers^T
BANDWIDTH = 1.0  # MaxHerding's h: exp(-d^2 / h^2); scikit-learn's gamma = 1 / h^2
TYPICLUST_K = 5  # typicality neighbours (scikit-activeml's default k)
PROBCOVER_DELTAS = [round(0.2 * i, 1) for i in range(1, 11)]  # scikit-activeml's grid
PROBCOVER_ALPHA = 0.95
DROPQUERY_SAMPLES = 3
DROPQUERY_RATE = 0.75
KMEANS = {"n_init": 1, "max_iter": 100, "tol": 1e-4}

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import REPO_ROOT, fmt, jaxal_commit, repo_relative  # noqa: E402

STRATEGIES = ("maxherding", "typiclust", "probcover", "dropquery")

# jaxal: registry name -> hyperparameters (maxherding, typiclust and probcover take the
# raw embeddings with model None; dropquery the linear model below).
JAXAL_HPARAMS: dict[str, dict[str, Any]] = {
    "maxherding": {"representation": "raw", "bandwidth": BANDWIDTH, "normalize": True},
    "typiclust": {
        "representation": "raw",
        "normalize": True,
        "neighbors": TYPICLUST_K,
        "min_cluster_size": 0,
        **KMEANS,
    },
    "probcover": {
        "representation": "raw",
        "normalize": True,
        "deltas": PROBCOVER_DELTAS,
        "alpha": PROBCOVER_ALPHA,
        "classes": None,  # set to --classes
        **KMEANS,
    },
    "dropquery": {
        "mc_samples": DROPQUERY_SAMPLES,
        "dropout_rate": DROPQUERY_RATE,
        "candidates_per_pick": 0,
        "normalize": False,  # scikit-activeml clusters the embeddings as given (unit norm)
        **KMEANS,
    },
}

# scikit-activeml: class name in skactiveml.pool -> constructor arguments (random_state
# and the k-means seed are added per call).
SKACTIVEML_ARGS: dict[str, tuple[str, dict[str, Any]]] = {
    "maxherding": (
        "MaxHerding",
        {"metric": "rbf", "metric_dict": {"gamma": 1.0 / BANDWIDTH**2}, "normalize_samples": True},
    ),
    "typiclust": ("TypiClust", {"k": TYPICLUST_K, "cluster_algo_dict": dict(KMEANS)}),
    "probcover": (
        "ProbCover",
        {
            "n_classes": None,  # set to --classes
            "deltas": PROBCOVER_DELTAS,
            "alpha": PROBCOVER_ALPHA,
            "cluster_algo_dict": dict(KMEANS),
        },
    ),
    "dropquery": (
        "DropQuery",
        {
            "dropout_rate": DROPQUERY_RATE,
            "n_dropout_samples": DROPQUERY_SAMPLES,
            "cluster_algo_dict": dict(KMEANS),
        },
    ),
}


def settings_for(name: str, classes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(jaxal hyperparameters, scikit-activeml constructor arguments) of a strategy."""
    jaxal_hparams = dict(JAXAL_HPARAMS[name])
    class_name, sk_args = SKACTIVEML_ARGS[name]
    sk_args = json.loads(json.dumps(sk_args))  # a deep copy
    if name == "probcover":
        jaxal_hparams["classes"] = classes
        sk_args["n_classes"] = classes
    return jaxal_hparams, {"class": class_name, **sk_args}


def settings_dict(name: str, classes: int) -> dict[str, dict[str, Any]]:
    jaxal_hparams, sk_args = settings_for(name, classes)
    return {"jaxal": jaxal_hparams, "skactiveml": sk_args}


# --- the workload -------------------------------------------------------------------------


def make_workload(n: int, dim: int, classes: int, labeled: int, seed: int) -> dict[str, Any]:
    """Unit-norm float32 Gaussian-blob embeddings [n, dim], blob ids, labeled indices and
    the linear classifier (W [dim, classes], b = 0) of DropQuery; NumPy only, seeded."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (classes, dim))
    blob = rng.integers(0, classes, n)
    x = centers[blob] + rng.normal(0.0, BLOB_STD, (n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labeled_index = np.sort(rng.choice(n, size=labeled, replace=False))
    unit_centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    return {
        "x": x.astype(np.float32),
        "blob": blob.astype(np.int32),
        "labeled": labeled_index.astype(np.int64),
        "w": (LOGIT_SCALE * unit_centers.T).astype(np.float32),
        "b": np.zeros(classes, np.float32),
    }


# --- the jobs -----------------------------------------------------------------------------


def worker(job_path: Path) -> None:
    """Run one job (``job_path``: its JSON spec) and write its result to ``job["out"]``."""
    job = json.loads(job_path.read_text())
    started = time.perf_counter()
    if job.get("max_gb"):
        cap = int(job["max_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out_path = Path(job["out"])
    result: dict[str, Any] = {"status": "running", "library": job["library"]}

    def save() -> None:
        result["peak_rss_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tmp = out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(out_path)

    try:
        if job["library"] == "info":
            result.update(jaxal_info())
        else:
            run = jaxal_job if job["library"] == "jaxal" else skactiveml_job
            run(job, result, save, started)
        result["status"] = "ok"
    except BaseException as error:  # MemoryError above all: report it, then fail
        result["status"] = "failed"
        result["error"] = f"{type(error).__name__}: {error}"[:500]
        save()
        raise
    save()


def jaxal_info() -> dict[str, Any]:
    import jax

    import jaxal

    device = jax.devices()[0]
    return {
        "registry": sorted(jaxal.strategies.REGISTRY),
        "jaxal_path": repo_relative(Path(jaxal.__file__).parent),
        "jax": jax.__version__,
        "jaxal": jaxal.__version__,
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
    }


def timed_calls(call, job: dict, result: dict, save, started: float, labeled) -> None:
    """``call(i)`` ``warmup`` + ``repeats`` times, the first ``warmup`` untimed; each call's
    seconds go to ``result["call_s"]`` (saved after each call), the first call's picks to
    ``result["picks"]`` (with whether they are distinct and unlabeled). No new call starts
    once it would likely pass 80% of the job's time limit."""
    limit = 0.8 * job["timeout"]
    times: list[float] = []
    result["call_s"] = times
    for i in range(job["warmup"] + job["repeats"]):
        elapsed = time.perf_counter() - started
        if times and elapsed + 1.1 * max(times) > limit:
            result["cut_short"] = True
            break
        start = time.perf_counter()
        picks = call(i)
        times.append(time.perf_counter() - start)
        if i == 0:
            picks = np.asarray(picks).astype(int)
            result["picks"] = picks.tolist()
            result["picks_distinct"] = len(set(picks.tolist())) == len(picks)
            result["picks_unlabeled"] = not np.isin(picks, labeled).any()
        save()


def jaxal_job(job: dict, result: dict, save, started: float) -> None:
    import jax
    import jax.numpy as jnp

    import jaxal

    work = make_workload(job["n"], job["dim"], job["classes"], job["labeled"], job["seed"])
    pool = jaxal.Pool.create(work["x"], labeled=work["labeled"])
    hparams = job["jaxal_hparams"]
    if job["strategy"] == "dropquery":

        def head(params, embedding):
            return embedding @ params["w"] + params["b"]

        def apply(params, x, rng):
            return head(params, x), x

        model = jaxal.Model(apply=apply, head=head)
        params = {"w": jnp.asarray(work["w"]), "b": jnp.asarray(work["b"])}
    else:
        model, params = None, None
    strategy = jaxal.strategies.get(job["strategy"])(model, job["budget"], **hparams)
    key = jax.random.key(job["seed"])
    start = time.perf_counter()
    compiled = jax.jit(strategy.select).lower(params, pool, key).compile()
    result["compile_s"] = time.perf_counter() - start
    keys = jax.random.split(key, job["warmup"] + job["repeats"])
    timed_calls(
        lambda i: jax.block_until_ready(compiled(params, pool, keys[i])),
        job,
        result,
        save,
        started,
        work["labeled"],
    )


def skactiveml_job(job: dict, result: dict, save, started: float) -> None:
    from skactiveml import pool as skpool

    work = make_workload(job["n"], job["dim"], job["classes"], job["labeled"], job["seed"])
    x = work["x"]
    y = np.full(job["n"], np.nan)
    y[work["labeled"]] = work["blob"][work["labeled"]]
    args = dict(job["skactiveml_args"])
    cls = getattr(skpool, args.pop("class"))
    query_args: dict[str, Any] = {}
    if job["strategy"] == "dropquery":
        query_args = {"clf": linear_classifier(work["w"], work["b"]), "fit_clf": False}

    def call(i: int) -> np.ndarray:
        seed = job["seed"] + i
        kwargs = json.loads(json.dumps(args))
        if "cluster_algo_dict" in kwargs and job["strategy"] == "dropquery":
            kwargs["cluster_algo_dict"]["random_state"] = seed  # DropQuery does not seed it
        strategy = cls(random_state=seed, **kwargs)
        picks = strategy.query(x, y, batch_size=job["budget"], **query_args)
        if hasattr(strategy, "delta_max_"):
            result.setdefault("delta", float(strategy.delta_max_))
        return picks

    timed_calls(call, job, result, save, started, work["labeled"])


def linear_classifier(w: np.ndarray, b: np.ndarray):
    """scikit-activeml's wrapper of a LogisticRegression that predicts argmax(x @ w + b):
    set up (``fit``) on one dummy point per class, then given these weights."""
    from skactiveml.classifier import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    classes = w.shape[1]
    clf = SklearnClassifier(LogisticRegression(fit_intercept=False), classes=np.arange(classes))
    clf.fit(np.eye(classes, w.shape[0]), np.arange(classes, dtype=float))
    clf.estimator_.coef_ = np.ascontiguousarray(w.T, dtype=np.float64)
    clf.estimator_.intercept_ = np.asarray(b, dtype=np.float64)
    return clf


def run_job(spec: dict, work_dir: Path, python: str) -> dict[str, Any]:
    """Run one job in a fresh process (its own session) under spec["timeout"] seconds;
    returns its result with status ("ok", "failed", "timeout", "killed"), wall seconds
    and peak resident MB (``ru_maxrss`` from ``os.wait4``)."""
    stem = f"{spec['library']}_{spec.get('strategy', '')}_{spec.get('n', '')}".strip("_")
    spec = {**spec, "out": str(work_dir / f"{stem}.result.json")}
    spec_path, log_path = work_dir / f"{stem}.job.json", work_dir / f"{stem}.log"
    spec_path.write_text(json.dumps(spec, indent=1) + "\n")
    Path(spec["out"]).unlink(missing_ok=True)
    command = [python, str(Path(__file__).resolve()), "--worker", str(spec_path)]
    # The jobs import the jaxal of this checkout (the one jaxal_commit names), not another
    # one installed in the environment.
    path = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    start = time.perf_counter()
    timed_out = False
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > spec["timeout"]:
                os.killpg(process.pid, signal.SIGKILL)
                _, status, usage = os.wait4(process.pid, 0)
                timed_out = True
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    wall = time.perf_counter() - start
    result = read_json(Path(spec["out"])) or {}
    code = process.returncode
    if timed_out:
        result["status"] = "timeout"
        result["error"] = f"killed at the {spec['timeout']:.0f} s limit"
    elif result.get("status") != "ok":
        result["status"] = "killed" if code < 0 else "failed"
        result.setdefault(
            "error", f"exit {code}" + (f" (signal {-code})" if code < 0 else "") + tail(log_path)
        )
    result.update(wall_s=wall, exit_code=code, peak_rss_mb=usage.ru_maxrss / 1024)
    times = result.get("call_s") or []
    timed = times[spec.get("warmup", 0) :]
    result["warmup_only"] = bool(times) and not timed
    result["median_s"] = statistics.median(timed or times) if times else None
    result["min_s"] = min(timed or times) if times else None
    return result


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:300]}" if lines else ""


# --- output -------------------------------------------------------------------------------


def overlap(a: list[int] | None, b: list[int] | None, budget: int) -> float | None:
    if not a or not b:
        return None
    return len(set(a) & set(b)) / budget


def seconds_cell(side: dict) -> str:
    if side.get("median_s") is None:
        return f"{side.get('status')}: {side.get('error', '')}".replace("|", "/")
    cell = fmt(side["median_s"]) + ("*" if side.get("warmup_only") else "")
    if side.get("status") != "ok":
        cell += f" ({side['status']})"
    return cell


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| strategy | N | D | budget | labeled | jaxal compile s | jaxal s | skactiveml s "
        "| speed-up | jaxal MB | skactiveml MB | overlap |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        j, s = row["jaxal"], row["skactiveml"]
        cells = [
            row["strategy"],
            f"{row['n']:,}",
            str(row["dim"]),
            str(row["budget"]),
            str(row["labeled"]),
            fmt(j.get("compile_s")),
            seconds_cell(j),
            seconds_cell(s),
            f"{row['speedup']:.3g}x" if row["speedup"] else "",
            fmt(j.get("peak_rss_mb")),
            fmt(s.get("peak_rss_mb")),
            f"{row['overlap']:.2f}" if row["overlap"] is not None else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def total_memory_gb() -> float | None:
    try:
        import psutil

        return psutil.virtual_memory().total / 2**30
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        except (ValueError, OSError):
            return None


INFO_KEYS = ("jax", "jaxal", "jaxal_path", "backend", "device", "device_kind", "device_count")


def environment(info: dict[str, Any]) -> dict[str, Any]:
    return {
        **{k: info.get(k) for k in INFO_KEYS},
        "jaxlib": version("jaxlib"),
        "scikit-activeml": version("scikit-activeml"),
        "scikit-learn": version("scikit-learn"),
        "numpy": version("numpy"),
        "scipy": version("scipy"),
        "cpu_count": os.cpu_count(),
        "memory_gb": total_memory_gb(),
        "threads_env": {
            k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
        },
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "jaxal_commit": jaxal_commit(),
    }


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000], help="pool sizes N")
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(STRATEGIES),
        choices=list(STRATEGIES),
        metavar="NAME",
        help="strategies (default: all of " + ", ".join(STRATEGIES) + "; those not in\n"
        "this jaxal's registry are skipped)",
    )
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension D")
    parser.add_argument("--classes", type=int, default=10, help="Gaussian blobs (classes)")
    parser.add_argument(
        "--labeled", type=int, default=100, help="labeled points (0: cold start; default 100)"
    )
    parser.add_argument("--budget", type=int, default=100, help="points per selection")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per job")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per job")
    parser.add_argument("--seed", type=int, default=0, help="workload seed")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per job (default 1800)"
    )
    parser.add_argument(
        "--max-gb",
        type=float,
        default=16.0,
        help="address-space cap per job in GiB (RLIMIT_AS; 0: none; default 16)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/compare_skactiveml.json"),
        help="JSON output (default benchmarks/results/compare_skactiveml.json)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="job specs, results and logs (default: beside --out)",
    )
    args = parser.parse_args(argv)
    if args.worker is None:
        if args.repeats < 1 or args.warmup < 0 or args.budget < 1 or args.labeled < 0:
            parser.error("need --repeats >= 1, --warmup >= 0, --budget >= 1, --labeled >= 0")
        if min(args.sizes) < args.labeled + args.budget:
            parser.error("every size must hold the labeled points and the budget")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker is not None:
        worker(args.worker)
        return
    work_dir = args.work_dir or args.out.parent / "compare_skactiveml_jobs"
    work_dir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    base = {"timeout": args.timeout, "max_gb": args.max_gb}
    info = run_job({**base, "library": "info"}, work_dir, python)
    if info.get("status") != "ok":
        sys.exit(f"jaxal does not start: {info.get('error')}")
    env = environment(info)
    registry = set(info["registry"])
    print(
        f"jax {env['jax']} on {env['device_kind']} ({env['backend']}), {env['cpu_count']} CPUs; "
        f"scikit-activeml {env['scikit-activeml']}; warmup {args.warmup}, repeats "
        f"{args.repeats}, timeout {args.timeout:.0f} s, cap {args.max_gb:g} GiB",
        file=sys.stderr,
    )
    names = [name for name in args.strategies if name in registry]
    skipped = [name for name in args.strategies if name not in registry]
    for name in skipped:
        print(f"  {name}: not in this jaxal's registry, skipped", file=sys.stderr)
    report: dict[str, Any] = {
        "environment": env,
        "settings": {
            "sizes": args.sizes,
            "strategies": names,
            "skipped_not_in_registry": skipped,
            "dim": args.dim,
            "classes": args.classes,
            "labeled": args.labeled,
            "budget": args.budget,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "seed": args.seed,
            "timeout_s": args.timeout,
            "max_gb": args.max_gb,
            "workload": f"{args.classes} Gaussian blobs in {args.dim} dimensions (centers "
            f"N(0, 1), within-blob std {BLOB_STD}), every point L2-normalised, float32; "
            f"{args.labeled} random labeled points with their blob as label",
            "dropquery_classifier": f"linear, W = {LOGIT_SCALE} * unit blob centers^T, "
            "bias 0; jaxal: apply returns (x @ W + b, x), head = the linear layer; "
            "scikit-activeml: SklearnClassifier(LogisticRegression(fit_intercept=False)) "
            "with coef_ = W^T, fit_clf=False",
            "peak_memory": "ru_maxrss of each job's process (os.wait4), MB",
            "strategy_settings": {name: settings_dict(name, args.classes) for name in names},
        },
        "rows": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        for name in names:
            jaxal_hparams, sk_args = settings_for(name, args.classes)
            spec = {
                **base,
                "strategy": name,
                "n": n,
                "dim": args.dim,
                "classes": args.classes,
                "labeled": args.labeled,
                "budget": args.budget,
                "seed": args.seed,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "jaxal_hparams": jaxal_hparams,
                "skactiveml_args": sk_args,
            }
            sides = {}
            for library in ("jaxal", "skactiveml"):
                side = run_job({**spec, "library": library}, work_dir, python)
                sides[library] = side
                seconds = "median s " + seconds_cell(side)
                print(
                    f"  {name:>10} N={n} {library:>10}: {seconds}, "
                    f"peak {fmt(side['peak_rss_mb'])} MB, job {side['wall_s']:.1f} s",
                    file=sys.stderr,
                )
            j, s = sides["jaxal"], sides["skactiveml"]
            speedup = None
            if j.get("median_s") and s.get("median_s") and s.get("status") == "ok":
                speedup = s["median_s"] / j["median_s"]
            row = {
                "strategy": name,
                "n": n,
                "dim": args.dim,
                "budget": args.budget,
                "labeled": args.labeled,
                "speedup": speedup,
                "overlap": overlap(j.get("picks"), s.get("picks"), args.budget),
                "jaxal": j,
                "skactiveml": s,
            }
            report["rows"].append(row)
            report["table_markdown"] = markdown_table(report["rows"])
            args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown_table(report["rows"]))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

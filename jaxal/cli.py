"""The ``jaxal`` command: ``jaxal run`` runs experiments, ``jaxal plot`` redraws figures.

``jaxal run`` trains a model, selects with each strategy, reveals the labels of the picked
points, retrains and evaluates, for every strategy and seed; it prints a progress bar and
a per-round table, and writes ``results.json``, ``learning_curves.png``, the run's
``config.json`` and a checkpoint per experiment (after every round, atomically) that
``jaxal run --resume DIR`` continues from; ``--resume DIR --rounds N`` extends a killed or
finished run to N rounds, its first rounds unchanged.

Bad input (a config field, a dataset or strategy name, a budget larger than the pool)
ends with ``jaxal: error: ...`` on stderr and exit status 2; ``JAXAL_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import importlib.util
import json
import math
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from typing import IO, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxal
from jaxal import _checkpoint, _experiment, _plot
from jaxal.data import NORMALIZATIONS, Dataset, from_raw, load_raw
from jaxal.strategies import REGISTRY, Strategy
from jaxal.strategies import get as get_strategy
from jaxal.train import MODELS, Trainer, trainer

RESULTS = "results.json"
FIGURE = "learning_curves.png"
CONFIG = "config.json"


# ---------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of ``jaxal run``; a TOML config has the same fields as the flags."""

    dataset: str = "digits"
    data_dir: str | None = None
    model: str = "auto"
    strategy: tuple[str, ...] = ("entropy", "badge", "random")
    rounds: int = 10
    budget: int = 20
    initial: int = 20
    seeds: int = 5
    out: str = "results"
    steps: int = 200
    learning_rate: float = 0.01
    train_batch_size: int = 64
    warm_start: bool = False
    test_fraction: float = 0.25
    max_train: int | None = None
    max_test: int | None = None
    normalization: str = "pixels"
    hparams: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: tuples become lists."""
        out = dataclasses.asdict(self)
        out["strategy"] = list(self.strategy)
        return out


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig))


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _integer(minimum: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
        return value

    return check


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda name, value: None if value is None else check(name, value)


def _strategies(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strategy names, got {value!r}")
    names = tuple(v for v in value if v)
    if not names:
        raise ValueError(f"{name} must name at least one strategy")
    for strategy in names:
        get_strategy(strategy)  # raises ValueError listing the known names
    duplicates = sorted({s for s in names if names.count(s) > 1})
    if duplicates:
        raise ValueError(f"{name} lists {', '.join(duplicates)} more than once")
    return names


def _normalization(name: str, value: Any) -> str:
    if value not in NORMALIZATIONS:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, NORMALIZATIONS))}, got {value!r}"
        )
    return value


def _hparams(name: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a table of tables, [hparams.<strategy>]")
    for strategy, table in value.items():
        get_strategy(strategy)
        if not isinstance(table, dict):
            raise ValueError(f"{name}.{strategy} must be a table of hyperparameters")
    return {k: dict(v) for k, v in value.items()}


CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "dataset": _text,
    "data_dir": _optional(_text),
    "model": _text,
    "strategy": _strategies,
    "rounds": _integer(0),
    "budget": _integer(1),
    "initial": _integer(1),
    "seeds": _integer(1),
    "out": _text,
    "steps": _integer(1),
    "learning_rate": _positive_number,
    "train_batch_size": _integer(1),
    "warm_start": _flag,
    "test_fraction": _fraction,
    "max_train": _optional(_integer(1)),
    "max_test": _optional(_integer(1)),
    "normalization": _normalization,
    "hparams": _hparams,
}


def make_config(
    values: dict[str, Any],
    where: str | None,
    base: RunConfig | None = None,
    require_all: bool = False,
) -> RunConfig:
    """``base`` (default: the defaults) with ``values`` checked and applied.

    Args:
        values: field name -> value (from TOML, JSON or flags).
        where: names the source in error messages (``"config file x.toml"``), or None for
            command-line flags (then messages name the flag, ``--rounds``).
        require_all: every field must be present (a run's own ``config.json``).

    Raises:
        ValueError: an unknown field (with close matches), a missing one (when
            ``require_all``), or a value of the wrong type or range.
    """
    prefix = f"{where}: " if where else ""
    for name in values:
        if name not in CHECKS:
            close = difflib.get_close_matches(name, FIELD_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{prefix}unknown field {name!r}{hint}; the fields are {', '.join(FIELD_NAMES)}"
            )
    if require_all:
        missing = [name for name in FIELD_NAMES if name not in values]
        if missing:
            raise ValueError(f"{prefix}missing field {', '.join(map(repr, missing))}")
    checked = {}
    for name, value in values.items():
        shown = name if where else "--" + name.replace("_", "-")
        try:
            checked[name] = CHECKS[name](shown, value)
        except ValueError as error:
            raise ValueError(f"{prefix}{error}") from None
    return dataclasses.replace(base or RunConfig(), **checked)


def read_toml(path: str) -> dict[str, Any]:
    """A TOML config file as a dict of fields (not yet checked)."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config file {path} is not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"config file {path} cannot be read ({error})") from None


def read_run_config(directory: str) -> RunConfig:
    """The ``config.json`` a run wrote into ``directory``, every field required."""
    path = os.path.join(directory, CONFIG)
    try:
        with open(path) as file:
            values = json.load(file)
    except FileNotFoundError:
        raise ValueError(f"--resume {directory}: no run there ({path} does not exist)") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--resume {directory}: {path} is not readable JSON ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"--resume {directory}: {path} does not hold a config object")
    return make_config(values, path, require_all=True)


def resumed_config(saved: RunConfig, directory: str, rounds: int | None) -> RunConfig:
    """The config ``--resume directory`` continues with: ``saved``, writing into
    ``directory``, extended to ``rounds`` rounds when ``--rounds`` is given.

    Raises:
        ValueError: ``rounds`` is not an integer, or is smaller than the saved rounds
            (rounds already run cannot be taken back; only more can be added).
    """
    config = dataclasses.replace(saved, out=directory)
    if rounds is None:
        return config
    config = make_config({"rounds": rounds}, None, config)
    if config.rounds < saved.rounds:
        raise ValueError(
            f"--rounds {config.rounds} is fewer than the saved rounds ({saved.rounds}) of the "
            f"run in {directory}: with --resume, --rounds can only grow (to {saved.rounds} or "
            "more)"
        )
    return config


def check_budget(config: RunConfig, pool_size: int) -> None:
    """Raise ValueError unless ``initial + rounds * budget`` points fit in the pool."""
    needed = config.initial + config.rounds * config.budget
    if needed > pool_size:
        hint = (
            f"--rounds can be at most {(pool_size - config.initial) // config.budget} with "
            "this --initial and --budget"
            if config.initial <= pool_size
            else f"--initial can be at most {pool_size}"
        )
        raise ValueError(
            f"budget too large for the pool: initial ({config.initial}) + rounds "
            f"({config.rounds}) x budget ({config.budget}) = {needed} points, but the pool "
            f"has {pool_size} ({hint})"
        )


# ---------------------------------------------------------------------------- setup


@dataclasses.dataclass
class Setup:
    """Everything a run shares between its experiments."""

    config: RunConfig
    datasets: list[Dataset]  # one per seed
    module: nn.Module
    model_name: str
    trainer: Trainer
    strategies: dict[str, Strategy]


def resolve_module(spec: str, dataset: Dataset) -> tuple[nn.Module, str]:
    """The linen module for ``--model`` and a name for it.

    ``auto``: ``cnn`` for images (rank >= 3 inputs), ``mlp`` for vectors. ``mlp`` /
    ``cnn``: :mod:`jaxal.train`'s models. ``module:attr`` or ``path/file.py:attr``: a linen
    module instance, or a class or function called with ``num_classes=C`` (a class
    without that field is called with no argument); its ``__call__(x, train)`` must
    return (logits [B, C], embedding [B, D]).
    """
    if spec == "auto":
        spec = "cnn" if dataset.x_train.ndim >= 3 else "mlp"
    if spec in MODELS:
        return MODELS[spec](num_classes=dataset.num_classes), spec
    if ":" not in spec:
        raise ValueError(
            f"unknown model {spec!r}: use 'auto', {', '.join(map(repr, MODELS))} or "
            "'module:attr' (a flax.linen module returning (logits, embedding))"
        )
    target = _import_attr(spec)
    if isinstance(target, nn.Module):
        module = target
    elif isinstance(target, type) and issubclass(target, nn.Module):
        fields = {f.name for f in dataclasses.fields(target)}
        module = target(num_classes=dataset.num_classes) if "num_classes" in fields else target()
    elif callable(target):
        module = target(num_classes=dataset.num_classes)
    else:
        raise TypeError(f"model {spec!r} is a {type(target).__name__}, not a flax.linen module")
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"model {spec!r} gave a {type(module).__name__}; the runner trains flax.linen "
            "modules (for flax.nnx, use the library API)"
        )
    return module, spec


def _import_attr(spec: str) -> Any:
    """``attr`` of ``module:attr`` (a module on the path, or a ``.py`` file)."""
    module_name, _, attr = spec.rpartition(":")
    is_file = module_name.endswith(".py") or os.sep in module_name
    if is_file and not os.path.isfile(module_name):
        raise ValueError(f"model {spec!r}: the file {module_name} does not exist")
    try:
        if is_file:
            name = "_jaxal_user_model_" + os.path.splitext(os.path.basename(module_name))[0]
            file_spec = importlib.util.spec_from_file_location(name, module_name)
            if file_spec is None or file_spec.loader is None:
                raise ImportError(f"{module_name} is not a Python file")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[name] = module
            file_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except Exception as error:  # the user's code: any error means "cannot import"
        raise ValueError(
            f"model {spec!r}: cannot import {module_name} ({type(error).__name__}: {error})"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"model {spec!r}: {module_name} has no attribute {attr!r}") from None


def check_model(module: nn.Module, spec: str, dataset: Dataset, train: Trainer) -> None:
    """Trace the module once on two points; raise a clear error if it does not fit."""
    x = jnp.asarray(dataset.x_train[:2])
    try:
        state = jax.eval_shape(train.init, jax.random.key(0), x)
        out = jax.eval_shape(lambda v, x: module.apply(v, x, train=False), state.params, x)
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(
            f"model {spec!r} fails on inputs of shape {dataset.x_train.shape[1:]}: "
            f"{type(error).__name__}: {first}"
        ) from None
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise TypeError(f"model {spec!r} must return (logits, embedding), got {out}")
    logits, embedding = out
    if logits.ndim != 2 or logits.shape[1] < dataset.num_classes or embedding.ndim != 2:
        raise ValueError(
            f"model {spec!r} must return logits [B, C >= {dataset.num_classes}] and an "
            f"embedding [B, D]; got {logits.shape} and {embedding.shape}"
        )


def make_setup(config: RunConfig) -> Setup:
    """Load every seed's data, build the model, trainer and strategies; check the budget.

    Raises:
        ValueError / TypeError: anything that would make the run fail later.
    """
    raw = load_raw(config.dataset, data_dir=config.data_dir)
    datasets = [
        from_raw(
            raw,
            config.dataset,
            seed=seed,
            test_fraction=config.test_fraction,
            max_train=config.max_train,
            max_test=config.max_test,
            normalization=config.normalization,
        )
        for seed in range(config.seeds)
    ]
    check_budget(config, len(datasets[0].x_train))
    module, model_name = resolve_module(config.model, datasets[0])
    train = trainer(
        module,
        steps=config.steps,
        learning_rate=config.learning_rate,
        batch_size=config.train_batch_size,
    )
    check_model(module, model_name, datasets[0], train)
    model = jaxal.from_flax(module)
    strategies = {}
    for name in config.strategy:
        hparams = config.hparams.get(name, {})
        try:
            strategies[name] = get_strategy(name)(model, config.budget, **hparams)
        except (TypeError, ValueError) as error:
            raise ValueError(f"strategy {name!r} with {hparams or 'defaults'}: {error}") from None
    return Setup(config, datasets, module, model_name, train, strategies)


# ---------------------------------------------------------------------------- output


class Progress:
    """A progress bar over rounds on ``stream``: redrawn in place on a terminal, one line
    per finished experiment otherwise."""

    def __init__(self, total: int, done: int = 0, stream: IO[str] | None = None) -> None:
        self.total, self.done = total, done
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.start = time.perf_counter()
        self.started_at = done
        self.shown = False

    def begin(self, label: str) -> None:
        """Show the bar before the first round finishes (on a terminal)."""
        if self.live:
            self._draw(label)

    def advance(self, label: str, last: bool) -> None:
        """One more round finished; ``last``: it ended an experiment."""
        self.done += 1
        if self.live:
            self._draw(label)
        elif last:
            print(f"[{self.done:>{len(str(self.total))}}/{self.total}] {label}", file=self.stream)
            self.stream.flush()

    def _draw(self, label: str) -> None:
        width = 24
        filled = round(width * self.done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self.started_at) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "#" * filled + "-" * (width - filled)
        line = f"[{bar}] {self.done}/{self.total} {_clock(elapsed)}<{_clock(eta)} {label}"
        columns = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r\x1b[2K" + line[: columns - 1])
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        """Erase the bar (before other output) on a terminal."""
        if self.live and self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def strategy_table(name: str, runs: list[list[dict[str, Any]]]) -> str:
    """Per round over seeds: labeled, accuracy mean ± std, mean select and train seconds."""
    rounds = min(len(rows) for rows in runs)
    lines = [
        f"{name}: {len(runs)} seed{'s' * (len(runs) > 1)}, test accuracy mean ± std, seconds mean",
        f"{'round':>5} {'labeled':>7} {'accuracy':>15} {'select s':>9} {'train s':>8}",
    ]
    for r in range(rounds):
        rows = [run[r] for run in runs]
        accuracy = np.array([row["test_accuracy"] for row in rows])
        selects = [row["select_seconds"] for row in rows if row["select_seconds"] is not None]
        select = f"{np.mean(selects):.3f}" if selects else "-"
        train_seconds = np.mean([row["train_seconds"] for row in rows])
        lines.append(
            f"{r:>5} {rows[0]['labeled']:>7} {accuracy.mean():>7.3f} ± {accuracy.std():.3f} "
            f"{select:>9} {train_seconds:>8.3f}"
        )
    return "\n".join(lines)


def summary_table(experiments: list[dict[str, Any]]) -> str:
    """Mean test accuracy by labeled count (rows) and strategy (columns)."""
    lines = _plot.curves({"experiments": experiments})
    names = list(lines)
    width = max(8, *(len(n) for n in names))
    seeds = max(int(line["seeds"]) for line in lines.values())
    out = [
        f"mean test accuracy over {seeds} seed{'s' * (seeds > 1)}",
        f"{'labeled':>7} " + " ".join(f"{n:>{width}}" for n in names),
    ]
    for r, labeled in enumerate(lines[names[0]]["labeled"]):
        cells = [
            f"{lines[n]['mean'][r]:>{width}.3f}" if r < len(lines[n]["mean"]) else " " * width
            for n in names
        ]
        out.append(f"{int(labeled):>7} " + " ".join(cells))
    return "\n".join(out)


# ---------------------------------------------------------------------------- run


def results_dict(
    setup: Setup,
    experiments: list[dict[str, Any]],
    complete: bool,
    compiled: _experiment.Compiled,
    wall_seconds: float,
) -> dict[str, Any]:
    """The ``results.json`` content."""
    dataset = setup.datasets[0]
    return {
        "jaxal_version": jaxal.__version__,
        "complete": complete,
        "config": setup.config.to_dict(),
        "dataset": {
            "name": setup.config.dataset,
            "train_points": len(dataset.x_train),
            "test_points": len(dataset.x_test),
            "input_shape": list(dataset.x_train.shape[1:]),
            "num_classes": dataset.num_classes,
        },
        "model": setup.model_name,
        "compile_seconds": dict(compiled.seconds),
        "wall_seconds": wall_seconds,
        "experiments": experiments,
    }


def execute(setup: Setup, stop_after: int | None = None, out: IO[str] | None = None) -> int:
    """Run (or continue) every experiment of ``setup``; write results and figure.

    An experiment continues from its checkpoint, which holds the state after its last
    finished round; one that already has ``config.rounds`` rounds is skipped, one that has
    fewer (a killed run, or a finished one whose rounds were extended) runs the rest.

    Args:
        stop_after: stop after this many rounds run in this call (for tests of resume:
            the state stays as a killed run leaves it).
        out: where tables go (default stdout).
    """
    out = out or sys.stdout
    config = setup.config
    start = time.perf_counter()
    settings = _experiment.Settings(config.rounds, config.budget, config.initial, config.warm_start)
    compiled = _experiment.Compiled()
    rounds_per_experiment = config.rounds + 1
    rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for name in config.strategy:
        for seed in range(config.seeds):
            path = _experiment.checkpoint_path(config.out, name, seed)
            rows[name, seed] = _experiment.read_rows(path) if os.path.exists(path) else []
    progress = Progress(
        total=len(rows) * rounds_per_experiment,
        done=sum(min(len(r), rounds_per_experiment) for r in rows.values()),
    )

    def experiments() -> list[dict[str, Any]]:
        return [{"strategy": n, "seed": s, "rounds": r} for (n, s), r in rows.items()]

    def write_results(complete: bool) -> None:
        results = results_dict(
            setup, experiments(), complete, compiled, time.perf_counter() - start
        )
        _checkpoint.atomic_write_json(os.path.join(config.out, RESULTS), results)

    ran = 0
    progress.begin("compiling ...")
    for name in config.strategy:
        strategy = setup.strategies[name]
        for seed in range(config.seeds):
            if len(rows[name, seed]) >= rounds_per_experiment:
                continue
            dataset = setup.datasets[seed]
            path = _experiment.checkpoint_path(config.out, name, seed)
            if os.path.exists(path):
                state, _ = _experiment.load_state(path, dataset, setup.trainer)
            else:
                state = _experiment.initial_state(dataset, settings, seed, setup.trainer)
            while len(state.rows) < rounds_per_experiment:
                if stop_after is not None and ran >= stop_after:
                    write_results(complete=False)
                    progress.clear()
                    print(
                        f"jaxal: stopped after {ran} rounds (--stop-after); continue with "
                        f"jaxal run --resume {config.out}",
                        file=sys.stderr,
                    )
                    return 0
                state = _experiment.run_round(
                    state, dataset, settings, strategy, setup.trainer, compiled, name
                )
                _experiment.save_state(path, state, {"strategy": name, "seed": seed})
                rows[name, seed] = state.rows
                write_results(complete=False)
                ran += 1
                row = state.rows[-1]
                progress.advance(
                    f"{name} seed {seed} round {row['round']}: {row['labeled']} labeled, "
                    f"accuracy {row['test_accuracy']:.3f}",
                    last=len(state.rows) == rounds_per_experiment,
                )
        progress.clear()
        print(strategy_table(name, [rows[name, s] for s in range(config.seeds)]), file=out)
        print(file=out)
    write_results(complete=True)
    figure = os.path.join(config.out, FIGURE)
    _plot.plot(_plot.read_results(config.out), figure)
    print(summary_table(experiments()), file=out)
    print(
        f"\nwrote {os.path.join(config.out, RESULTS)} and {figure} "
        f"({time.perf_counter() - start:.1f} s)",
        file=out,
    )
    return 0


def prepare_out(directory: str, overwrite: bool) -> None:
    """Make ``directory`` ready for a new run; refuse to drop an unfinished one."""
    results = os.path.join(directory, RESULTS)
    checkpoints = os.path.join(directory, "checkpoints")
    if os.path.isdir(checkpoints) and not overwrite:
        finished = False
        try:
            with open(results) as file:
                finished = bool(json.load(file).get("complete"))
        except (OSError, ValueError, AttributeError):
            pass
        if not finished:
            raise ValueError(
                f"{directory} holds an unfinished run: continue it with "
                f"`jaxal run --resume {directory}`, or pass --overwrite to start over"
            )
    if os.path.isdir(checkpoints):
        shutil.rmtree(checkpoints)
    for name in (RESULTS, FIGURE):
        if os.path.exists(os.path.join(directory, name)):
            os.remove(os.path.join(directory, name))
    os.makedirs(directory, exist_ok=True)


# ---------------------------------------------------------------------------- commands


def run_command(args: argparse.Namespace) -> int:
    """``jaxal run``."""
    flags = {
        name: getattr(args, name)
        for name in FIELD_NAMES
        if getattr(args, name, None) is not None and name != "hparams"
    }
    if args.resume is not None:
        given = (
            sorted(name for name in flags if name != "rounds")
            + (["config"] if args.config else [])
            + (["overwrite"] if args.overwrite else [])
        )
        if given:
            names = ", ".join("--" + g.replace("_", "-") for g in given)
            raise ValueError(
                f"--resume continues a run with its own settings (only --rounds may extend "
                f"it); drop {names}"
            )
        saved = read_run_config(args.resume)
        config = resumed_config(saved, args.resume, flags.get("rounds"))
        setup = make_setup(config)
        if config.rounds != saved.rounds:
            _checkpoint.atomic_write_json(
                os.path.join(args.resume, CONFIG),
                dataclasses.replace(saved, rounds=config.rounds).to_dict(),
            )
    else:
        base = RunConfig()
        if args.config:
            base = make_config(read_toml(args.config), f"config file {args.config}")
        config = make_config(flags, None, base)
        setup = make_setup(config)
        prepare_out(config.out, args.overwrite)
        _checkpoint.atomic_write_json(os.path.join(config.out, CONFIG), config.to_dict())
    try:
        return execute(setup, stop_after=args.stop_after)
    except KeyboardInterrupt:
        print(
            f"\njaxal: interrupted; every finished round is saved: continue with "
            f"`jaxal run --resume {config.out}`",
            file=sys.stderr,
        )
        return 130


def plot_command(args: argparse.Namespace) -> int:
    """``jaxal plot DIR``."""
    output = args.output or os.path.join(args.directory, FIGURE)
    _plot.plot(_plot.read_results(args.directory), output)
    print(f"wrote {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jaxal``."""
    parser = argparse.ArgumentParser(
        prog="jaxal", description="Deep active learning experiments with jaxal."
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,plot}")
    defaults = RunConfig()
    run = commands.add_parser(
        "run",
        help="run active-learning experiments",
        description="Train, select, label, retrain, evaluate: every strategy x seed.",
        epilog="strategies: " + ", ".join(REGISTRY) + ". A TOML --config takes the same "
        "fields as these options (dashes as underscores) plus [hparams.<strategy>] tables; "
        "options given here override it.",
    )
    add = run.add_argument
    add("--config", metavar="TOML", help="a TOML config file (options override it)")
    add(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last finished round, with its own settings; "
        "--rounds N may extend a killed or finished run to N rounds",
    )
    add(
        "--dataset",
        metavar="NAME",
        help=f"digits, tfds:NAME or a .npz path (default {defaults.dataset})",
    )
    add("--data-dir", metavar="DIR", help="TFDS data directory for tfds:NAME")
    add(
        "--model",
        metavar="MODEL",
        help="auto, mlp, cnn or module:attr (a linen module; default auto)",
    )
    add(
        "--strategy",
        metavar="A,B,...",
        help=f"comma-separated (default {','.join(defaults.strategy)})",
    )
    add(
        "--rounds",
        type=int,
        metavar="N",
        help=f"selection rounds (default {defaults.rounds}); with --resume, extends the run "
        "to N rounds",
    )
    add("--budget", type=int, metavar="N", help=f"points per round (default {defaults.budget})")
    add(
        "--initial",
        type=int,
        metavar="N",
        help=f"initial labeled points (default {defaults.initial})",
    )
    add("--seeds", type=int, metavar="N", help=f"seeds 0..N-1 (default {defaults.seeds})")
    add("--out", metavar="DIR", help=f"output directory (default {defaults.out})")
    add(
        "--steps",
        type=int,
        metavar="N",
        help=f"training steps per round (default {defaults.steps})",
    )
    add(
        "--learning-rate",
        type=float,
        metavar="LR",
        help=f"Adam's (default {defaults.learning_rate})",
    )
    add(
        "--train-batch-size",
        type=int,
        metavar="N",
        help=f"points per training step (default {defaults.train_batch_size})",
    )
    add(
        "--warm-start",
        action="store_true",
        default=None,
        help="continue training from the previous round's params (default: fresh)",
    )
    add(
        "--test-fraction", type=float, metavar="F", help="held out when a dataset has no test split"
    )
    add("--max-train", type=int, metavar="N", help="use at most this many training (pool) points")
    add("--max-test", type=int, metavar="N", help="use at most this many test points")
    add("--normalization", metavar="HOW", help=f"{', '.join(NORMALIZATIONS)} (default pixels)")
    add("--overwrite", action="store_true", help="replace an unfinished run in --out")
    add("--stop-after", type=int, help=argparse.SUPPRESS)
    run.set_defaults(handler=run_command)

    plot = commands.add_parser("plot", help="redraw learning_curves.png from results.json")
    plot.add_argument("directory", metavar="DIR", help="a run's output directory")
    plot.add_argument("--output", metavar="PNG", help="default DIR/learning_curves.png")
    plot.set_defaults(handler=plot_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxal`` console script and ``python -m jaxal``.

    Returns:
        The exit status: 0, or 2 for bad input (message on stderr, no traceback).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except (ValueError, TypeError) as error:
        if os.environ.get("JAXAL_DEBUG"):
            raise
        print(f"jaxal: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\njaxal: interrupted", file=sys.stderr)
        return 130

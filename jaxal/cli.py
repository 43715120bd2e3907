"""The ``jaxal`` command: ``jaxal run`` runs experiments, ``jaxal plot`` redraws figures,
``jaxal annotate`` serves a labeling page with active learning between batches.

``jaxal run`` trains a model, selects with each strategy, reveals the labels of the picked
points, retrains and evaluates, for every strategy and seed; it prints a progress bar and
a per-round table, and writes ``results.json``, ``learning_curves.png``, the run's
``config.json`` and a checkpoint per experiment (after every round, atomically) that
``jaxal run --resume DIR`` continues from; ``--resume DIR --rounds N`` extends a killed or
finished run to N rounds, its first rounds unchanged. ``--stop RULE`` ends each experiment
at the round where a stopping rule (:mod:`jaxal.stopping`) fires.

Bad input (a config field, a dataset or strategy name, a budget larger than the pool)
ends with ``jaxal: error: ...`` on stderr and exit status 2; ``JAXAL_DEBUG=1`` shows the
traceback instead.

This module holds the argument parser and the glue; the runner itself lives in
:mod:`jaxal.runner` (config, setup, loop, report, experiment, checkpoint, plot).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import jaxal
from jaxal._cli_training import add_training_arguments
from jaxal.annotate import cli as annotate_cli
from jaxal.data import NORMALIZATIONS
from jaxal.runner import loop, report
from jaxal.runner.config import (
    FIELD_NAMES,
    RunConfig,
    check_hparams,
    make_config,
    read_toml,
    stop_from_flags,
)
from jaxal.stopping import REGISTRY as STOP_RULES
from jaxal.strategies import REGISTRY


def run_command(args: argparse.Namespace) -> int:
    """``jaxal run``."""
    flags = {
        name: getattr(args, name)
        for name in FIELD_NAMES
        if name not in ("hparams", "stop") and getattr(args, name, None) is not None
    }
    if args.resume is not None:
        given = (
            sorted(name for name in flags if name != "rounds")
            + (["config"] if args.config else [])
            + (["overwrite"] if args.overwrite else [])
            + (["stop"] if args.stop is not None else [])
            + (["stop_kwargs"] if args.stop_kwargs is not None else [])
        )
        if given:
            names = ", ".join("--" + g.replace("_", "-") for g in given)
            raise ValueError(
                f"--resume continues a run with its own settings (only --rounds may extend "
                f"it); drop {names}"
            )
        setup = loop.resume_run(args.resume, flags.get("rounds"))
    else:
        base = RunConfig()
        if args.config:
            base = make_config(read_toml(args.config), f"config file {args.config}")
        stop = stop_from_flags(args.stop, args.stop_kwargs, base.stop)
        if stop is not None:
            flags["stop"] = stop
        config = make_config(flags, None, base)
        check_hparams(config, f"config file {args.config}" if args.config else None)
        setup = loop.new_run(config, args.overwrite)
    try:
        return loop.execute(setup, stop_after=args.stop_after)
    except KeyboardInterrupt:
        try:
            drawn = f" (figure of the finished rounds: {report.draw_figure(setup.config.out)})"
        except (ValueError, OSError):
            drawn = ""
        print(
            f"\njaxal: interrupted; every finished round is saved{drawn}: continue with "
            f"`jaxal run --resume {setup.config.out}`",
            file=sys.stderr,
        )
        return 130


def plot_command(args: argparse.Namespace) -> int:
    """``jaxal plot DIR``."""
    output = report.draw_figure(args.directory, args.output)
    print(f"wrote {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jaxal``."""
    parser = argparse.ArgumentParser(
        prog="jaxal", description="Deep active learning experiments with jaxal."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"jaxal {jaxal.__version__}",
        help="print jaxal's version and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,plot,annotate}")
    defaults = RunConfig()
    run = commands.add_parser(
        "run",
        help="run active-learning experiments",
        description="Train, select, label, retrain, evaluate: every strategy x seed.",
        epilog="strategies: " + ", ".join(REGISTRY) + ". A TOML --config takes the same "
        "fields as these options (dashes as underscores) plus [hparams.<strategy>], "
        "[inputs.<strategy>] and [stop.<rule>] tables; "
        "options given here override it. Stopping rules: " + ", ".join(STOP_RULES) + ".",
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
        help="digits, tfds:NAME or a .npz path holding x_train, y_train, x_test, y_test (or "
        f"only x_train, y_train, or x, y: see --test-fraction; default {defaults.dataset})",
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
    add_training_arguments(add, defaults)
    add(
        "--warm-start",
        action="store_true",
        default=None,
        help="continue training from the previous round's params (default: fresh)",
    )
    add(
        "--test-fraction",
        type=float,
        metavar="F",
        help="the share held out by seed as the test split when the dataset has none (digits, "
        f"an .npz with only x_train, y_train or x, y; default {defaults.test_fraction})",
    )
    add("--max-train", type=int, metavar="N", help="use at most this many training (pool) points")
    add("--max-test", type=int, metavar="N", help="use at most this many test points")
    add(
        "--normalization",
        metavar="HOW",
        help=f"auto, {', '.join(NORMALIZATIONS)} (default auto: pixels for image-like inputs, "
        "rank >= 2 per example or whole numbers in [0, 255]; features, per input position, "
        "for other feature vectors)",
    )
    add(
        "--mc-kwargs",
        metavar="JSON",
        help="keyword arguments of the model's MC-dropout pass (BALD, BatchBALD, ...) as a "
        'JSON object (default {"train": true}); a module with BatchNorm needs a dropout '
        'flag of its own, e.g. \'{"train": false, "mc_dropout": true}\' for '
        "__call__(x, train, mc_dropout=False)",
    )
    add(
        "--inputs",
        metavar="S.SET=NPZ,...",
        help="sets a strategy takes besides the pool, each an .npz with x and y (inputs as "
        "the dataset's, normalized like it): smi.query=, scg.private=, scmi.query= and "
        "scmi.private=, glister.validation= or gradmatch.validation= (optional for those two), "
        "epig.target= (optional, its y unused; default: targets drawn from the pool)",
    )
    add(
        "--stop",
        action="append",
        metavar="RULE[,RULE...]",
        help="end each experiment after the first round at which one of these stopping "
        "rules fires (repeatable; replaces the config file's [stop] rules); see the "
        "list below",
    )
    add(
        "--stop-kwargs",
        metavar="JSON",
        help="stopping-rule hyperparameters as a JSON object of rule -> object, e.g. "
        '\'{"stabilizing_predictions": {"threshold": 0.98, "window": 2}}\' (set over the '
        "config file's [stop.<rule>] tables)",
    )
    add(
        "--stop-set",
        type=int,
        metavar="N",
        help="pool points in each seed's stop set, drawn once by the seed, for "
        f"stabilizing_predictions (default {defaults.stop_set}; the whole pool when smaller)",
    )
    add(
        "--overwrite",
        action="store_true",
        help="delete the run (finished or not) in --out and start over; without it, jaxal "
        "run refuses an --out that holds a run",
    )
    add("--stop-after", type=int, help=argparse.SUPPRESS)
    run.set_defaults(handler=run_command)

    plot = commands.add_parser("plot", help="redraw learning_curves.png from results.json")
    plot.add_argument("directory", metavar="DIR", help="a run's output directory")
    plot.add_argument("--output", metavar="PNG", help="default DIR/learning_curves.png")
    plot.set_defaults(handler=plot_command)

    annotate_cli.add_parser(commands)
    return parser


# Library errors whose remedy is a Python call, and how ``jaxal run`` does the same.
CLI_REMEDIES = (
    (
        "jaxal.select(..., inputs=...)",
        "with jaxal run: give each set as an .npz with x and y, --inputs STRATEGY.SET=FILE.npz "
        '(e.g. --inputs smi.query=query.npz), or [inputs.STRATEGY] SET = "FILE.npz" in the '
        "--config file",
    ),
    (
        "from_flax(module, mc_kwargs=",
        "with jaxal run: give the module's __call__ a dropout flag of its own, e.g. "
        "__call__(x, train, mc_dropout=False), and pass --mc-kwargs "
        '\'{"train": false, "mc_dropout": true}\' (or mc_kwargs = {train = false, '
        "mc_dropout = true} in the --config file); add --overwrite to start the run over",
    ),
)


def with_cli_remedy(message: str) -> str:
    """``message``, plus the ``jaxal run`` way when it advises a Python-only remedy
    (see :data:`CLI_REMEDIES`)."""
    for python_remedy, cli_remedy in CLI_REMEDIES:
        if python_remedy in message:
            return f"{message.rstrip('.')}; {cli_remedy}"
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxal`` console script and ``python -m jaxal``.

    Returns:
        The exit status: 0, or 2 for bad input (message on stderr, no traceback).
    """
    parser = build_parser()
    args = parser.parse_args(
        annotate_cli.with_default_action(list(sys.argv[1:] if argv is None else argv))
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except (ValueError, TypeError) as error:
        if os.environ.get("JAXAL_DEBUG"):
            raise
        print(f"jaxal: error: {with_cli_remedy(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\njaxal: interrupted", file=sys.stderr)
        return 130

"""The ``jaxal annotate`` command's options: ``serve`` (the default action), ``export``
and ``import``. The web server's packages are imported only when ``serve`` runs."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from jaxal._cli_training import add_training_arguments
from jaxal.annotate.config import FIELDS, AnnotateConfig
from jaxal.annotate.data import DISPLAYS, parse_classes
from jaxal.annotate.exchange import DEFAULT_IMAGE_URL, FORMATS, FROM_NAME
from jaxal.annotate.stopping import RULES as STOP_RULES

ACTIONS = ("serve", "export", "import")
DEFAULT_STORE = "labels.sqlite"


def with_default_action(argv: list[str]) -> list[str]:
    """``annotate --dataset ...`` -> ``annotate serve --dataset ...``: the arguments of
    ``jaxal`` with ``serve`` put in when ``annotate`` names no action."""
    if argv and argv[0] == "annotate":
        rest = argv[1:]
        if not rest or rest[0] not in (*ACTIONS, "-h", "--help"):
            return ["annotate", "serve", *rest]
    return argv


def serve_command(args: argparse.Namespace) -> int:
    """``jaxal annotate [serve]``."""
    from jaxal.annotate.server import serve
    from jaxal.annotate.stopping import StoppingStatus

    given: dict[str, Any] = {name: getattr(args, name, None) for name in FIELDS}
    given["classes"] = parse_classes(args.classes)
    try:
        stop_hparams = json.loads(args.stop_kwargs) if args.stop_kwargs else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"--stop-kwargs is not JSON: {error}") from None
    if not isinstance(stop_hparams, dict):
        raise ValueError("--stop-kwargs must be a JSON object, e.g. '{\"window\": 2}'")
    try:
        status = StoppingStatus(args.stop, stop_hparams, seed=args.seed or 0)
    except TypeError as error:
        raise ValueError(f"--stop-kwargs for {args.stop}: {error}") from None
    return serve(
        args.store,
        given,
        host=args.host,
        port=args.port,
        annotator=args.annotator,
        lease=args.lease,
        status=status,
    )


def _existing_store(path: str) -> Any:
    from jaxal.annotate.store import Store

    if not os.path.isfile(path):
        raise ValueError(
            f"--store {path} does not exist: `jaxal annotate --store {path}` starts one"
        )
    store = Store(path)
    if store.get_meta("config") is None:
        raise ValueError(f"--store {path} holds no labeling project")
    return store


def export_command(args: argparse.Namespace) -> int:
    """``jaxal annotate export``."""
    from jaxal.annotate.config import AnnotateConfig
    from jaxal.annotate.exchange import export
    from jaxal.annotate.server import load_data

    store = _existing_store(args.store)
    config = AnnotateConfig(**store.get_meta("config"))
    data = load_data(config)
    if data.fingerprint != store.get_meta("fingerprint"):
        raise ValueError(f"the dataset {config.dataset} changed since the store was started")
    done = export(store, data, args.format, args.out, image_url=args.image_url, every=args.all)
    which = "every round's" if args.all else "the latest round's"
    print(f"exported {done.points} of {which} picks to {args.out}:")
    for path in done.files:
        print(f"  {path}")
    if done.images:
        print(f"  {os.path.join(args.out, 'images')}/ ({done.images} images)")
    if done.left_out:
        print(f"  ({done.left_out} picks with a label already left out)")
    return 0


def import_command(args: argparse.Namespace) -> int:
    """``jaxal annotate import FILE``."""
    from jaxal.annotate.exchange import import_labels

    store = _existing_store(args.store)
    done = import_labels(
        store,
        args.file,
        classes=store.get_meta("classes"),
        pool_size=store.get_meta("pool_size"),
        files=store.get_meta("files"),
        annotator=args.annotator,
        from_name=args.from_name,
    )
    print(
        f"imported {len(done.added)} label{'s' * (len(done.added) != 1)} from {args.file} "
        f"({done.format}) into {args.store}"
    )
    if done.same:
        print(f"  {len(done.same)} points had the same label already")
    if done.conflicts:
        shown = ", ".join(map(str, done.conflicts[:10]))
        print(
            f"  {len(done.conflicts)} points have another label in the store, kept as it is: "
            f"{shown}{' ...' if len(done.conflicts) > 10 else ''}"
        )
    if done.unlabeled:
        tasks = "task" if done.unlabeled == 1 else "tasks"
        print(f"  {done.unlabeled} {tasks} without a label (skipped, cancelled or empty)")
    return 0


def add_parser(commands: Any) -> None:
    """Add ``annotate`` and its actions to ``jaxal``'s subcommands."""
    defaults = AnnotateConfig(dataset="")
    annotate = commands.add_parser(
        "annotate",
        help="label points in a local web page, with active learning between batches",
        description="Label the points jaxal picks in a web page; between batches the model "
        "retrains and picks the next batch. `jaxal annotate --dataset D ...` serves the "
        "page (the serve action); export and import exchange picks and labels with other "
        "tools (Label Studio).",
    )
    actions = annotate.add_subparsers(dest="action", metavar="{serve,export,import}")
    serve = actions.add_parser(
        "serve",
        help="serve the labeling page (the default action)",
        description="Serve the labeling page. A new --store takes the settings given here; "
        "an existing one continues with its own (options given must agree with them).",
    )
    add = serve.add_argument
    add(
        "--dataset",
        metavar="D",
        help="digits, an .npz (x or x_train: the pool; x_test, y_test: a held-out split; "
        "classes; feature_names) or a folder of images",
    )
    add("--classes", metavar="A,B,...", help="class names, or a text file with one a line")
    add("--heldout", metavar="DIR", help="a folder of labeled images, one subfolder per class")
    add(
        "--strategy",
        metavar="NAME",
        help=f"the strategy once labels exist (default {defaults.strategy})",
    )
    add(
        "--cold-start",
        metavar="NAME",
        help=f"the strategy of a batch picked with no label yet, on the raw inputs when it "
        f"takes a representation (default {defaults.cold_start})",
    )
    add("--budget", type=int, metavar="B", help=f"points per batch (default {defaults.budget})")
    add("--rounds", type=int, metavar="R", help="batches to label (default: until the pool ends)")
    add("--model", metavar="MODEL", help="auto, mlp, cnn or module:attr (default auto)")
    add_training_arguments(add, defaults)
    add("--seed", type=int, metavar="S", help=f"randomness (default {defaults.seed})")
    add(
        "--image-size",
        type=int,
        metavar="PX",
        help=f"side of a folder's images for the model (default {defaults.image_size})",
    )
    add("--max-pool", type=int, metavar="N", help="keep at most N pool points")
    add("--max-test", type=int, metavar="N", help="keep at most N held-out points")
    add("--display", choices=DISPLAYS, help="how points are shown (default auto)")
    add(
        "--store",
        default=DEFAULT_STORE,
        metavar="FILE",
        help=f"the SQLite store (default {DEFAULT_STORE})",
    )
    add(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other needs the printed token)",
    )
    add("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    add("--annotator", metavar="NAME", help="the name the page suggests (default: your login)")
    add(
        "--lease",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long a closed tab keeps its point (default 120)",
    )
    add(
        "--stop",
        default="stabilizing_predictions",
        choices=STOP_RULES,
        help="the stopping rule whose state the page shows (default stabilizing_predictions)",
    )
    add(
        "--stop-kwargs",
        metavar="JSON",
        help="its hyperparameters, e.g. '{\"window\": 2}' or '{\"budget\": 300}'",
    )
    serve.set_defaults(handler=serve_command)

    export = actions.add_parser(
        "export",
        help="write the current picks as CSV, JSON lines or Label Studio tasks",
        description="Write the latest round's picks (with their images) to a folder.",
    )
    export.add_argument("--store", default=DEFAULT_STORE, metavar="FILE", help="the store")
    export.add_argument("--format", required=True, choices=FORMATS, help="the format")
    export.add_argument(
        "--out", default="jaxal-export", metavar="DIR", help="the folder (default jaxal-export)"
    )
    export.add_argument(
        "--image-url",
        default=DEFAULT_IMAGE_URL,
        metavar="PREFIX",
        help="labelstudio: what goes before an image's file name in a task (default "
        f"{DEFAULT_IMAGE_URL}, Label Studio's local files with the export folder as root)",
    )
    export.add_argument(
        "--all", action="store_true", help="every round's picks, not only the latest"
    )
    export.set_defaults(handler=export_command)

    imported = actions.add_parser(
        "import",
        help="read labels from a Label Studio export or a jaxal CSV / JSON lines file",
        description="Store the labels of FILE: a Label Studio JSON or JSON_MIN export, or "
        "a .csv / .jsonl with index and label. Nothing is written if any entry is bad.",
    )
    imported.add_argument("file", metavar="FILE", help="the file to read")
    imported.add_argument("--store", default=DEFAULT_STORE, metavar="FILE", help="the store")
    imported.add_argument("--annotator", metavar="NAME", help="record every label under this name")
    imported.add_argument(
        "--from-name",
        default=FROM_NAME,
        metavar="NAME",
        help=f"the Choices control's name in Label Studio (default {FROM_NAME})",
    )
    imported.set_defaults(handler=import_command)
    annotate.set_defaults(handler=lambda args: annotate.print_help() or 2)

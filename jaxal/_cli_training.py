"""The training options that ``jaxal run`` and ``jaxal annotate`` share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def add_training_arguments(add: Callable[..., Any], defaults: Any) -> None:
    """Add ``--steps``, ``--learning-rate`` and ``--train-batch-size`` with ``add`` (a
    parser's ``add_argument``); ``defaults`` has ``steps``, ``learning_rate`` and
    ``train_batch_size``, shown in the help."""
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

"""A labeling project's settings: given on the command line the first time, kept in the
store, and read back from it when the server starts again."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from jaxal.strategies import get as get_strategy

STORED_KEY = "config"


@dataclasses.dataclass(frozen=True)
class AnnotateConfig:
    """What a labeling project is made of (see ``jaxal annotate --help``).

    Attributes:
        dataset: ``digits``, or the absolute path of an ``.npz`` or a folder of images.
        classes: the class names given with ``--classes``, or None (the data names them).
        heldout: a folder of labeled images per class (folder pools), or None.
        strategy: the strategy of every round once some labels exist.
        cold_start: the strategy of a round picked with no label yet.
        budget: points per round.
        rounds: rounds to run, or None to go on until the pool is used up.
        model: ``auto``, ``mlp``, ``cnn`` or ``module:attr``, as ``jaxal run --model``.
        steps: training steps per round.
        learning_rate: Adam's.
        train_batch_size: points per training step.
        seed: the digits split, the subsets, the model's initialization and every key.
        image_size: the side a folder's images are resized to for the model.
        max_pool: at most this many pool points, or None for all.
        max_test: at most this many held-out points, or None for all.
        display: ``auto``, ``image`` or ``table``.
    """

    dataset: str
    classes: list[str] | None = None
    heldout: str | None = None
    strategy: str = "margin"
    cold_start: str = "typiclust"
    budget: int = 10
    rounds: int | None = None
    model: str = "auto"
    steps: int = 300
    learning_rate: float = 1e-2
    train_batch_size: int = 64
    seed: int = 0
    image_size: int = 32
    max_pool: int | None = None
    max_test: int | None = None
    display: str = "auto"


FIELDS = tuple(field.name for field in dataclasses.fields(AnnotateConfig))
PATH_FIELDS = ("heldout",)


def check(config: AnnotateConfig) -> AnnotateConfig:
    """``config`` with its numbers and strategy names checked.

    Raises:
        ValueError: a count below 1, a learning rate <= 0, an unknown strategy.
    """
    for name in ("budget", "steps", "train_batch_size", "image_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
    for name in ("rounds", "max_pool", "max_test"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
    if not (isinstance(config.learning_rate, int | float) and config.learning_rate > 0):
        raise ValueError(f"--learning-rate must be > 0, got {config.learning_rate!r}")
    for flag, name in (("--strategy", config.strategy), ("--cold-start", config.cold_start)):
        try:
            get_strategy(name)
        except ValueError as error:
            raise ValueError(f"{flag}: {error}") from None
    return config


def absolute(dataset: str) -> str:
    """``dataset`` as stored: ``digits`` as is, a path made absolute."""
    return dataset if dataset == "digits" else os.path.abspath(dataset)


def resolve(
    given: dict[str, Any], stored: dict[str, Any] | None, store_path: str
) -> AnnotateConfig:
    """The config to serve: a new one from ``given`` (the flags set on the command line)
    when the store holds none, else the stored one, which the flags must agree with.

    ``dataset`` may differ from the stored path (a moved file); the caller checks the
    pool's fingerprint instead.

    Raises:
        ValueError: no ``--dataset`` for a new store; flags that differ from the stored
            config (the message lists them).
    """
    given = {name: value for name, value in given.items() if value is not None}
    for name in ("dataset", *PATH_FIELDS):
        if name in given:
            given[name] = absolute(given[name])
    if stored is None:
        if "dataset" not in given:
            raise ValueError(
                f"the store {store_path} is new: give --dataset (digits, an .npz or a folder "
                "of images)"
            )
        return check(AnnotateConfig(**given))
    unknown = sorted(set(stored) - set(FIELDS))
    if unknown:
        raise ValueError(
            f"the store {store_path} holds settings this jaxal does not know: {unknown}"
        )
    config = AnnotateConfig(**stored)
    differ = [
        f"--{name.replace('_', '-')} {value!r} (the store has {getattr(config, name)!r})"
        for name, value in given.items()
        if name != "dataset" and value != getattr(config, name)
    ]
    if differ:
        raise ValueError(
            f"the store {store_path} was started with other settings: "
            + "; ".join(differ)
            + ". Drop these options to continue it, or give a new --store"
        )
    if "dataset" in given:
        config = dataclasses.replace(config, dataset=given["dataset"])
    return config


def as_stored(config: AnnotateConfig) -> dict[str, Any]:
    """``config`` as the store keeps it (JSON)."""
    return dataclasses.asdict(config)

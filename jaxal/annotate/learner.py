"""The model side of labeling: train on the labels so far, evaluate on the held-out split,
pick the next batch with the jitted round. The same pieces as ``jaxal run``: the runner's
model resolution and trainer, ``jax.jit(jaxal.make_round(strategy))``, compiled once per
strategy and batch size and reused every round.

A round with no label yet uses the cold-start strategy; a strategy that takes a
``representation`` then compares the inputs themselves (``representation="raw"``), since an
untrained model's embedding says nothing. Skipped points count as picked (``labeled`` in
the pool, ``y = -1``): training ignores them and no strategy picks them again.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal.annotate.config import AnnotateConfig
from jaxal.annotate.data import LabelingData
from jaxal.data import Dataset
from jaxal.model import from_flax
from jaxal.pool import Pool
from jaxal.round import make_round
from jaxal.runner.experiment import Compiled, fresh_fit
from jaxal.runner.setup import check_model, resolve_module
from jaxal.strategies import Strategy
from jaxal.strategies import get as get_strategy
from jaxal.train import trainer


class RoundResult(NamedTuple):
    """What one pass of the learner makes.

    Attributes:
        strategy: the strategy that picked (empty when nothing was picked).
        labeled: the labels trained on.
        skipped: the skipped points (picked, never labeled).
        accuracy: held-out accuracy of the trained model, or None (no held-out split, or
            no label to train on).
        probabilities: float32 [N, C], the trained model's softmax over the pool, or None
            before any label.
        picks: int32 [K], the next batch (K = 0 when the pool or the rounds are used up).
        predicted: int32 [K], the model's class for each pick (None before any label).
        confidence: float32 [K], its probability (None before any label).
        seconds: ``train`` and ``select`` seconds (compiling included the first time).
    """

    strategy: str
    labeled: int
    skipped: int
    accuracy: float | None
    probabilities: np.ndarray | None
    picks: np.ndarray
    predicted: np.ndarray | None
    confidence: np.ndarray | None
    seconds: dict[str, float]


class Learner:
    """Trains and picks for one labeling project.

    Args:
        config: the project's settings.
        data: its pool (and held-out split).

    Raises:
        ValueError / TypeError: a model that does not fit the data, a strategy that
            refuses its settings.
    """

    def __init__(self, config: AnnotateConfig, data: LabelingData) -> None:
        self.config = config
        self.data = data
        num_classes = len(data.classes)
        x_test = data.x if data.x_test is None else data.x_test
        y_test = np.zeros(len(x_test), np.int32) if data.y_test is None else data.y_test
        self.dataset = Dataset(
            data.x, np.zeros(data.size, np.int32), x_test, y_test, num_classes, data.name
        )
        module, self.model_name = resolve_module(config.model, self.dataset)
        self.trainer = trainer(
            module,
            steps=config.steps,
            learning_rate=config.learning_rate,
            batch_size=config.train_batch_size,
        )
        check_model(module, self.model_name, self.dataset, self.trainer)
        self.model = from_flax(module)
        self.compiled = Compiled()
        self._strategies: dict[tuple[str, int, bool], Strategy] = {}
        for name, cold in ((config.cold_start, True), (config.strategy, False)):
            self.strategy(name, min(config.budget, data.size), cold)

    def strategy(self, name: str, budget: int, cold: bool) -> Strategy:
        """Strategy ``name`` for ``budget`` points; on raw inputs when ``cold`` and it
        takes a ``representation``."""
        cache_key = (name, budget, cold)
        if cache_key not in self._strategies:
            factory = get_strategy(name)
            kwargs: dict[str, Any] = {}
            if cold and "representation" in inspect.signature(factory).parameters:
                kwargs["representation"] = "raw"
            try:
                self._strategies[cache_key] = factory(self.model, budget, **kwargs)
            except (TypeError, ValueError) as error:
                raise ValueError(f"strategy {name!r}: {error}") from None
        return self._strategies[cache_key]

    def run(
        self, labels: Iterable[tuple[int, int | None]], round_index: int, pick: bool = True
    ) -> RoundResult:
        """Train on ``labels`` ((point, class or None for a skip) pairs), evaluate, and
        unless ``pick`` is False or no unlabeled point is left, pick the next batch.

        Randomness: ``fold_in(key(seed), round_index)``, so a round computed again from
        the same labels picks the same points.

        Raises:
            ValueError: the strategy could not fill the batch.
        """
        n = self.data.size
        y = np.full(n, -1, np.int32)
        labeled = np.zeros(n, bool)
        for index, label in labels:
            labeled[index] = True
            if label is not None:
                y[index] = label
        count = int(np.sum(y >= 0))
        pool = Pool.create(self.data.x, y=y, labeled=labeled)
        key = jax.random.fold_in(jax.random.key(self.config.seed), round_index)
        train_key, select_key = jax.random.split(key)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        probabilities = accuracy = None
        fit = self.compiled.get(
            "fit", fresh_fit(self.trainer), pool.x, pool.y, pool.labeled, train_key
        )
        state = fit(pool.x, pool.y, pool.labeled, train_key)
        if count:
            predict = self.compiled.get("predict", self.trainer.predict, state.params, pool.x)
            probabilities = np.asarray(jax.nn.softmax(predict(state.params, pool.x), axis=-1))
            if self.data.x_test is not None and self.data.y_test is not None:
                x_test, y_test = jnp.asarray(self.data.x_test), jnp.asarray(self.data.y_test)
                evaluate = self.compiled.get(
                    "accuracy", self.trainer.accuracy, state.params, x_test, y_test
                )
                accuracy = float(evaluate(state.params, x_test, y_test))
        seconds["train"] = time.perf_counter() - start
        unlabeled = n - int(labeled.sum())
        budget = min(self.config.budget, unlabeled)
        skipped = int(labeled.sum()) - count
        if not pick or budget == 0:
            empty = np.zeros(0, np.int32)
            return RoundResult(
                "", count, skipped, accuracy, probabilities, empty, None, None, seconds
            )
        cold = count == 0
        name = self.config.cold_start if cold else self.config.strategy
        strategy = self.strategy(name, budget, cold)
        start = time.perf_counter()
        al_round = self.compiled.get(
            f"round/{name}/{budget}/{cold}", make_round(strategy), state.params, pool, select_key
        )
        _, picked = al_round(state.params, pool, select_key)
        picks = np.asarray(jax.block_until_ready(picked)).astype(np.int32)
        seconds["select"] = time.perf_counter() - start
        if np.any(picks < 0) or len(set(picks.tolist())) != len(picks):
            raise ValueError(f"{name} could not fill a batch of {budget} distinct unlabeled points")
        predicted = confidence = None
        if probabilities is not None:
            predicted = np.argmax(probabilities[picks], axis=-1).astype(np.int32)
            confidence = probabilities[picks, predicted].astype(np.float32)
        return RoundResult(
            name, count, skipped, accuracy, probabilities, picks, predicted, confidence, seconds
        )

"""What a run builds once and shares between its experiments: every seed's dataset, the
model (``--model``), its trainer, the strategies and the stopping rules, all checked before
the first round.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxal.data import Dataset, Raw
from jaxal.model import HeadFn, Model, from_flax
from jaxal.pool import Pool
from jaxal.round import make_round
from jaxal.runner.config import RunConfig, stop_rule
from jaxal.runner.prepare import (
    Prepared,
    normalize_like,
    prepare,
    read_set,
    read_source,
    resolve_normalization,
    set_names,
)
from jaxal.runner.stop import Stopping, make_stopping
from jaxal.strategies import Strategy
from jaxal.strategies import get as get_strategy
from jaxal.train import MODELS, Trainer, trainer


@dataclasses.dataclass
class Setup:
    """Everything a run shares between its experiments.

    ``config.normalization`` is the one used (``auto`` resolved); ``normalization_reason``
    says why. ``train_rows[seed][i]`` is the source row (a row of ``rows_of``) of pool
    point ``i`` of that seed's dataset.
    """

    config: RunConfig
    datasets: list[Dataset]  # one per seed
    module: nn.Module
    model_name: str
    trainer: Trainer
    strategies: dict[str, Strategy]
    train_rows: list[np.ndarray]  # one per seed, int64 [N]
    rows_of: str
    normalization_reason: str
    # strategy -> one dict per seed: keyword input name -> array (SMI's query_x, ...)
    inputs: dict[str, list[dict[str, np.ndarray]]] = dataclasses.field(default_factory=dict)
    # The stopping rules (config.stop) and their stop sets; None without rules.
    stopping: Stopping | None = None


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


INPUTS_HOW = (
    "give each set as an .npz with x and y: --inputs {strategy}.{set}=FILE.npz (or "
    '[inputs.{strategy}] {set} = "FILE.npz" in the --config file)'
)


def strategy_inputs(
    name: str,
    strategy: Strategy,
    config: RunConfig,
    raw: Raw,
    prepared: list[Prepared],
    train: Trainer,
) -> list[dict[str, np.ndarray]]:
    """Per seed, the keyword inputs (``strategy.inputs``) of strategy ``name`` from the
    ``.npz`` files ``config.inputs[name]`` names, normalized like that seed's test split.

    A strategy that takes inputs but is given none is traced once (``jax.eval_shape``) to
    learn whether it needs them (SMI does; GLISTER's validation set is optional).

    Raises:
        ValueError: a set the strategy does not take, an unreadable file, or a needed set
            not given (the message says how to give it).
    """
    given = config.inputs.get(name, {})
    sets = set_names(strategy.inputs)
    unknown = sorted(set(given) - set(sets))
    if unknown:
        takes = ", ".join(sets) if sets else "no sets besides the pool"
        raise ValueError(f"--inputs {name}.{unknown[0]}: strategy {name!r} takes {takes}")
    loaded = {s: read_set(path, f"--inputs {name}.{s}") for s, path in given.items()}
    per_seed = []
    for seed_data in prepared:
        train_x = raw.x_train[seed_data.train_rows]
        arrays = {}
        for set_name, (x, y) in loaded.items():
            arrays[f"{set_name}_x"] = normalize_like(train_x, x, config.normalization)
            if f"{set_name}_y" in strategy.inputs:  # EPIG's targets are inputs only
                arrays[f"{set_name}_y"] = y
        per_seed.append(arrays)
    if sets and len(given) < len(sets):
        dataset = prepared[0].dataset
        params = jax.eval_shape(train.init, jax.random.key(0), jnp.asarray(dataset.x_train)).params
        try:
            jax.eval_shape(
                make_round(strategy),
                params,
                Pool.create(dataset.x_train),
                jax.random.key(0),
                **per_seed[0],
            )
        except (TypeError, ValueError) as error:
            if "needs the inputs" not in str(error):
                raise
            missing = [s for s in sets if s not in given]
            raise ValueError(
                f"strategy {name!r} needs the set{'s' * (len(missing) > 1)} "
                f"{', '.join(missing)} besides the pool; "
                + INPUTS_HOW.format(strategy=name, set=missing[0])
            ) from None
    return per_seed


def build_strategy(
    name: str,
    model: Model,
    budget: int,
    hparams: Mapping[str, Any],
    module: nn.Module,
    dataset: Dataset,
    train: Trainer,
) -> Strategy:
    """Strategy ``name`` over ``model``; a strategy that needs the model's ``head`` (ALFA-Mix
    classifies embeddings it builds) gets the module's logits layer as one
    (:func:`last_dense_head`). The runner's model has no head otherwise, so the MC-dropout
    strategies keep the module's own dropout.

    Raises:
        TypeError / ValueError: the strategy's own errors, or a needed head not found.
    """
    factory = get_strategy(name)
    try:
        return factory(model, budget, **hparams)
    except TypeError as error:
        if "needs a head" not in str(error):
            raise
        head = last_dense_head(module, dataset, train)
        if head is None:
            raise TypeError(
                f"{error}; the model has no top-level Dense layer that maps its embedding to "
                "its logits, which jaxal run would use as the head"
            ) from None
        return factory(model._replace(head=head), budget, **hparams)


def last_dense_head(module: nn.Module, dataset: Dataset, train: Trainer) -> HeadFn | None:
    """The module's logits layer as a ``head(params, embedding) -> logits``: the last
    top-level Dense layer of its params (``kernel`` [D, C], ``bias`` [C]) whose kernel maps
    the embedding [B, D] to the logits [B, C] and that reproduces the module's logits
    (eval mode) on four training points at initialization; None when no layer does (the
    MLP and CNN of :mod:`jaxal.train` end in one)."""
    x = jnp.asarray(dataset.x_train[:4])
    params = train.init(jax.random.key(0), x).params
    out: Any = module.apply(params, x, train=False)
    logits, embedding = out
    layers = params.get("params", {}) if isinstance(params, Mapping) else {}
    for name in reversed(list(layers)):
        layer = layers[name]
        if not (isinstance(layer, Mapping) and set(layer) == {"kernel", "bias"}):
            continue
        if layer["kernel"].shape != (embedding.shape[1], logits.shape[1]):
            continue

        def head(params: Any, embedding: jax.Array, name: str = name) -> jax.Array:
            dense = params["params"][name]
            return embedding @ dense["kernel"] + dense["bias"]

        if np.allclose(head(params, embedding), logits, rtol=1e-4, atol=1e-5):
            return head
    return None


def make_setup(config: RunConfig) -> Setup:
    """Load every seed's data, build the model, trainer and strategies; check the budget.

    The returned setup's config has ``normalization`` resolved (``auto`` becomes the
    normalization chosen from the data, see :func:`jaxal.runner.prepare.resolve_normalization`).

    Raises:
        ValueError / TypeError: anything that would make the run fail later.
    """
    source = read_source(config.dataset, data_dir=config.data_dir)
    normalization, reason = resolve_normalization(config.normalization, source.raw)
    config = dataclasses.replace(config, normalization=normalization)
    prepared = [
        prepare(
            source.raw,
            config.dataset,
            seed=seed,
            test_fraction=config.test_fraction,
            max_train=config.max_train,
            max_test=config.max_test,
            normalization=normalization,
        )
        for seed in range(config.seeds)
    ]
    datasets = [p.dataset for p in prepared]
    check_budget(config, len(datasets[0].x_train))
    module, model_name = resolve_module(config.model, datasets[0])
    train = trainer(
        module,
        steps=config.steps,
        learning_rate=config.learning_rate,
        batch_size=config.train_batch_size,
    )
    check_model(module, model_name, datasets[0], train)
    model = from_flax(module, mc_kwargs=config.mc_kwargs)
    strategies = {}
    for name in config.strategy:
        hparams = config.hparams.get(name, {})
        try:
            strategies[name] = build_strategy(
                name, model, config.budget, hparams, module, datasets[0], train
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"strategy {name!r} with {hparams or 'defaults'}: {error}") from None
    inputs = {
        name: strategy_inputs(name, strategy, config, source.raw, prepared, train)
        for name, strategy in strategies.items()
    }
    stopping = make_stopping(
        [stop_rule(rule, hparams) for rule, hparams in config.stop.items()],
        train,
        [len(dataset.x_train) for dataset in datasets],
        config.stop_set,
        config.budget,
    )
    return Setup(
        config,
        datasets,
        module,
        model_name,
        train,
        strategies,
        [p.train_rows for p in prepared],
        source.rows_of,
        reason,
        inputs,
        stopping,
    )

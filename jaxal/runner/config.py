"""The settings of ``jaxal run``: :class:`RunConfig`, read from flags, a TOML file or a
run's own ``config.json``, every field checked before anything runs.

A field's check takes ``(name, value)``, where ``name`` is how the message names the field:
``--rounds`` for a flag, ``rounds`` in a file. Range and number checks come from
:mod:`jaxal._checks`; every error reaches the caller as a ``ValueError`` whose message
starts with the source (``config file x.toml: ...``) when the value came from a file.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import tomllib
from collections.abc import Callable
from typing import Any

from jaxal import _checks
from jaxal.data import NORMALIZATIONS
from jaxal.stopping import StoppingRule
from jaxal.stopping import get as get_stop_rule
from jaxal.strategies import get as get_strategy

CONFIG = "config.json"


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
    normalization: str = "auto"  # or one of jaxal.data.NORMALIZATIONS
    hparams: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # Keyword arguments of the model's MC-dropout pass (jaxal.from_flax's mc_kwargs);
    # None: {"train": True}.
    mc_kwargs: dict[str, Any] | None = None
    # Sets a strategy takes besides the pool: strategy -> set name -> .npz path (SMI's
    # query set: {"smi": {"query": "query.npz"}}).
    inputs: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # Stopping rules: rule -> hyperparameters ({"labeling_budget": {"budget": 100}}); an
    # experiment ends after the first round at which one of them fires.
    stop: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # Pool points in each seed's stop set (stabilizing_predictions); all when fewer.
    stop_set: int = 1000

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: tuples become lists."""
        out = dataclasses.asdict(self)
        out["strategy"] = list(self.strategy)
        return out


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(RunConfig))
# Fields that a run's config.json written before they existed lacks (their defaults apply).
ADDED_FIELDS = ("mc_kwargs", "inputs", "stop", "stop_set")

Check = Callable[[str, Any], Any]


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _integer(in_range: Callable[[object, str], int]) -> Check:
    """An integer field: a non-integer is named with its value (``got 'ten'``), the range
    is ``in_range``'s (a :mod:`jaxal._checks` check)."""

    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return in_range(value, name)

    return check


def _positive_number(name: str, value: Any) -> float:
    return _checks.positive_float(value, name)


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _optional(check: Check) -> Check:
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
    return _checks.one_of(value, ("auto", *NORMALIZATIONS), name)


def _hparams(name: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a table of tables, [hparams.<strategy>]")
    for strategy, table in value.items():
        get_strategy(strategy)
        if not isinstance(table, dict):
            raise ValueError(f"{name}.{strategy} must be a table of hyperparameters")
    return {k: dict(v) for k, v in value.items()}


def _keywords(name: str, value: Any) -> dict[str, Any]:
    """Keyword arguments: a table (TOML) or a JSON object (a flag's text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f'{name} must be a JSON object such as \'{{"train": false, "mc_dropout": '
                f"true}}', got {value!r} ({error})"
            ) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a table of keyword arguments, got {value!r}")
    return dict(value)


def _inputs(name: str, value: Any) -> dict[str, dict[str, str]]:
    """Strategy -> set -> path: a table of tables (TOML), or a flag's text
    ``STRATEGY.SET=FILE,...``. Paths become absolute (a resumed run finds them)."""
    if isinstance(value, str):
        parsed: dict[str, dict[str, str]] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            target, equals, path = part.partition("=")
            strategy, dot, set_name = target.partition(".")
            if not (equals and dot and strategy and set_name and path):
                raise ValueError(
                    f"{name} takes STRATEGY.SET=FILE.npz (e.g. smi.query=query.npz), got {part!r}"
                )
            parsed.setdefault(strategy, {})[set_name] = path
        value = parsed
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise ValueError(f"{name} must be a table of tables, [inputs.<strategy>]")
    out = {}
    for strategy, table in value.items():
        get_strategy(strategy)
        for set_name, path in table.items():
            if not isinstance(path, str) or not path:
                raise ValueError(f"{name}.{strategy}.{set_name} must be an .npz path, got {path!r}")
        out[strategy] = {k: os.path.abspath(v) for k, v in table.items()}
    return out


def stop_rule(rule: str, hparams: dict[str, Any], name: str = "stop") -> StoppingRule:
    """The stopping rule ``rule`` built with ``hparams``.

    ``name`` is how messages name the setting: ``stop`` (a file's ``[stop.<rule>]``
    table) or ``--stop`` (the flags).

    Raises:
        ValueError: an unknown rule (listing the known ones), an unknown hyperparameter
            (with the closest name and the rule's hyperparameters), a missing required
            one, or a bad value.
    """
    factory = get_stop_rule(rule)
    shown = f"{name} {rule}" if name.startswith("--") else f"[{name}.{rule}]"
    parameters = inspect.signature(factory).parameters.values()
    accepted = [p.name for p in parameters]
    for key in hparams:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"{shown}: unknown hyperparameter {key!r}{hint}; {rule} takes {', '.join(accepted)}"
            )
    for parameter in parameters:
        if parameter.default is inspect.Parameter.empty and parameter.name not in hparams:
            raise ValueError(f"{shown} needs {parameter.name} (it has no default)")
    try:
        return factory(**hparams)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{shown}: {error}") from None


def _stop(name: str, value: Any) -> dict[str, dict[str, Any]]:
    """Rule -> hyperparameters: a table of tables (``[stop.<rule>]``, empty for the
    defaults); every rule is built once, so that bad settings fail before any round."""
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise ValueError(
            f"{name} must be a table of tables, [stop.<rule>] (an empty table for the "
            f"rule's defaults), got {value!r}"
        )
    for rule, table in value.items():
        stop_rule(rule, table, name)
    return {rule: dict(table) for rule, table in value.items()}


def stop_from_flags(
    rules: list[str] | None, kwargs: str | None, base: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]] | None:
    """The stopping rules that ``--stop`` and ``--stop-kwargs`` give over ``base`` (the
    config file's ``[stop]`` tables); None when neither flag is given.

    Args:
        rules: the ``--stop`` values (the flag repeated, each value comma-separated):
            they replace the file's rules, and a rule that the file has keeps its table.
        kwargs: ``--stop-kwargs``, a JSON object of rule -> hyperparameters, set over
            those of the rules (each must be one of them).

    Raises:
        ValueError: no rule named, one named twice, unreadable JSON, or hyperparameters of
            a rule the run does not use.
    """
    if rules is None and kwargs is None:
        return None
    if rules is None:
        selected = {rule: dict(table) for rule, table in base.items()}
    else:
        names = [part.strip() for value in rules for part in value.split(",") if part.strip()]
        if not names:
            raise ValueError("--stop must name at least one stopping rule")
        duplicates = sorted({rule for rule in names if names.count(rule) > 1})
        if duplicates:
            raise ValueError(f"--stop lists {', '.join(duplicates)} more than once")
        selected = {rule: dict(base.get(rule, {})) for rule in names}
    for rule, table in _stop_kwargs(kwargs).items():
        if rule not in selected:
            raise ValueError(
                f"--stop-kwargs sets hyperparameters of {rule!r}, which is not a stopping rule "
                f"of this run (its rules: {', '.join(selected) or 'none'}): add it to --stop"
            )
        selected[rule].update(table)
    return selected


def _stop_kwargs(text: str | None) -> dict[str, dict[str, Any]]:
    """``--stop-kwargs``: a JSON object of rule -> object of hyperparameters ({} for None)."""
    if text is None:
        return {}
    example = '\'{"labeling_budget": {"budget": 100}}\''
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--stop-kwargs must be a JSON object such as {example}, got {text!r} ({error})"
        ) from None
    if not isinstance(value, dict) or not all(isinstance(t, dict) for t in value.values()):
        raise ValueError(
            f"--stop-kwargs must map each rule to an object of hyperparameters, such as "
            f"{example}, got {text!r}"
        )
    return value


_count = _integer(_checks.positive_int)

CHECKS: dict[str, Check] = {
    "dataset": _text,
    "data_dir": _optional(_text),
    "model": _text,
    "strategy": _strategies,
    "rounds": _integer(_checks.nonnegative_int),
    "budget": _count,
    "initial": _count,
    "seeds": _count,
    "out": _text,
    "steps": _count,
    "learning_rate": _positive_number,
    "train_batch_size": _count,
    "warm_start": _flag,
    "test_fraction": _fraction,
    "max_train": _optional(_count),
    "max_test": _optional(_count),
    "normalization": _normalization,
    "hparams": _hparams,
    "mc_kwargs": _optional(_keywords),
    "inputs": _inputs,
    "stop": _stop,
    "stop_set": _count,
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
        require_all: every field must be present (a run's own ``config.json``), except
            :data:`ADDED_FIELDS`, which older runs lack.

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
        missing = [name for name in FIELD_NAMES if name not in values and name not in ADDED_FIELDS]
        if missing:
            raise ValueError(f"{prefix}missing field {', '.join(map(repr, missing))}")
    checked = {}
    for name, value in values.items():
        shown = name if where else "--" + name.replace("_", "-")
        try:
            checked[name] = CHECKS[name](shown, value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{prefix}{error}") from None
    return dataclasses.replace(base or RunConfig(), **checked)


def check_hparams(config: RunConfig, where: str | None = None) -> None:
    """Raise ValueError if ``config.hparams`` or ``config.inputs`` has a table for a
    strategy the run does not use (a misspelt or dropped strategy would otherwise run with
    its defaults, silently).

    ``where`` names the source in the message (``"config file x.toml"``).
    """
    prefix = f"{where}: " if where else ""
    unused = [name for name in config.hparams if name not in config.strategy]
    if unused:
        tables = ", ".join(f"[hparams.{name}]" for name in unused)
        raise ValueError(
            f"{prefix}{tables} sets hyperparameters of {', '.join(map(repr, unused))}, which "
            f"this run does not use (its strategies: {', '.join(config.strategy)}): add "
            f"{'it' if len(unused) == 1 else 'them'} to strategy (--strategy) or remove "
            f"the table{'s' * (len(unused) > 1)}"
        )
    unused = [name for name in config.inputs if name not in config.strategy]
    if unused:
        raise ValueError(
            f"{prefix}inputs (--inputs) of {', '.join(map(repr, unused))}, which this run "
            f"does not use (its strategies: {', '.join(config.strategy)}): add "
            f"{'it' if len(unused) == 1 else 'them'} to strategy (--strategy) or drop "
            f"{'its' if len(unused) == 1 else 'their'} inputs"
        )


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

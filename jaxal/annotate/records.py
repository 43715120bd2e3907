"""The labeling store's records and input checks: what :mod:`jaxal.annotate.store` reads
and writes, and the :class:`Rejected` error it raises for bad input."""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

CLIENT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_ANNOTATOR = 100


class Rejected(ValueError):
    """Input the store refuses, with the HTTP status that says why (400 malformed, 404
    unknown point, 409 a conflict with the store's state: a stale round, a point already
    labeled or held by another tab)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Pick(NamedTuple):
    """One picked point of a round.

    Attributes:
        round: the round that picked it.
        point: the point's index in the pool.
        position: its place in the round's batch (0 first).
        predicted: the model's class for it when it was picked (None before any label).
        confidence: the model's probability of ``predicted``.
    """

    round: int
    point: int
    position: int
    predicted: int | None
    confidence: float | None


class Round(NamedTuple):
    """One round as stored.

    Attributes:
        round: its number (0 first).
        strategy: the strategy that picked its points.
        labeled: the labels the model was trained on before it picked.
        accuracy: that model's accuracy on the held-out split (None without one).
        metrics: seconds spent and other numbers, a JSON object.
        status: the worker's status sentence after the round's training.
        final: True for the last entry, which picks nothing (the pool or the rounds are
            used up).
        size: its picks.
        resolved: its picks with an active label or skip.
        created_at: seconds since the epoch.
    """

    round: int
    strategy: str
    labeled: int
    accuracy: float | None
    metrics: dict[str, Any]
    status: str
    final: bool
    size: int
    resolved: int
    created_at: float


class Label(NamedTuple):
    """One active label (undone ones are left out).

    Attributes:
        point: the point's index in the pool.
        label: its class, or None for a skip.
        round: the round it was given in.
        annotator: who gave it.
        client: the tab (or ``import``) it came from.
        source: ``page`` or ``import:<file name>``.
        created_at: seconds since the epoch.
    """

    point: int
    label: int | None
    round: int
    annotator: str
    client: str
    source: str
    created_at: float


class Claimed(NamedTuple):
    """What :meth:`Store.claim` hands a tab: a pick, or None and why."""

    pick: Pick | None
    reason: str


def check_client(client: object) -> str:
    """A tab's client id: 1 to 64 letters, digits, ``_`` or ``-``.

    Raises:
        Rejected: anything else (400).
    """
    if not isinstance(client, str) or not CLIENT_PATTERN.fullmatch(client):
        raise Rejected(400, "client must be 1 to 64 letters, digits, '_' or '-'")
    return client


def check_annotator(annotator: object) -> str:
    """An annotator name, stripped: 1 to 100 printable characters.

    Raises:
        Rejected: anything else (400).
    """
    if not isinstance(annotator, str) or not annotator.strip():
        raise Rejected(400, "annotator must be a non-empty name")
    name = annotator.strip()
    if len(name) > MAX_ANNOTATOR or not name.isprintable():
        raise Rejected(400, f"annotator must be at most {MAX_ANNOTATOR} printable characters")
    return name


def check_int(value: object, what: str) -> int:
    """``value`` if it is an int (not a bool).

    Raises:
        Rejected: anything else (400).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(400, f"{what} must be an integer, got {json.dumps(value)}")
    return value

"""The labeling store: one SQLite file (the standard library's ``sqlite3``, WAL mode).

It holds the config a labeling project was started with, every round (the strategy, the
labels the model was trained on, the held-out accuracy, the status sentence), every
round's picks (with the model's prediction and the tab that holds each one), and every
label (the point, the class or a skip, the round, the annotator, the tab, the time; an
undone label keeps its row with ``undone_at`` set).

Every change is one ``BEGIN IMMEDIATE`` transaction, committed with ``synchronous=FULL``
before the call returns: a process killed at any moment loses no label whose call had
returned, and a transaction cut short leaves nothing behind. A partial unique index
allows one active label per point, so two tabs can never both label a point. Each call
opens its own connection, so the store is safe to share between threads and processes
(a ``jaxal annotate import`` while the server runs).

The open round is the latest round while one of its picks has no active label; once
every pick is labeled or skipped the round is closed, and the next one comes from the
worker (:mod:`jaxal.annotate.worker`). A pick is claimed by one tab (``claimed_by``, a
client id the page makes per tab) for ``lease`` seconds, renewed while the tab polls;
another tab is never handed a point under a live claim.

Bad input raises :class:`Rejected` with an HTTP status and a message; nothing is written.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from typing import Any

from jaxal.annotate.records import (
    Claimed,
    Label,
    Pick,
    Rejected,
    Round,
    check_annotator,
    check_client,
    check_int,
)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    strategy TEXT NOT NULL,
    labeled INTEGER NOT NULL,
    accuracy REAL,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL,
    final INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS picks (
    round INTEGER NOT NULL REFERENCES rounds (round),
    idx INTEGER NOT NULL,
    position INTEGER NOT NULL,
    predicted INTEGER,
    confidence REAL,
    claimed_by TEXT,
    claimed_at REAL,
    PRIMARY KEY (round, idx)
);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idx INTEGER NOT NULL,
    label INTEGER,
    round INTEGER NOT NULL,
    annotator TEXT NOT NULL,
    client TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    undone_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_label ON labels (idx) WHERE undone_at IS NULL;
CREATE INDEX IF NOT EXISTS labels_by_client ON labels (client, round);
"""


class Store:
    """A labeling project's SQLite file (see the module docstring).

    Args:
        path: the file; created with its schema when missing.

    Raises:
        ValueError: a file that is not a SQLite database, or one of a newer schema.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with self._connection() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (json.dumps(SCHEMA_VERSION),),
                )
                row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as error:
            raise ValueError(f"store {path} is not a jaxal labeling store ({error})") from None
        if json.loads(row[0]) > SCHEMA_VERSION:
            raise ValueError(f"store {path} was written by a newer jaxal; upgrade jaxal")

    # -- connections and transactions -------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled back
        when it raises (a :class:`Rejected` included)."""
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- config --------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        """The JSON value stored under ``key``, or None."""
        with self._connection() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON) under ``key``."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # -- rounds ----------------------------------------------------------------------------

    def rounds(self) -> list[Round]:
        """Every round, in order."""
        with self._connection() as db:
            return _rounds(db)

    def latest_round(self) -> Round | None:
        """The last round, or None before the first."""
        with self._connection() as db:
            rounds = _rounds(db, last_only=True)
        return rounds[0] if rounds else None

    def open_round(self) -> Round | None:
        """The round being labeled: the last one while a pick of it is unresolved."""
        latest = self.latest_round()
        if latest is None or latest.final or latest.resolved >= latest.size:
            return None
        return latest

    def needs_round(self) -> bool:
        """Whether the worker has a round to make: no round yet, or the last one closed
        and not final."""
        latest = self.latest_round()
        return latest is None or (not latest.final and latest.resolved >= latest.size)

    def labels_version(self) -> tuple[int, int]:
        """Changes whenever a label is written or undone (rows, undone rows)."""
        with self._connection() as db:
            row = db.execute("SELECT COUNT(*), COUNT(undone_at) FROM labels").fetchone()
        return int(row[0]), int(row[1])

    def add_round(
        self,
        round_index: int,
        strategy: str,
        labeled: int,
        accuracy: float | None,
        metrics: dict[str, Any],
        status: str,
        picks: Sequence[int],
        predicted: Sequence[int | None] | None = None,
        confidence: Sequence[float | None] | None = None,
        labels_version: tuple[int, int] | None = None,
    ) -> bool:
        """Store round ``round_index`` and its picks in one transaction; no picks make the
        final entry.

        Returns:
            False (and nothing written) when the store moved on meanwhile: the round
            exists, the previous one is not closed, or the labels changed since
            ``labels_version`` was read (the worker then computes the round again).

        Raises:
            ValueError: a pick that already has a label.
        """
        with self._write() as db:
            if labels_version is not None and labels_version != tuple(
                db.execute("SELECT COUNT(*), COUNT(undone_at) FROM labels").fetchone()
            ):
                return False
            rounds = _rounds(db, last_only=True)
            expected = 0 if not rounds else rounds[0].round + 1
            if round_index != expected or (rounds and rounds[0].resolved < rounds[0].size):
                return False
            if rounds and rounds[0].final:
                return False
            taken = _active_labels(db, picks)
            if taken:
                raise ValueError(f"round {round_index} would pick labeled points {taken[:5]}")
            db.execute(
                "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    round_index,
                    strategy,
                    labeled,
                    accuracy,
                    json.dumps(metrics),
                    status,
                    int(not picks),
                    time.time(),
                ),
            )
            db.executemany(
                "INSERT INTO picks (round, idx, position, predicted, confidence) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        round_index,
                        int(index),
                        position,
                        None if predicted is None else predicted[position],
                        None if confidence is None else confidence[position],
                    )
                    for position, index in enumerate(picks)
                ],
            )
        return True

    def picks(self, round_index: int) -> list[tuple[Pick, Label | None]]:
        """Round ``round_index``'s picks in batch order, each with its active label."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT p.round, p.idx, p.position, p.predicted, p.confidence, "
                "l.idx, l.label, l.round, l.annotator, l.client, l.source, l.created_at "
                "FROM picks p LEFT JOIN labels l ON l.idx = p.idx AND l.undone_at IS NULL "
                "WHERE p.round = ? ORDER BY p.position",
                (round_index,),
            ).fetchall()
        return [(Pick(*row[:5]), None if row[5] is None else Label(*row[5:])) for row in rows]

    def picked_rounds(self) -> dict[int, int]:
        """Every picked point -> the round that picked it."""
        with self._connection() as db:
            return dict(db.execute("SELECT idx, round FROM picks").fetchall())

    # -- labels ------------------------------------------------------------------------------

    def labels(self) -> list[Label]:
        """Every active label and skip, oldest first."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT idx, label, round, annotator, client, source, created_at FROM labels "
                "WHERE undone_at IS NULL ORDER BY id"
            ).fetchall()
        return [Label(*row) for row in rows]

    def counts(self) -> tuple[int, int]:
        """(points labeled with a class, points skipped), active labels only."""
        with self._connection() as db:
            row = db.execute(
                "SELECT COUNT(label), COUNT(*) - COUNT(label) FROM labels WHERE undone_at IS NULL"
            ).fetchone()
        return int(row[0]), int(row[1])

    def history(self) -> list[dict[str, Any]]:
        """Every label row ever written, undone ones included, oldest first."""
        with self._connection() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM labels ORDER BY id").fetchall()
        return [dict(row) for row in rows]

    # -- a tab's work ----------------------------------------------------------------------

    def claim(self, client: str, lease: float, now: float | None = None) -> Claimed:
        """The point tab ``client`` should label next, claimed for it.

        The tab's own live claim in the open round if it has one (renewed), else the first
        unresolved pick in batch order that no other tab holds (or whose claim is older
        than ``lease`` seconds). None when there is no open round or every unresolved
        pick is held by another tab; ``reason`` says which.
        """
        client = check_client(client)
        now = time.time() if now is None else now
        with self._write() as db:
            rounds = _rounds(db, last_only=True)
            if not rounds:
                return Claimed(None, "waiting for the first batch")
            latest = rounds[0]
            if latest.final:
                return Claimed(None, "done: no points left to pick")
            if latest.resolved >= latest.size:
                return Claimed(None, f"round {latest.round} is done; the next batch is coming")
            free = db.execute(
                "SELECT p.idx, p.claimed_by = ? AS mine FROM picks p "
                "WHERE p.round = ? AND NOT EXISTS (SELECT 1 FROM labels l "
                "WHERE l.idx = p.idx AND l.undone_at IS NULL) "
                "AND (p.claimed_by IS NULL OR p.claimed_by = ? OR p.claimed_at < ?) "
                "ORDER BY mine DESC, p.position LIMIT 1",
                (client, latest.round, client, now - lease),
            ).fetchone()
            if free is None:
                open_count = latest.size - latest.resolved
                return Claimed(
                    None,
                    f"the {open_count} open point{'s' * (open_count != 1)} of round "
                    f"{latest.round} {'are' if open_count != 1 else 'is'} being labeled in "
                    "another tab",
                )
            db.execute(
                "UPDATE picks SET claimed_by = NULL, claimed_at = NULL "
                "WHERE round = ? AND claimed_by = ? AND idx != ?",
                (latest.round, client, free[0]),
            )
            db.execute(
                "UPDATE picks SET claimed_by = ?, claimed_at = ? WHERE round = ? AND idx = ?",
                (client, now, latest.round, free[0]),
            )
            row = db.execute(
                "SELECT round, idx, position, predicted, confidence FROM picks "
                "WHERE round = ? AND idx = ?",
                (latest.round, free[0]),
            ).fetchone()
        return Claimed(Pick(*row), "")

    def touch(self, client: str, index: int | None = None, now: float | None = None) -> None:
        """Renew tab ``client``'s claims (the page polls while a point is shown); with
        ``index``, the point the tab shows, claim it again if no other tab holds it (the
        claims were dropped by a restart)."""
        client = check_client(client)
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("UPDATE picks SET claimed_at = ? WHERE claimed_by = ?", (now, client))
            if index is not None:
                db.execute(
                    "UPDATE picks SET claimed_by = ?, claimed_at = ? WHERE idx = ? "
                    "AND claimed_by IS NULL AND round = (SELECT MAX(round) FROM rounds) "
                    "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.idx = picks.idx "
                    "AND l.undone_at IS NULL)",
                    (client, now, index),
                )

    def release_all(self) -> None:
        """Drop every claim (a server starting: the tabs claim their points again)."""
        with self._write() as db:
            db.execute("UPDATE picks SET claimed_by = NULL, claimed_at = NULL")

    def release(self, client: str) -> None:
        """Drop tab ``client``'s claims (the tab was closed)."""
        client = check_client(client)
        with self._write() as db:
            db.execute(
                "UPDATE picks SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = ?",
                (client,),
            )

    def submit(
        self,
        client: str,
        round_index: object,
        index: object,
        label: object,
        annotator: object,
        num_classes: int,
        pool_size: int,
        lease: float,
        now: float | None = None,
    ) -> Label:
        """Record tab ``client``'s label (``label=None``: a skip) for pick ``index`` of
        round ``round_index``.

        The label is written when the round is the open one, the point is one of its
        picks with no active label, and no other tab holds a live claim on it.

        Raises:
            Rejected: malformed input (400), an unknown point or one not picked in the
                round (404), a stale round, a point already labeled, or one held by
                another tab (409). Nothing is written.
        """
        client = check_client(client)
        annotator = check_annotator(annotator)
        round_index = check_int(round_index, "round")
        index = check_int(index, "index")
        if label is not None:
            label = check_int(label, "label")
            if not 0 <= label < num_classes:
                raise Rejected(
                    400, f"label {label} is out of range: the classes are 0 to {num_classes - 1}"
                )
        if not 0 <= index < pool_size:
            raise Rejected(404, f"unknown point {index}: the pool has points 0 to {pool_size - 1}")
        now = time.time() if now is None else now
        with self._write() as db:
            _check_open(db, round_index)
            pick = db.execute(
                "SELECT claimed_by, claimed_at FROM picks WHERE round = ? AND idx = ?",
                (round_index, index),
            ).fetchone()
            if pick is None:
                raise Rejected(404, f"point {index} is not one of round {round_index}'s picks")
            done = db.execute(
                "SELECT label, annotator FROM labels WHERE idx = ? AND undone_at IS NULL",
                (index,),
            ).fetchone()
            if done is not None:
                what = "skipped" if done[0] is None else "labeled"
                raise Rejected(409, f"point {index} is already {what} (by {done[1]})")
            holder, held_at = pick
            if holder not in (None, client) and held_at is not None and held_at >= now - lease:
                raise Rejected(409, f"point {index} is being labeled in another tab")
            db.execute(
                "INSERT INTO labels (idx, label, round, annotator, client, source, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'page', ?)",
                (index, label, round_index, annotator, client, now),
            )
            db.execute(
                "UPDATE picks SET claimed_by = NULL, claimed_at = NULL WHERE round = ? AND idx = ?",
                (round_index, index),
            )
        return Label(index, label, round_index, annotator, client, "page", now)

    def undo(self, client: str, round_index: object, now: float | None = None) -> Pick:
        """Undo tab ``client``'s last label or skip of the open round ``round_index``;
        the point goes back to the tab (claimed), its other claims are dropped.

        Raises:
            Rejected: malformed input (400), a round that is not the open one, or nothing
                of the tab's to undo in it (409). Nothing is written.
        """
        client = check_client(client)
        round_index = check_int(round_index, "round")
        now = time.time() if now is None else now
        with self._write() as db:
            _check_open(db, round_index, closed_hint=" (its labels went into training)")
            last = db.execute(
                "SELECT id, idx FROM labels WHERE client = ? AND round = ? AND source = 'page' "
                "AND undone_at IS NULL ORDER BY id DESC LIMIT 1",
                (client, round_index),
            ).fetchone()
            if last is None:
                raise Rejected(
                    409, f"nothing to undo: this tab has no label in round {round_index}"
                )
            label_id, index = last
            db.execute("UPDATE labels SET undone_at = ? WHERE id = ?", (now, label_id))
            db.execute(
                "UPDATE picks SET claimed_by = NULL, claimed_at = NULL "
                "WHERE round = ? AND claimed_by = ?",
                (round_index, client),
            )
            db.execute(
                "UPDATE picks SET claimed_by = ?, claimed_at = ? WHERE round = ? AND idx = ?",
                (client, now, round_index, index),
            )
            row = db.execute(
                "SELECT round, idx, position, predicted, confidence FROM picks "
                "WHERE round = ? AND idx = ?",
                (round_index, index),
            ).fetchone()
        return Pick(*row)

    def import_labels(
        self, entries: Sequence[tuple[int, int, str]], source: str
    ) -> dict[str, list[int]]:
        """Record labels that come from a file, in one transaction.

        A point with no active label gets its label (in the open round, or the last
        round when none is open; round 0 before any round). A point that has the same
        label already is left as it is; one with another label or a skip is a conflict
        and left as it is too.

        Args:
            entries: (point index, class, annotator) triples, the points and classes
                checked by the caller (in range, one per point).
            source: ``import:<file name>``.

        Returns:
            ``{"added": [...], "same": [...], "conflicts": [...]}``, point indices.

        Raises:
            Rejected: a bad annotator name (nothing written).
        """
        entries = [(index, label, check_annotator(who)) for index, label, who in entries]
        report: dict[str, list[int]] = {"added": [], "same": [], "conflicts": []}
        now = time.time()
        with self._write() as db:
            rounds = _rounds(db, last_only=True)
            round_index = rounds[0].round if rounds else 0
            for index, label, annotator in entries:
                done = db.execute(
                    "SELECT label FROM labels WHERE idx = ? AND undone_at IS NULL", (index,)
                ).fetchone()
                if done is not None:
                    report["same" if done[0] == label else "conflicts"].append(index)
                    continue
                db.execute(
                    "INSERT INTO labels (idx, label, round, annotator, client, source, "
                    "created_at) VALUES (?, ?, ?, ?, 'import', ?, ?)",
                    (index, label, round_index, annotator, source, now),
                )
                db.execute(
                    "UPDATE picks SET claimed_by = NULL, claimed_at = NULL WHERE idx = ?",
                    (index,),
                )
                report["added"].append(index)
        return report


def _check_open(db: sqlite3.Connection, round_index: int, closed_hint: str = "") -> None:
    """Raise :class:`Rejected` (409) unless ``round_index`` is the open round."""
    rounds = _rounds(db, last_only=True)
    if not rounds or rounds[0].final:
        raise Rejected(409, f"round {round_index} is not open: no round is open")
    latest = rounds[0]
    if round_index != latest.round:
        raise Rejected(
            409,
            f"round {round_index} is stale: round {latest.round} is the latest; reload the page",
        )
    if latest.resolved >= latest.size:
        raise Rejected(409, f"round {round_index} is closed{closed_hint}")


def _active_labels(db: sqlite3.Connection, indices: Sequence[int]) -> list[int]:
    """Those of ``indices`` with an active label or skip."""
    taken = []
    for index in indices:
        row = db.execute(
            "SELECT 1 FROM labels WHERE idx = ? AND undone_at IS NULL", (int(index),)
        ).fetchone()
        if row is not None:
            taken.append(int(index))
    return taken


def _rounds(db: sqlite3.Connection, last_only: bool = False) -> list[Round]:
    """Rounds with their pick counts (only the last when ``last_only``)."""
    where = "WHERE r.round = (SELECT MAX(round) FROM rounds)" if last_only else ""
    rows = db.execute(
        "SELECT r.round, r.strategy, r.labeled, r.accuracy, r.metrics, r.status, r.final, "
        "COUNT(p.idx), COUNT(l.idx), r.created_at FROM rounds r "
        "LEFT JOIN picks p ON p.round = r.round "
        "LEFT JOIN labels l ON l.idx = p.idx AND l.undone_at IS NULL "
        f"{where} GROUP BY r.round ORDER BY r.round"
    ).fetchall()
    return [
        Round(
            round=row[0],
            strategy=row[1],
            labeled=row[2],
            accuracy=row[3],
            metrics=json.loads(row[4]),
            status=row[5],
            final=bool(row[6]),
            size=row[7],
            resolved=row[8],
            created_at=row[9],
        )
        for row in rows
    ]

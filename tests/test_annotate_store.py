"""The labeling store on its own: claims, labels, skips, undo, validation, imports, and many
threads labeling one batch at once."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from jaxal.annotate.records import Rejected
from jaxal.annotate.store import Store

CLASSES = 3
POOL = 50
LEASE = 60.0


@pytest.fixture
def store(tmp_path):
    """A store whose round 0 picks points 10, 11, 12, 13."""
    store = Store(str(tmp_path / "labels.sqlite"))
    assert store.add_round(0, "random", 0, None, {}, "labeled 0 of 50", [10, 11, 12, 13])
    return store


def submit(store, client, index, label=1, round_index=0, now=None, annotator="ann"):
    return store.submit(client, round_index, index, label, annotator, CLASSES, POOL, LEASE, now=now)


def test_the_file_is_in_wal_mode(store):
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_label_is_stored_with_its_round_annotator_and_time(store):
    pick = store.claim("tab-a", LEASE).pick
    assert pick.point == 10 and pick.round == 0 and pick.position == 0
    saved = submit(store, "tab-a", 10, label=2, annotator="  Ada ")
    (label,) = store.labels()
    assert label == saved
    assert (label.point, label.label, label.round, label.annotator) == (10, 2, 0, "Ada")
    assert label.source == "page" and label.created_at > 0
    assert store.open_round().resolved == 1


def test_two_tabs_never_get_the_same_point(store):
    a = store.claim("tab-a", LEASE).pick.point
    b = store.claim("tab-b", LEASE).pick.point
    c = store.claim("tab-c", LEASE).pick.point
    assert len({a, b, c}) == 3
    # A tab asking again keeps its own point.
    assert store.claim("tab-a", LEASE).pick.point == a
    d = store.claim("tab-d", LEASE).pick.point
    assert store.claim("tab-e", LEASE).pick is None
    assert "another tab" in store.claim("tab-e", LEASE).reason
    # Another tab cannot label a point held by a live claim.
    with pytest.raises(Rejected, match="another tab") as error:
        submit(store, "tab-e", d)
    assert error.value.status == 409
    assert store.labels() == []


def test_an_expired_claim_goes_to_another_tab(store):
    now = 1_000_000.0
    held = [store.claim(f"tab-{i}", LEASE, now=now).pick.point for i in range(4)]
    assert store.claim("late", LEASE, now=now + 1).pick is None
    # tab-0 stops polling; its lease runs out, the others renew theirs.
    for i in range(1, 4):
        store.touch(f"tab-{i}", now=now + LEASE)
    late = store.claim("late", LEASE, now=now + LEASE + 1).pick
    assert late.point == held[0]
    submit(store, "late", late.point, now=now + LEASE + 2)
    with pytest.raises(Rejected, match="already labeled"):
        submit(store, "tab-0", held[0], now=now + LEASE + 3)


def test_release_frees_a_closed_tabs_point(store):
    for i in range(4):
        store.claim(f"tab-{i}", LEASE)
    assert store.claim("new", LEASE).pick is None
    store.release("tab-2")
    assert store.claim("new", LEASE).pick is not None


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"index": 99}, 404, "unknown point 99"),
        ({"index": -1}, 404, "unknown point -1"),
        ({"index": 20}, 404, "not one of round 0's picks"),
        ({"label": 3}, 400, "label 3 is out of range"),
        ({"label": -1}, 400, "out of range"),
        ({"label": True}, 400, "label must be an integer"),
        ({"label": "1"}, 400, "label must be an integer"),
        ({"index": 10.0}, 400, "index must be an integer"),
        ({"round_index": 1}, 409, "stale"),
        ({"round_index": "0"}, 400, "round must be an integer"),
        ({"client": "a b"}, 400, "client must be"),
        ({"client": ""}, 400, "client must be"),
        ({"annotator": " "}, 400, "annotator"),
        ({"annotator": "x" * 101}, 400, "annotator"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(store, change, status, message):
    args = {"client": "tab-a", "index": 10, "label": 1, "round_index": 0, "annotator": "ann"}
    args.update(change)
    before = store.labels_version()
    with pytest.raises(Rejected, match=message) as error:
        submit(
            store,
            args["client"],
            args["index"],
            args["label"],
            args["round_index"],
            annotator=args["annotator"],
        )
    assert error.value.status == status
    assert store.labels_version() == before and store.labels() == []


def test_skip_and_undo_only_the_tabs_own_last_label(store):
    submit(store, "tab-a", 10, label=0)
    submit(store, "tab-b", 11, label=1)
    submit(store, "tab-a", 12, label=None)  # a skip
    assert [(x.point, x.label) for x in store.labels()] == [(10, 0), (11, 1), (12, None)]
    back = store.undo("tab-a", 0)
    assert back.point == 12  # the skip, tab-a's last
    assert store.claim("tab-a", LEASE).pick.point == 12  # handed back to tab-a
    assert store.undo("tab-a", 0).point == 10
    with pytest.raises(Rejected, match="nothing to undo"):
        store.undo("tab-a", 0)
    assert [(x.point, x.label) for x in store.labels()] == [(11, 1)]  # tab-b's stays
    history = store.history()
    assert len(history) == 3 and sum(row["undone_at"] is not None for row in history) == 2


def test_a_closed_round_refuses_labels_and_undo(store):
    for index in (10, 11, 12, 13):
        submit(store, "tab-a", index)
    assert store.open_round() is None and store.needs_round()
    with pytest.raises(Rejected, match="went into training") as error:
        store.undo("tab-a", 0)
    assert error.value.status == 409
    assert store.claim("tab-a", LEASE).pick is None
    assert store.add_round(1, "margin", 4, 0.5, {}, "", [20, 21])
    with pytest.raises(Rejected, match="stale"):
        submit(store, "tab-a", 20, round_index=0)


def test_a_round_is_not_stored_twice_or_over_changed_labels(store):
    assert not store.add_round(1, "margin", 0, None, {}, "", [20])  # round 0 is open
    version = store.labels_version()
    for index in (10, 11, 12, 13):
        submit(store, "tab-a", index)
    assert not store.add_round(1, "margin", 4, None, {}, "", [20], labels_version=version)
    assert store.add_round(
        1, "margin", 4, None, {}, "", [20], labels_version=store.labels_version()
    )
    assert not store.add_round(1, "margin", 4, None, {}, "", [21])
    with pytest.raises(ValueError, match="labeled points"):
        submit(store, "tab-a", 20, round_index=1)
        store.add_round(2, "margin", 5, None, {}, "", [10])


def test_imports_add_keep_and_report_conflicts(store):
    submit(store, "tab-a", 10, label=1)
    report = store.import_labels([(10, 1, "ls"), (11, 2, "ls"), (40, 0, "ls")], "import:x.json")
    assert report == {"added": [11, 40], "same": [10], "conflicts": []}
    report = store.import_labels([(11, 0, "ls")], "import:x.json")
    assert report == {"added": [], "same": [], "conflicts": [11]}
    assert {x.point: x.label for x in store.labels()} == {10: 1, 11: 2, 40: 0}
    with pytest.raises(Rejected, match="annotator"):
        store.import_labels([(12, 0, "")], "import:x.json")
    assert 12 not in {x.point for x in store.labels()}


def test_many_threads_label_one_batch_without_a_lost_or_double_label(tmp_path):
    store = Store(str(tmp_path / "labels.sqlite"))
    picks = list(range(40))
    store.add_round(0, "random", 0, None, {}, "", picks)
    done: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def tab(name):
        mine = []
        start.wait()
        try:
            while True:
                claimed = store.claim(name, LEASE)
                if claimed.pick is None:
                    break
                store.submit(name, 0, claimed.pick.point, 1, name, CLASSES, POOL, LEASE)
                mine.append(claimed.pick.point)
        except BaseException as error:  # reported below
            errors.append(error)
        done[name] = mine

    threads = [threading.Thread(target=tab, args=(f"tab-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    labeled = [index for mine in done.values() for index in mine]
    assert sorted(labeled) == picks  # every pick once, none twice
    assert sorted(x.point for x in store.labels()) == picks


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("not a database" * 100)
    with pytest.raises(ValueError, match="not a jaxal labeling store"):
        Store(str(path))


def test_after_a_restart_a_tab_claims_the_point_it_shows_again(store):
    shown = store.claim("tab-a", LEASE).pick.point
    store.release_all()
    store.touch("tab-a", shown)
    assert store.claim("tab-b", LEASE).pick.point != shown
    # A point another tab holds, or one labeled meanwhile, is not taken over.
    taken = store.claim("tab-c", LEASE).pick.point
    store.touch("tab-a", taken)
    assert store.claim("tab-c", LEASE).pick.point == taken

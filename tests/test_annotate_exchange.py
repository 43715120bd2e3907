"""Export of the picks (CSV, JSON lines, Label Studio tasks) and import of labels (Label
Studio's JSON and JSON_MIN exports, jaxal's CSV), through the ``jaxal annotate`` command."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from jaxal import cli
from jaxal.annotate import server
from jaxal.annotate.data import load
from jaxal.annotate.exchange import import_labels
from jaxal.annotate.store import Store
from tests.annotate_support import FAST, tiny_digits

PICKS = [7, 3, 21, 42, 15]


@pytest.fixture
def stored(tmp_path):
    """(store path, store, data, true labels): a store of the tiny digits whose round 0
    picked ``PICKS`` (the model guessed class 1 for each), point 7 labeled by the page."""
    dataset, truth = tiny_digits(str(tmp_path / "digits.npz"))
    path = str(tmp_path / "labels.sqlite")
    given = {"dataset": dataset, **FAST}
    store, _, data = server.open_project(path, given)
    server.save_project(store, server.project_config.resolve(given, None, path), data)
    store.add_round(0, "random", 3, 0.4, {}, "", PICKS, [1] * 5, [0.5, 0.6, 0.7, 0.8, 0.9])
    store.claim("tab", 60)
    store.submit("tab", 0, 7, int(truth[7]), "ada", 10, 60, 60)
    return path, store, data, truth


def run(capsys, *args):
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_csv_and_jsonl_exports_hold_the_picks_and_their_images(stored, tmp_path, capsys):
    path, _, _, truth = stored
    out = tmp_path / "csv"
    status, printed, _ = run(
        capsys, "annotate", "export", "--store", path, "--format", "csv", "--out", out
    )
    assert status == 0 and "exported 5" in printed
    with open(out / "picks.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["index"]) for r in rows] == PICKS
    assert rows[0]["label"] == str(truth[7]) and rows[0]["status"] == "labeled"
    assert rows[0]["annotator"] == "ada" and rows[1]["label"] == "" and rows[1]["status"] == "open"
    assert rows[1]["predicted"] == "1" and float(rows[1]["confidence"]) == pytest.approx(0.6)
    from PIL import Image

    for row in rows:
        with Image.open(out / row["image"]) as image:
            assert image.size == (128, 128)  # 8x8 digits, enlarged 16 times

    out = tmp_path / "jsonl"
    assert (
        run(capsys, "annotate", "export", "--store", path, "--format", "jsonl", "--out", out)[0]
        == 0
    )
    records = [json.loads(line) for line in (out / "picks.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == PICKS and records[2]["image"] == "images/000021.png"
    assert records[0]["label"] == str(truth[7]) and records[3]["label"] is None


def test_labelstudio_export_is_a_task_list_with_predictions(stored, tmp_path, capsys):
    path, _, data, _ = stored
    out = tmp_path / "ls"
    status, printed, _ = run(
        capsys, "annotate", "export", "--store", path, "--format", "labelstudio", "--out", out
    )
    assert status == 0 and "1 picks with a label already left out" in printed
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["data"]["jaxal_idx"] for t in tasks] == PICKS[1:]
    first = tasks[0]
    assert first["data"]["image"] == "/data/local-files/?d=images/000003.png"
    assert (out / "images" / "000003.png").is_file()
    (prediction,) = first["predictions"]
    assert prediction["score"] == pytest.approx(0.6)
    assert prediction["result"][0] == {
        "id": "jaxal3",
        "from_name": "label",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": ["1"]},
    }
    view = ET.fromstring((out / "labeling_config.xml").read_text())
    assert view.find("Image").attrib == {"name": "image", "value": "$image"}
    choices = view.find("Choices")
    assert choices.attrib["name"] == "label" and choices.attrib["toName"] == "image"
    assert [c.attrib["value"] for c in choices] == data.classes


def label_studio_export(tasks, truth, classes):
    """What Label Studio's JSON export makes of ``tasks`` once labeled: its own task ids,
    the data copied, one annotation per task (two on one, a skipped one on another)."""
    exported = []
    for n, task in enumerate(tasks):
        index = task["data"]["jaxal_idx"]
        annotation = {
            "id": 100 + n,
            "completed_by": 1,
            "result": [
                {
                    "value": {"choices": [classes[truth[index]]]},
                    "id": f"res{n}",
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "origin": "manual",
                }
            ],
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": f"2026-12-04T10:00:0{n}Z",
            "updated_at": f"2026-12-04T10:00:0{n}Z",
            "draft_created_at": None,
            "lead_time": 3.1,
            "prediction": task["predictions"][0] if task.get("predictions") else {},
            "result_count": 0,
            "unique_id": f"u{n}",
            "import_id": None,
            "last_action": None,
            "task": 1000 + n,
            "project": 5,
            "updated_by": 1,
            "parent_prediction": None,
            "parent_annotation": None,
            "last_created_by": None,
        }
        annotations = [annotation]
        if n == 0:  # corrected later by a second annotator: the newer one counts
            older = json.loads(json.dumps(annotation))
            older.update(id=99, completed_by=2, created_at="2026-12-01T09:00:00Z")
            older.update(updated_at="2026-12-01T09:00:00Z")
            older["result"][0]["value"]["choices"] = [classes[(truth[index] + 1) % 10]]
            annotations = [older, annotation]
        if n == 1:  # skipped in Label Studio
            annotation.update(was_cancelled=True, result=[])
        exported.append(
            {
                "id": 1000 + n,
                "annotations": annotations,
                "file_upload": None,
                "drafts": [],
                "predictions": [7],
                "data": task["data"],
                "meta": {},
                "created_at": "2026-12-04T09:59:00.000000Z",
                "updated_at": "2026-12-04T10:00:09.000000Z",
                "inner_id": n + 1,
                "total_annotations": len(annotations),
                "cancelled_annotations": int(n == 1),
                "total_predictions": 1,
                "comment_count": 0,
                "unresolved_comment_count": 0,
                "last_comment_updated_at": None,
                "project": 5,
                "updated_by": 1,
                "comment_authors": [],
            }
        )
    return exported


def test_labels_made_in_label_studio_come_back(stored, tmp_path, capsys):
    path, store, data, truth = stored
    out = tmp_path / "ls"
    run(capsys, "annotate", "export", "--store", path, "--format", "labelstudio", "--out", out)
    tasks = json.loads((out / "tasks.json").read_text())
    exported = tmp_path / "project-5-at-2026-12-04.json"
    exported.write_text(json.dumps(label_studio_export(tasks, truth, data.classes), indent=2))

    status, printed, _ = run(capsys, "annotate", "import", exported, "--store", path)
    assert status == 0, printed
    assert "imported 3 labels" in printed and "(labelstudio-json)" in printed
    assert "1 task without a label" in printed
    labels = {x.point: x for x in store.labels()}
    skipped_in_ls = tasks[1]["data"]["jaxal_idx"]
    assert skipped_in_ls not in labels
    for task in tasks:
        index = task["data"]["jaxal_idx"]
        if index != skipped_in_ls:
            assert labels[index].label == truth[index]  # the newer annotation won
            assert labels[index].annotator == "labelstudio:1"
            assert labels[index].source == f"import:{exported.name}"
    assert store.open_round().resolved == 4  # the one skipped in Label Studio is still open

    # Imported again: nothing new, nothing changed.
    status, printed, _ = run(capsys, "annotate", "import", exported, "--store", path)
    assert "imported 0 labels" in printed and "3 points had the same label already" in printed


def test_json_min_exports_are_read_too(stored, tmp_path):
    path, store, data, truth = stored
    records = [
        {  # JSON_MIN: the task's data at the top level, one bare choice as a string
            "image": "/data/local-files/?d=images/000003.png",
            "jaxal_idx": 3,
            "jaxal_round": 0,
            "id": 1000,
            "label": data.classes[truth[3]],
            "annotator": "ada@example.org",
            "annotation_id": 100,
            "created_at": "2026-12-04T10:00:00.000000Z",
            "updated_at": "2026-12-04T10:00:00.000000Z",
            "lead_time": 2.5,
        },
        {  # several choices selected would come as an object
            "jaxal_idx": 21,
            "id": 1001,
            "label": {"choices": [data.classes[truth[21]]]},
            "annotator": 3,
            "annotation_id": 101,
            "created_at": "2026-12-04T10:00:01Z",
            "updated_at": "2026-12-04T10:00:01Z",
            "lead_time": 1.0,
        },
        {"jaxal_idx": 42, "id": 1002},  # a task nobody labeled
    ]
    file = tmp_path / "min.json"
    file.write_text(json.dumps(records))
    done = import_labels(store, str(file), data.classes, data.size)
    assert done.format == "labelstudio-json-min" and sorted(done.added) == [3, 21]
    assert done.unlabeled == 1
    labels = {x.point: x for x in store.labels()}
    assert labels[3].label == truth[3] and labels[3].annotator == "labelstudio:ada@example.org"
    assert labels[21].label == truth[21] and labels[21].annotator == "labelstudio:3"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"jaxal_idx": 60, "label": "1"}, "outside the pool"),
        ({"jaxal_idx": 3, "label": "cat"}, "no class"),
        ({"jaxal_idx": 3, "label": {"choices": ["1", "2"]}}, "2 choices"),
        ({"jaxal_idx": "x", "label": "1"}, "no integer"),
        ({"label": "1"}, "names no point"),
    ],
)
def test_a_bad_entry_stops_the_import_and_nothing_is_written(stored, tmp_path, record, message):
    path, store, data, _ = stored
    good = {"jaxal_idx": 21, "label": "4"}
    file = tmp_path / "bad.json"
    file.write_text(json.dumps([good, record]))
    before = store.labels()
    with pytest.raises(ValueError, match=message):
        import_labels(store, str(file), data.classes, data.size)
    assert store.labels() == before


def test_a_csv_labeled_elsewhere_is_imported_by_the_command(stored, tmp_path, capsys):
    path, store, _, truth = stored
    out = tmp_path / "csv"
    run(capsys, "annotate", "export", "--store", path, "--format", "csv", "--out", out)
    with open(out / "picks.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        row["label"] = str(truth[int(row["index"])])
    with open(out / "picks.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    status, printed, _ = run(
        capsys, "annotate", "import", out / "picks.csv", "--store", path, "--annotator", "team"
    )
    assert status == 0 and "imported 4 labels" in printed
    assert store.open_round() is None and store.needs_round()  # the batch is complete
    assert {x.annotator for x in store.labels()} == {"ada", "team"}
    status, _, err = run(capsys, "annotate", "import", tmp_path / "none.csv", "--store", path)
    assert status == 2 and "cannot read" in err


def test_a_folder_of_images_round_trips_by_file_name(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.jpg", "c.png", "notes.txt"):
        if name.endswith("txt"):
            (folder / name).write_text("not an image")
        else:
            pixels = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name)
    data = load(str(folder), classes=["cat", "dog"], image_size=8)
    assert data.display == "image" and data.raw.shape == (3, 8, 8, 3)
    assert [f.rsplit("/", 1)[1] for f in data.files] == ["a.jpg", "b.png", "c.png"]
    store = Store(str(tmp_path / "labels.sqlite"))
    store.add_round(0, "typiclust", 0, None, {}, "", [2, 0])
    from jaxal.annotate.exchange import export

    done = export(store, data, "labelstudio", str(tmp_path / "ls"))
    assert done.images == 2 and (tmp_path / "ls" / "images" / "000002_c.png").is_file()
    # Tasks made in Label Studio from the folder itself carry no jaxal_idx: the file name
    # (after Label Studio's upload prefix) finds the point.
    file = tmp_path / "export.json"
    tasks = [
        {
            "id": 1,
            "data": {"image": "/data/upload/5/1a2b3c4d-c.png"},
            "annotations": [
                {
                    "id": 1,
                    "result": [
                        {
                            "type": "choices",
                            "from_name": "choice",
                            "to_name": "image",
                            "value": {"choices": ["dog"]},
                        }
                    ],
                    "was_cancelled": False,
                }
            ],
        },
        {
            "id": 2,
            "data": {"image": "/data/local-files/?d=photos/a.jpg"},
            "annotations": [
                {
                    "id": 2,
                    "result": [
                        {
                            "type": "choices",
                            "from_name": "choice",
                            "to_name": "image",
                            "value": {"choices": ["cat"]},
                        }
                    ],
                    "was_cancelled": False,
                }
            ],
        },
    ]
    file.write_text(json.dumps(tasks))
    done = import_labels(store, str(file), data.classes, data.size, files=data.files)
    assert sorted(done.added) == [0, 2]
    assert {x.point: x.label for x in store.labels()} == {2: 1, 0: 0}
    with pytest.raises(ValueError, match="needs --classes"):
        load(str(folder))

"""Exchange with other annotation tools: export the picks, import labels back.

Export (``jaxal annotate export``) writes a folder:

* ``csv``: ``picks.csv``, one row per pick: ``index``, ``round``, ``position``, ``image``
  (a file under ``images/``) or one column per feature, ``label`` (the class name, empty
  while open), ``status`` (open, labeled, skipped), ``annotator``, ``predicted`` and
  ``confidence`` (the model's class when it picked the point).
* ``jsonl``: ``picks.jsonl``, the same fields, one JSON object a line (features as a
  ``row`` object).
* ``labelstudio``: ``tasks.json`` in Label Studio's task import format, one task per open
  pick: ``data`` holds ``image`` (a URL: ``--image-url`` + the file name) or ``row`` (the
  features, for a ``Table`` tag), plus ``jaxal_idx`` (the point) and ``jaxal_round``;
  ``predictions`` holds the model's class as a pre-annotation once the model has seen a
  label. ``labeling_config.xml`` is the matching labeling config (an ``Image`` or
  ``Table`` object and a single-choice ``Choices`` control named ``label``).

Image pools get their pictures under ``images/``: the image files themselves, or PNGs
drawn from the arrays (enlarged to at least 128 pixels a side).

Import (``jaxal annotate import FILE``) reads:

* Label Studio's JSON export (a list of tasks with ``annotations``): per task, a
  ``ground_truth`` annotation if there is one, else the latest by ``updated_at``;
  cancelled (skipped) annotations and empty results are passed over; the label is the
  one choice of the ``choices`` result named ``--from-name`` (default ``label``; a task
  whose only choices result has another name is read too).
* Label Studio's JSON_MIN export (flat records, the task's data at the top level): the
  ``--from-name`` field, a bare string for one choice or ``{"choices": [...]}``; of
  several records of one task, the latest.
* jaxal's own ``.csv`` / ``.jsonl`` (``index`` and ``label`` columns).

The point is ``jaxal_idx`` (kept in the task's data through Label Studio), or for a folder
of images the image's file name. A label is a class name, or a class index. The whole file
is checked first: an unknown point, an unknown class or a task with several choices
stops the import with a message, and nothing is written.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import urllib.parse
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from xml.sax.saxutils import quoteattr

from jaxal.annotate.data import LabelingData
from jaxal.annotate.records import Label, Pick
from jaxal.annotate.render import Renderer
from jaxal.annotate.store import Store

FORMATS = ("csv", "jsonl", "labelstudio")
FROM_NAME = "label"
DEFAULT_IMAGE_URL = "/data/local-files/?d=images/"
EXPORT_MIN_SIDE = 128


class Exported(NamedTuple):
    """What :func:`export` wrote.

    Attributes:
        files: the files written (images left out).
        images: the image files written.
        points: the picks exported.
        left_out: picks that have a label already (left out of a Label Studio export).
    """

    files: list[str]
    images: int
    points: int
    left_out: int


def _picks(store: Store, every: bool) -> list[tuple[Pick, Label | None]]:
    rounds = store.rounds()
    if not rounds:
        return []
    chosen = [r.round for r in rounds] if every else [rounds[-1].round]
    return [item for r in chosen for item in store.picks(r)]


def _image_name(data: LabelingData, index: int) -> str:
    if data.files is not None:
        return f"{index:06d}_{os.path.basename(data.files[index])}"
    return f"{index:06d}.png"


def export(
    store: Store,
    data: LabelingData,
    fmt: str,
    out: str,
    image_url: str = DEFAULT_IMAGE_URL,
    every: bool = False,
) -> Exported:
    """Write the open round's picks (every round's with ``every``) to the folder ``out``
    in format ``fmt`` (see the module docstring).

    Raises:
        ValueError: an unknown format, or a store with no round yet.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not store.rounds():
        raise ValueError(
            "the store has no picks yet: start `jaxal annotate` on it once to pick the first batch"
        )
    picks = _picks(store, every)
    if fmt == "labelstudio":
        left_out = sum(label is not None for _, label in picks)
        picks = [(pick, label) for pick, label in picks if label is None]
    else:
        left_out = 0
    os.makedirs(out, exist_ok=True)
    renderer = Renderer(data)
    images = 0
    if data.display == "image":
        folder = os.path.join(out, "images")
        os.makedirs(folder, exist_ok=True)
        for pick, _ in picks:
            target = os.path.join(folder, _image_name(data, pick.point))
            source = renderer.file(pick.point)
            if source is not None:
                shutil.copyfile(source, target)
            else:
                with open(target, "wb") as file:
                    file.write(renderer.png(pick.point, min_side=EXPORT_MIN_SIDE))
            images += 1
    records = [_record(data, renderer, pick, label) for pick, label in picks]
    if fmt == "csv":
        files = [_write_csv(os.path.join(out, "picks.csv"), records, data, renderer)]
    elif fmt == "jsonl":
        path = os.path.join(out, "picks.jsonl")
        with open(path, "w", encoding="utf-8") as file:
            for record in records:
                file.write(json.dumps(record) + "\n")
        files = [path]
    else:
        tasks = [_task(data, renderer, pick, image_url) for pick, _ in picks]
        tasks_path = os.path.join(out, "tasks.json")
        with open(tasks_path, "w", encoding="utf-8") as file:
            json.dump(tasks, file, indent=2)
        config_path = os.path.join(out, "labeling_config.xml")
        with open(config_path, "w", encoding="utf-8") as file:
            file.write(labeling_config(data))
        files = [tasks_path, config_path]
    return Exported(files, images, len(picks), left_out)


def _record(
    data: LabelingData, renderer: Renderer, pick: Pick, label: Label | None
) -> dict[str, Any]:
    record: dict[str, Any] = {"index": pick.point, "round": pick.round, "position": pick.position}
    if data.display == "image":
        record["image"] = f"images/{_image_name(data, pick.point)}"
    else:
        record["row"] = dict(renderer.row(pick.point))
    status = "open" if label is None else "skipped" if label.label is None else "labeled"
    record["label"] = None if label is None or label.label is None else data.classes[label.label]
    record["status"] = status
    record["annotator"] = None if label is None else label.annotator
    record["predicted"] = None if pick.predicted is None else data.classes[pick.predicted]
    record["confidence"] = None if pick.confidence is None else round(pick.confidence, 4)
    return record


def _write_csv(
    path: str, records: list[dict[str, Any]], data: LabelingData, renderer: Renderer
) -> str:
    columns = ["index", "round", "position"]
    columns += ["image"] if data.display == "image" else renderer.columns()
    columns += ["label", "status", "annotator", "predicted", "confidence"]
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        for record in records:
            row = {k: v for k, v in record.items() if k != "row"}
            row.update(record.get("row", {}))
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def _object_tag(data: LabelingData) -> tuple[str, str]:
    """(the object tag's name, its XML) for the labeling config."""
    if data.display == "image":
        return "image", '<Image name="image" value="$image"/>'
    return "row", '<Table name="row" value="$row"/>'


def labeling_config(data: LabelingData) -> str:
    """Label Studio's labeling config for single-choice classification of this pool."""
    name, tag = _object_tag(data)
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in data.classes)
    return (
        "<View>\n"
        f"  {tag}\n"
        f'  <Choices name="{FROM_NAME}" toName="{name}" choice="single" showInline="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def _task(data: LabelingData, renderer: Renderer, pick: Pick, image_url: str) -> dict[str, Any]:
    """One Label Studio task for a pick."""
    name, _ = _object_tag(data)
    task_data: dict[str, Any] = {}
    if data.display == "image":
        task_data["image"] = image_url + urllib.parse.quote(_image_name(data, pick.point))
    else:
        task_data["row"] = dict(renderer.row(pick.point))
    task_data["jaxal_idx"] = pick.point
    task_data["jaxal_round"] = pick.round
    task: dict[str, Any] = {"data": task_data}
    if pick.predicted is not None:
        task["predictions"] = [
            {
                "model_version": f"jaxal round {pick.round}",
                "score": None if pick.confidence is None else round(pick.confidence, 4),
                "result": [
                    {
                        "id": f"jaxal{pick.point}",
                        "from_name": FROM_NAME,
                        "to_name": name,
                        "type": "choices",
                        "value": {"choices": [data.classes[pick.predicted]]},
                    }
                ],
            }
        ]
    return task


# -- import ---------------------------------------------------------------------------------


class Imported(NamedTuple):
    """What :func:`import_labels` did.

    Attributes:
        format: the format read (``labelstudio-json``, ``labelstudio-json-min``, ``csv``,
            ``jsonl``).
        added: points that got their label.
        same: points that had the same label already.
        conflicts: points that have another label or a skip in the store (unchanged).
        unlabeled: tasks or rows with no label (cancelled, empty, blank).
    """

    format: str
    added: list[int]
    same: list[int]
    conflicts: list[int]
    unlabeled: int


class _Entry(NamedTuple):
    where: str  # "task 12", "line 4", ...
    point: Any  # jaxal_idx as found, or None
    image: str | None  # an image URL or file name, to match a folder pool's files
    choice: Any  # the label as found, or None when there is none
    annotator: str | None


def read_entries(path: str, from_name: str = FROM_NAME) -> tuple[str, list[_Entry]]:
    """(format, entries) of a label file (see the module docstring).

    Raises:
        ValueError: an unreadable file, or one in none of the formats.
    """
    extension = os.path.splitext(path)[1].lower()
    try:
        with open(path, encoding="utf-8-sig") as file:
            text = file.read()
    except OSError as error:
        raise ValueError(f"cannot read {path} ({error})") from None
    if extension == ".csv":
        return "csv", _csv_entries(text)
    if extension == ".jsonl":
        return "jsonl", _jsonl_entries(text, path)
    try:
        content = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path} is not JSON ({error})") from None
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list) or not all(isinstance(t, dict) for t in content):
        raise ValueError(f"{path}: expected a JSON list of Label Studio tasks or records")
    if any("annotations" in task for task in content):
        return "labelstudio-json", [_ls_task_entry(t, i, from_name) for i, t in enumerate(content)]
    if content and all("data" in task and "jaxal_idx" not in task for task in content):
        raise ValueError(
            f"{path} holds tasks without annotations: export the project from Label Studio "
            "(JSON or JSON_MIN) after labeling, and import that file"
        )
    return "labelstudio-json-min", _json_min_entries(content, from_name)


def _csv_entries(text: str) -> list[_Entry]:
    reader = csv.DictReader(text.splitlines())
    fields = reader.fieldnames or []
    if "label" not in fields or ("index" not in fields and "image" not in fields):
        raise ValueError("a CSV of labels needs the columns index (or image) and label")
    return [
        _Entry(
            f"line {n}",
            row.get("index") or None,
            row.get("image"),
            row["label"] or None,
            row.get("annotator") or None,
        )
        for n, row in enumerate(reader, start=2)
    ]


def _jsonl_entries(text: str, path: str) -> list[_Entry]:
    entries = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"{path} line {n} is not JSON") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {n} is not a JSON object")
        entries.append(
            _Entry(
                f"line {n}",
                record.get("index", record.get("jaxal_idx")),
                record.get("image"),
                record.get("label"),
                record.get("annotator"),
            )
        )
    return entries


def _when(item: dict[str, Any]) -> datetime:
    for key in ("updated_at", "created_at"):
        value = item.get(key)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (
                parsed
                if parsed.tzinfo
                else parsed.replace(tzinfo=datetime.now().astimezone().tzinfo)
            )
    return datetime.min.replace(tzinfo=datetime.now().astimezone().tzinfo)


def _choices(results: Any, from_name: str, where: str) -> Any:
    """The choices of the ``choices`` result named ``from_name`` (or of the only one)."""
    if not isinstance(results, list):
        return None
    found = [r for r in results if isinstance(r, dict) and r.get("type") == "choices"]
    named = [r for r in found if r.get("from_name") == from_name]
    if not named and len(found) == 1:
        named = found
    if not named:
        return None
    if len(named) > 1:
        raise ValueError(f"{where} has several {from_name!r} results")
    value = named[0].get("value")
    return value.get("choices") if isinstance(value, dict) else None


def _annotator(annotation: dict[str, Any]) -> str | None:
    user = annotation.get("completed_by")
    if isinstance(user, dict):
        user = user.get("email") or user.get("id")
    return None if user is None else f"labelstudio:{user}"


def _ls_task_entry(task: dict[str, Any], position: int, from_name: str) -> _Entry:
    where = f"task {task.get('id', f'#{position + 1}')}"
    data = task["data"] if isinstance(task.get("data"), dict) else {}
    annotations = [
        a
        for a in task.get("annotations") or []
        if isinstance(a, dict) and not a.get("was_cancelled") and a.get("result")
    ]
    chosen = None
    truth = [a for a in annotations if a.get("ground_truth")]
    if truth or annotations:
        chosen = max(truth or annotations, key=_when)
    choice = None if chosen is None else _choices(chosen.get("result"), from_name, where)
    return _Entry(
        where,
        data.get("jaxal_idx"),
        data.get("image") if isinstance(data.get("image"), str) else None,
        choice,
        None if chosen is None else _annotator(chosen),
    )


def _json_min_entries(records: list[dict[str, Any]], from_name: str) -> list[_Entry]:
    latest: dict[Any, dict[str, Any]] = {}
    order: list[Any] = []
    for n, record in enumerate(records):
        key = record.get("jaxal_idx", record.get("image", f"#{n}"))
        key = json.dumps(key)
        if key not in latest:
            order.append(key)
            latest[key] = record
        elif _when(record) > _when(latest[key]):
            latest[key] = record
    entries = []
    for key in order:
        record = latest[key]
        value = record.get(from_name)
        if isinstance(value, dict):
            value = value.get("choices")
        annotator = record.get("annotator")
        entries.append(
            _Entry(
                f"record of task {record.get('id', key)}",
                record.get("jaxal_idx"),
                record.get("image") if isinstance(record.get("image"), str) else None,
                value,
                None if annotator in (None, "") else f"labelstudio:{annotator}",
            )
        )
    return entries


def _class_index(value: Any, classes: Sequence[str]) -> int:
    """A class name or index -> the index.

    Raises:
        ValueError: several choices, or no class.
    """
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"has {len(value)} choices {value}; jaxal gives each point one class")
        value = value[0]
    if isinstance(value, str) and value in classes:
        return classes.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) < len(classes):
        return int(value)
    raise ValueError(f"has the label {value!r}, which is no class ({', '.join(classes)})")


def _file_key(value: str) -> str:
    """An image URL or path -> the file name it ends in (``?d=images/x.png`` -> x.png),
    without Label Studio's upload prefix (``1a2b3c4d-x.png`` -> x.png)."""
    parsed = urllib.parse.urlparse(value)
    query = urllib.parse.parse_qs(parsed.query).get("d")
    path = query[0] if query else parsed.path
    return os.path.basename(urllib.parse.unquote(path))


def _point(entry: _Entry, pool_size: int, files: dict[str, int] | None) -> int:
    """The pool index of an entry.

    Raises:
        ValueError: no index (and no matching image file), or one outside the pool.
    """
    value = entry.point
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if value is None and entry.image and files is not None:
        name = _file_key(entry.image)
        candidates = [name]
        head, _, rest = name.partition("-")
        if rest and len(head) == 8:
            candidates.append(rest)
        head, _, rest = name.partition("_")
        if rest and head.isdigit():
            candidates.append(rest)
            if int(head) < pool_size and files.get(rest) == int(head):
                return int(head)
        for candidate in candidates:
            if candidate in files:
                return files[candidate]
        raise ValueError(f"has the image {entry.image!r}, which is no file of the pool")
    if value is None:
        raise ValueError("names no point (data.jaxal_idx, as jaxal exports it)")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"names the point {value!r}, which is no integer")
    if not 0 <= value < pool_size:
        raise ValueError(f"names point {value}, outside the pool (0 to {pool_size - 1})")
    return value


def import_labels(
    store: Store,
    path: str,
    classes: Sequence[str],
    pool_size: int,
    files: Sequence[str] | None = None,
    annotator: str | None = None,
    from_name: str = FROM_NAME,
) -> Imported:
    """Read the labels in ``path`` and store them (see the module docstring).

    Args:
        store: the labeling store.
        path: a Label Studio JSON / JSON_MIN export, or a jaxal ``.csv`` / ``.jsonl``.
        classes: the project's class names.
        pool_size: N.
        files: a folder pool's image file names, to match tasks without ``jaxal_idx``.
        annotator: recorded with every label (default: the file's annotator, else
            ``import``).
        from_name: the ``Choices`` control's name in Label Studio.

    Raises:
        ValueError: an unreadable file, an unknown point or class, a task with several
            choices, a point with two different labels in the file; nothing is written.
    """
    fmt, entries = read_entries(path, from_name)
    by_name = None if files is None else {os.path.basename(f): i for i, f in enumerate(files)}
    problems: list[str] = []
    chosen: dict[int, tuple[int, str]] = {}
    unlabeled = 0
    for entry in entries:
        if entry.choice is None or entry.choice == []:
            unlabeled += 1
            continue
        try:
            point = _point(entry, pool_size, by_name)
            label = _class_index(entry.choice, classes)
        except ValueError as error:
            problems.append(f"{entry.where} {error}")
            continue
        if point in chosen and chosen[point][0] != label:
            problems.append(f"{entry.where} gives point {point} a second, different label")
            continue
        chosen[point] = (label, annotator or entry.annotator or "import")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"{path}: nothing imported: " + "; ".join(problems[:5]) + more)
    source = f"import:{os.path.basename(path)}"
    triples = [(point, label, who) for point, (label, who) in chosen.items()]
    report = store.import_labels(triples, source)
    return Imported(fmt, report["added"], report["same"], report["conflicts"], unlabeled)

"""The data a person labels: a pool with no labels, the class names, and a held-out
labeled split when there is one.

``--dataset`` names one of:

* ``digits``: scikit-learn's 8x8 digits, split by seed into a pool (its labels are not
  used: a person gives them) and a held-out split (25%, labeled) for the accuracy chart.
* an ``.npz`` file: the pool is ``x`` (or ``x_train``), [N, ...]; ``x_test`` and
  ``y_test``, when both are there, are the held-out split; ``classes`` (strings) names the
  classes and ``feature_names`` the columns of tabular data. Labels of the pool (``y``,
  ``y_train``) are not used.
* a folder of images (PNG, JPEG, BMP, GIF, WebP, TIFF; not its subfolders): each file is a
  point, resized to ``image_size`` x ``image_size`` RGB for the model; the page shows the
  file itself. ``heldout`` may name a folder with one subfolder of images per class name.

Class names come from ``classes`` (``"cat,dog"`` or a text file with one name a line),
else from the ``.npz``, else digits' 0 to 9. Letters: N pool points, M held-out points.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from typing import Any, NamedTuple

import numpy as np

from jaxal.data import load_digits, normalize, split, subsample
from jaxal.runner.prepare import choose_normalization

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DISPLAYS = ("auto", "image", "table")
DATASET_HELP = (
    "'digits', an .npz file with x (or x_train) and optionally x_test, y_test, classes, "
    "feature_names, or a folder of images"
)


class LabelingData(NamedTuple):
    """A pool to label.

    Attributes:
        name: the dataset as named on the command line.
        x: float32 [N, ...], the model's inputs (normalized).
        raw: the pool as read [N, ...], for pictures and table rows.
        files: the image file of each point (a folder of images), else None.
        x_test: float32 [M, ...], normalized like ``x``, or None without a held-out split.
        y_test: int32 [M] or None.
        classes: the class names, C of them.
        display: ``"image"`` or ``"table"``: how the page shows a point.
        feature_names: a name per column of tabular data [D], or None.
        normalization: how ``x`` was normalized (see :func:`jaxal.data.normalize`).
        fingerprint: a SHA-256 of the pool as read, so a store can tell its pool.
        notes: things the loader chose to say (an ignored array, ...).
    """

    name: str
    x: np.ndarray
    raw: np.ndarray
    files: list[str] | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: list[str]
    display: str
    feature_names: list[str] | None
    normalization: str
    fingerprint: str
    notes: list[str]

    @property
    def size(self) -> int:
        """N, the pool's points."""
        return len(self.x)


def parse_classes(spec: str | None) -> list[str] | None:
    """``"a,b,c"`` or the path of a text file with one class name a line -> the names."""
    if spec is None:
        return None
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as file:
            names = [line.strip() for line in file if line.strip()]
    else:
        names = [name.strip() for name in spec.split(",")]
    return names


def check_classes(names: list[str], where: str) -> list[str]:
    """At least two distinct, non-empty class names.

    Raises:
        ValueError: fewer than two, an empty name, or a repeated one.
    """
    if len(names) < 2:
        raise ValueError(f"{where}: give at least two class names, got {names}")
    if any(not name for name in names):
        raise ValueError(f"{where}: a class name is empty ({names})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{where}: class names repeat: {', '.join(repeated)}")
    return names


def load(
    dataset: str,
    *,
    classes: list[str] | None = None,
    heldout: str | None = None,
    image_size: int = 32,
    max_pool: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    display: str = "auto",
) -> LabelingData:
    """Read the pool of ``dataset`` (see the module docstring).

    Args:
        dataset: ``digits``, an ``.npz`` path or a folder of images.
        classes: class names (see :func:`parse_classes`); needed when the data has none.
        heldout: a folder of labeled images (one subfolder per class) for a folder pool.
        image_size: the side images of a folder are resized to for the model.
        max_pool: keep at most this many pool points (a random subset by ``seed``).
        max_test: keep at most this many held-out points.
        seed: the digits split and the subsets.
        display: ``auto``, ``image`` or ``table``.

    Raises:
        ValueError: an unknown or unreadable dataset, missing class names, held-out labels
            outside the classes, or a bad argument.
    """
    if display not in DISPLAYS:
        raise ValueError(f"--display must be one of {', '.join(DISPLAYS)}, got {display!r}")
    given = None if classes is None else list(classes)
    if heldout is not None and not os.path.isdir(dataset):
        raise ValueError(
            "--heldout is for a folder of images; an .npz holds its held-out split as "
            "x_test and y_test"
        )
    notes: list[str] = []
    files = None
    feature_names = None
    raw_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    rng = np.random.default_rng(seed)
    if dataset == "digits":
        digits = load_digits()
        raw, _, raw_test, y_test = split(digits.x_train, digits.y_train, 0.25, rng)
        names = [str(c) for c in range(10)]
    elif os.path.isdir(dataset):
        names = check_classes(given or [], "a folder of images needs --classes")
        files = image_files(dataset)
        raw = read_images(files, image_size)
        if heldout is not None:
            raw_test, y_test = read_heldout(heldout, names, image_size)
    elif dataset.endswith(".npz") or os.path.isfile(dataset):
        raw, raw_test, y_test, names, feature_names, notes = read_npz(dataset)
    else:
        raise ValueError(f"unknown dataset {dataset!r}: use {DATASET_HELP}")
    if given is not None:
        names = given
    if not names:
        count = "" if y_test is None else f" (the held-out labels go up to {int(y_test.max())})"
        raise ValueError(
            f"dataset {dataset!r} names no classes{count}: give them with --classes "
            "'cat,dog,...' or a text file with one name a line"
        )
    check_classes(names, "--classes")
    if y_test is not None and len(y_test) and int(y_test.max()) >= len(names):
        raise ValueError(
            f"the held-out labels of {dataset!r} go up to {int(y_test.max())}, but there are "
            f"{len(names)} class names"
        )
    if max_pool is not None:
        keep = subsample(np.arange(len(raw)), np.arange(len(raw)), max_pool, rng, "--max-pool")[0]
        raw = raw[keep]
        files = None if files is None else [files[i] for i in keep]
    if raw_test is not None and y_test is not None:
        raw_test, y_test = subsample(raw_test, y_test, max_test, rng, "--max-test")
    normalization, _ = choose_normalization(_as_raw(raw))
    x, x_test = normalize(raw, raw if raw_test is None else raw_test, normalization)
    if display == "auto":
        display = choose_display(raw)
    if feature_names is not None and (raw.ndim != 2 or len(feature_names) != raw.shape[1]):
        notes.append("feature_names does not match the columns of x: not used")
        feature_names = None
    return LabelingData(
        name=dataset,
        x=x,
        raw=raw,
        files=files,
        x_test=None if raw_test is None else x_test,
        y_test=None if y_test is None else np.asarray(y_test, np.int32),
        classes=names,
        display=display,
        feature_names=feature_names,
        normalization=normalization,
        fingerprint=fingerprint(raw),
        notes=notes,
    )


def _as_raw(x: np.ndarray) -> Any:
    from jaxal.data import Raw

    return Raw(x, np.zeros(len(x), np.int32), None, None)


def choose_display(raw: np.ndarray) -> str:
    """``image`` for images [N, H, W(, C)] and square vectors of pixel-like values
    (whole numbers in [0, 255], as digits' 8x8), else ``table``."""
    if raw.ndim >= 3:
        return "image"
    side = math.isqrt(raw.shape[1])
    if side * side == raw.shape[1] and side >= 4:
        how, _ = choose_normalization(_as_raw(raw))
        if how == "pixels":
            return "image"
    return "table"


def fingerprint(raw: np.ndarray) -> str:
    """A SHA-256 of the array's shape, dtype and bytes."""
    digest = hashlib.sha256(f"{raw.shape}{raw.dtype}".encode())
    digest.update(np.ascontiguousarray(raw).tobytes())
    return digest.hexdigest()


def read_npz(
    path: str,
) -> tuple[
    np.ndarray, np.ndarray | None, np.ndarray | None, list[str], list[str] | None, list[str]
]:
    """(pool, held-out inputs, held-out labels, class names, feature names, notes) of an
    ``.npz`` (see the module docstring).

    Raises:
        ValueError: a missing or unreadable file, no pool array, half a held-out split, or
            arrays of the wrong shape or type.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ValueError(f"--dataset {path}: the file does not exist") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"--dataset {path}: not a readable .npz file ({error})") from None
    pool_key = "x" if "x" in contents else "x_train" if "x_train" in contents else None
    if pool_key is None:
        raise ValueError(
            f"--dataset {path} holds {', '.join(sorted(contents)) or 'no arrays'}; the pool "
            "to label is the array x (or x_train)"
        )
    raw = np.asarray(contents[pool_key])
    if raw.ndim < 2 or len(raw) == 0 or not np.issubdtype(raw.dtype, np.number):
        raise ValueError(
            f"--dataset {path}: {pool_key} must be a numeric array [N, ...] with N >= 1, got "
            f"{raw.dtype} {raw.shape}"
        )
    if not np.all(np.isfinite(raw)):
        raise ValueError(f"--dataset {path}: {pool_key} holds NaN or infinity")
    notes = [
        f"{key} in {path} is not used: a person labels the pool"
        for key in ("y", "y_train")
        if key in contents
    ]
    has_test = [key for key in ("x_test", "y_test") if key in contents]
    if len(has_test) == 1:
        raise ValueError(
            f"--dataset {path} holds {has_test[0]} alone: the held-out split needs both "
            "x_test and y_test"
        )
    raw_test = y_test = None
    if has_test:
        raw_test, y_test = np.asarray(contents["x_test"]), np.asarray(contents["y_test"])
        if raw_test.shape[1:] != raw.shape[1:] or y_test.shape != (len(raw_test),):
            raise ValueError(
                f"--dataset {path}: x_test {raw_test.shape} and y_test {y_test.shape} must "
                f"be [M{', '.join([''] + [str(d) for d in raw.shape[1:]])}] and [M]"
            )
        if not np.issubdtype(y_test.dtype, np.integer) or (y_test.size and y_test.min() < 0):
            raise ValueError(f"--dataset {path}: y_test must hold class indices >= 0")
    names = _strings(contents.get("classes"), "classes", path) or []
    features = _strings(contents.get("feature_names"), "feature_names", path)
    return raw, raw_test, y_test, names, features, notes


def _strings(array: np.ndarray | None, what: str, path: str) -> list[str] | None:
    if array is None:
        return None
    array = np.asarray(array)
    if array.ndim != 1 or array.dtype.kind not in "US":
        raise ValueError(f"--dataset {path}: {what} must be a 1-D array of strings")
    return [str(a.decode() if isinstance(a, bytes) else a) for a in array.tolist()]


def image_files(folder: str) -> list[str]:
    """The image files directly in ``folder``, sorted by name, as absolute paths.

    Raises:
        ValueError: a folder without images.
    """
    names = sorted(
        name
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, name))
    )
    if not names:
        raise ValueError(f"--dataset {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.abspath(os.path.join(folder, name)) for name in names]


def read_images(files: list[str], size: int) -> np.ndarray:
    """uint8 [N, size, size, 3]: each file as RGB, resized.

    Raises:
        ValueError: Pillow missing, or a file it cannot read.
    """
    if not (isinstance(size, int) and size >= 4):
        raise ValueError(f"--image-size must be an integer >= 4, got {size!r}")
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("a folder of images needs Pillow: pip install 'jaxal[annotate]'") from None
    images = np.empty((len(files), size, size, 3), np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                images[i] = np.asarray(resized)
        except OSError as error:
            raise ValueError(f"cannot read the image {path} ({error})") from None
    return images


def read_heldout(folder: str, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """A held-out split from ``folder/<class name>/<images>``: (uint8 [M, size, size, 3],
    int32 [M]).

    Raises:
        ValueError: a subfolder that is no class name, or no image at all.
    """
    if not os.path.isdir(folder):
        raise ValueError(f"--heldout {folder} is not a folder")
    unknown = sorted(
        name
        for name in os.listdir(folder)
        if os.path.isdir(os.path.join(folder, name)) and name not in classes
    )
    if unknown:
        raise ValueError(
            f"--heldout {folder} has subfolders that are no class name: {', '.join(unknown)} "
            f"(classes: {', '.join(classes)})"
        )
    xs, ys = [], []
    for label, name in enumerate(classes):
        sub = os.path.join(folder, name)
        if os.path.isdir(sub):
            names = sorted(n for n in os.listdir(sub) if n.lower().endswith(IMAGE_EXTENSIONS))
            if names:
                xs.append(read_images([os.path.join(sub, n) for n in names], size))
                ys.append(np.full(len(names), label, np.int32))
    if not xs:
        raise ValueError(f"--heldout {folder} holds no images in subfolders named by class")
    return np.concatenate(xs), np.concatenate(ys)

"""Atomic files: a pytree plus named arrays plus JSON metadata in one ``.npz``.

Every write goes to a temporary file in the same directory, is flushed to disk, and then
replaces the target with ``os.replace``: a reader (or a resumed run) sees the old file or
the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import zipfile
from typing import Any

import jax
import numpy as np

META_KEY = "__meta__"
LEAF_PREFIX = "leaf_"
TEMPORARY_PREFIX = ".tmp-"


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    The temporary file sits next to ``path`` (so the rename stays on one file system) and
    is created with mode ``0o666`` less the process's umask, as ``open`` would create
    ``path`` itself. On any error, including an interrupt, the temporary file is removed
    and ``path`` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _sync_directory(directory)


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    """A new file ``directory/.tmp-<name>-<random>.part``, open for writing: (fd, path).

    ``os.open`` with mode ``0o666`` lets the umask decide the permissions (``tempfile``
    would make the file private, ``0o600``, and the rename would keep that).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = os.path.join(directory, f"{TEMPORARY_PREFIX}{name}-{secrets.token_hex(6)}.part")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _sync_directory(directory: str) -> None:
    """Flush ``directory``'s entries (the rename) to disk where the platform allows it."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def atomic_write_json(path: str, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(value, indent=1) + "\n").encode())


def save(path: str, tree: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Store a pytree's leaves, named arrays and JSON-able ``meta`` in one ``.npz``.

    Args:
        path: the target file.
        tree: a pytree of numeric arrays (params, optimizer state; not PRNG keys: store
            ``jax.random.key_data(key)`` in ``arrays``); its structure is not stored:
            :func:`load` takes a template with the same structure.
        arrays: extra arrays by name (names must not start with ``leaf_``).
        meta: anything ``json.dumps`` accepts.
    """
    contents = {f"{LEAF_PREFIX}{i:05d}": np.asarray(leaf) for i, leaf in enumerate(_leaves(tree))}
    for name, array in arrays.items():
        if name.startswith(LEAF_PREFIX) or name == META_KEY:
            raise ValueError(f"array name {name!r} is reserved")
        contents[name] = np.asarray(array)
    contents[META_KEY] = np.asarray(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **contents)  # type: ignore[arg-type]
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str, template: Any) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    """Read what :func:`save` wrote: (tree shaped like ``template``, arrays, meta).

    Args:
        template: a pytree (arrays or ``jax.ShapeDtypeStruct``) with the structure, leaf
            shapes and dtypes of the stored tree.

    Raises:
        ValueError: the file is unreadable, or its leaves do not match ``template``.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {name: archive[name] for name in archive.files}
        meta = json.loads(str(contents.pop(META_KEY)))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"checkpoint {path} is unreadable ({error})") from None
    leaf_names = sorted(name for name in contents if name.startswith(LEAF_PREFIX))
    expected, treedef = jax.tree.flatten(template)
    stored = [contents.pop(name) for name in leaf_names]
    if len(stored) != len(expected) or any(
        s.shape != e.shape or s.dtype != e.dtype for s, e in zip(stored, expected, strict=True)
    ):
        raise ValueError(
            f"checkpoint {path} does not match this run's model (parameter shapes differ)"
        )
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(a) for a in stored]), contents, meta


def read_meta(path: str) -> dict[str, Any]:
    """Only the JSON metadata of a file :func:`save` wrote.

    Raises:
        ValueError: the file is unreadable.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive[META_KEY]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"checkpoint {path} is unreadable ({error})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {path} is unreadable (metadata is not an object)")
    return meta


def _leaves(tree: Any) -> list[Any]:
    return jax.tree.leaves(tree)

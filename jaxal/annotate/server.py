"""``jaxal annotate``: open (or start) a labeling store, load its pool, start the worker
and serve the page with uvicorn until interrupted.

The server binds 127.0.0.1 unless told otherwise. Bound to any other address it makes a
random access token, prints it once inside the page's address, and refuses every request
without it. The address is printed as soon as the socket listens (``--port 0`` picks a
free port), before the first batch is picked: the page shows the worker's progress.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
import sys
from typing import Any

from jaxal.annotate import config as project_config
from jaxal.annotate.data import LabelingData, load
from jaxal.annotate.store import Store
from jaxal.annotate.worker import StatusHook, default_status

INSTALL_HINT = "jaxal annotate needs its web server: pip install 'jaxal[annotate]'"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_project(
    store_path: str, given: dict[str, Any]
) -> tuple[Store, project_config.AnnotateConfig, LabelingData]:
    """The store, its config and its pool; a new store takes ``given`` as its config.

    A new store's file is removed again if the config or the data do not load.

    Raises:
        ValueError: a config that disagrees with the store, a dataset that does not load
            or is not the store's pool.
    """
    existed = os.path.exists(store_path)
    try:
        store = Store(store_path)
        stored = store.get_meta(project_config.STORED_KEY)
        config = project_config.resolve(given, stored, store_path)
        data = load_data(config)
        known = store.get_meta("fingerprint")
        if known is not None and known != data.fingerprint:
            raise ValueError(
                f"--dataset {config.dataset} is not the pool the store {store_path} was "
                "started with (its contents differ)"
            )
    except BaseException:
        if not existed:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(store_path + suffix):
                    os.remove(store_path + suffix)
        raise
    return store, config, data


def load_data(config: project_config.AnnotateConfig) -> LabelingData:
    """The pool of ``config``."""
    return load(
        config.dataset,
        classes=config.classes,
        heldout=config.heldout,
        image_size=config.image_size,
        max_pool=config.max_pool,
        max_test=config.max_test,
        seed=config.seed,
        display=config.display,
    )


def save_project(store: Store, config: project_config.AnnotateConfig, data: LabelingData) -> None:
    """Record the config and what the pool is (size, classes, fingerprint, file names)."""
    store.set_meta(project_config.STORED_KEY, project_config.as_stored(config))
    store.set_meta("fingerprint", data.fingerprint)
    store.set_meta("pool_size", data.size)
    store.set_meta("classes", data.classes)
    if data.files is not None:
        store.set_meta("files", [os.path.basename(f) for f in data.files])


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port).

    Raises:
        ValueError: the address cannot be bound (in use, not this machine's).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ValueError(f"--host {host}: {error}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({error.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def address(host: str, port: int) -> str:
    """``http://host:port/`` (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    store_path: str,
    given: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    annotator: str | None = None,
    lease: float = 120.0,
    status: StatusHook = default_status,
) -> int:
    """Serve the labeling page of the store at ``store_path`` until interrupted.

    Args:
        store_path: the SQLite store (created when missing).
        given: the settings given on the command line (see
            :class:`jaxal.annotate.config.AnnotateConfig`); a new store needs ``dataset``.
        host: the address to bind; any but a loopback one requires the access token.
        port: the port (0: a free one).
        annotator: the name the page suggests (default: the login name).
        lease: seconds a tab's claim on a point lasts without a sign of the tab.
        status: the worker's status hook.

    Returns:
        0 once the server stops.

    Raises:
        ValueError: bad settings, data, store or address.
    """
    try:
        import uvicorn

        from jaxal.annotate.app import LOOPBACK_NAMES, Project, create_app, new_token
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    from jaxal.annotate.learner import Learner
    from jaxal.annotate.worker import Worker

    store, config, data = open_project(store_path, given)
    learner = Learner(config, data)
    stored = store.get_meta(project_config.STORED_KEY)
    if stored is None:
        save_project(store, config, data)
    elif stored != project_config.as_stored(config):  # the dataset moved
        store.set_meta(project_config.STORED_KEY, project_config.as_stored(config))
    for note in data.notes:
        print(f"jaxal annotate: {note}", file=sys.stderr)
    store.release_all()  # the tabs of an earlier run claim their points again
    worker = Worker(store, learner, rounds=config.rounds, status=status)
    name = annotator or _login_name()
    project = Project(config, data, store, worker, name, lease)
    local = is_loopback(host)
    token = None if local else new_token()
    app = create_app(project, token, hosts=tuple(dict.fromkeys((*LOOPBACK_NAMES, host))))
    sock = bind(host, port)
    url = address(host, sock.getsockname()[1])
    latest = store.latest_round()
    where = "a new store" if latest is None else f"round {latest.round}"
    print(
        f"jaxal annotate: {data.size} points, {len(data.classes)} classes, {where} in {store_path}",
        flush=True,
    )
    if token is None:
        print(f"jaxal annotate: serving {url}  (Ctrl+C stops; every label is saved)", flush=True)
    else:
        print(
            f"jaxal annotate: serving {url}?token={token}\n"
            "jaxal annotate: this address holds the access token, shown only now: every "
            "request needs it",
            flush=True,
        )
    worker.start()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    try:
        server.run(sockets=[sock])
    finally:
        worker.stop()
        sock.close()
    return 0


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "annotator"

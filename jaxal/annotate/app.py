"""The web application: the labeling page and its JSON API (Starlette).

Routes (every POST takes a JSON object, ``Content-Type: application/json``):

* ``GET /``: the page; ``GET /static/...``: its script and style sheet.
* ``GET /api/state?client=ID&point=INDEX``: the project, the open round and its
  progress, the worker's state, the status sentence and the accuracy per round; renews the
  tab's claim (on the point it shows, after a restart dropped the claims).
* ``POST /api/next {client}``: the point this tab should label next (claimed for it), or
  ``null`` and the reason.
* ``POST /api/label {client, round, index, label, annotator}``: store a label (``label``:
  the class index); answers with the next point.
* ``POST /api/skip {client, round, index, annotator}``: skip a point.
* ``POST /api/undo {client, round}``: undo the tab's last label or skip of the open round;
  answers with that point again.
* ``POST /api/release {client}``: drop the tab's claim (the tab closes).
* ``GET /api/image/{index}``: a picked point's picture (PNG drawn from the array, or the
  image file).

Input is checked before anything is written: an unknown point (404), a label out of
range, a malformed body (400), a stale round or a point held by another tab (409), each
answered with ``{"error": "..."}``. With an access token (a non-local ``--host``), every
request must carry it: ``?token=`` (the page's address; the answer sets a cookie),
the ``jaxal_token`` cookie, or an ``X-Jaxal-Token`` header; else 401. Without one, only
requests addressed to a loopback name are served (a page elsewhere cannot reach the server
by a name of its own). POSTs must be JSON, which a page on another site cannot send here
without the server's consent, and the server gives none.
"""

from __future__ import annotations

import dataclasses
import http.cookies
import json
import os
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jaxal.annotate.config import AnnotateConfig
from jaxal.annotate.data import LabelingData
from jaxal.annotate.records import Pick, Rejected, check_client
from jaxal.annotate.render import MEDIA_TYPES, Renderer
from jaxal.annotate.store import Store
from jaxal.annotate.worker import Worker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_COOKIE = "jaxal_token"
TOKEN_HEADER = "x-jaxal-token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


@dataclasses.dataclass
class Project:
    """What the application serves.

    Attributes:
        config: the project's settings.
        data: its pool.
        store: its store.
        worker: the background worker (woken when a round closes).
        annotator: the name the page suggests.
        lease: seconds a tab's claim on a point lasts without a sign of the tab.
    """

    config: AnnotateConfig
    data: LabelingData
    store: Store
    worker: Worker
    annotator: str
    lease: float = 120.0

    def __post_init__(self) -> None:
        self.renderer = Renderer(self.data)


def new_token() -> str:
    """A random access token (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def create_app(
    project: Project, token: str | None = None, hosts: tuple[str, ...] = LOOPBACK_NAMES
) -> ASGIApp:
    """The ASGI application for ``project``.

    Args:
        project: what to serve.
        token: the access token every request must carry, or None (loopback only).
        hosts: with no token, the host names requests may be addressed to.
    """
    api = _Api(project)
    static = resources.files("jaxal.annotate") / "static"
    routes = [
        Route("/", api.page, methods=["GET"]),
        Route("/api/state", api.state, methods=["GET"]),
        Route("/api/next", api.next_point, methods=["POST"]),
        Route("/api/label", api.label, methods=["POST"]),
        Route("/api/skip", api.skip, methods=["POST"]),
        Route("/api/undo", api.undo, methods=["POST"]),
        Route("/api/release", api.release, methods=["POST"]),
        Route("/api/image/{index}", api.image, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(static)), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={Rejected: _rejected})
    return _Guard(app, token, hosts)


async def _rejected(request: Request, error: Exception) -> Response:
    assert isinstance(error, Rejected)
    return JSONResponse({"error": error.message}, status_code=error.status)


class _Guard:
    """ASGI middleware: the access token or the loopback host check, and the security
    headers on every answer."""

    def __init__(self, app: ASGIApp, token: str | None, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        set_cookie = False
        if self.token is None:
            host = _host_name(headers.get("host", ""))
            if host not in self.hosts:
                await _deny(send, 403, f"this server answers requests to {self.hosts[0]} only")
                return
        else:
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            cookies = http.cookies.SimpleCookie(headers.get("cookie", ""))
            offered = [
                headers.get(TOKEN_HEADER),
                cookies[TOKEN_COOKIE].value if TOKEN_COOKIE in cookies else None,
                *query.get("token", []),
            ]
            if not any(t and secrets.compare_digest(t, self.token) for t in offered):
                await _deny(
                    send,
                    401,
                    "this server needs its access token: open the address it printed (…/?token=…)",
                )
                return
            set_cookie = bool(query.get("token"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if set_cookie and self.token is not None:
                    cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                    extra.append((b"set-cookie", cookie.encode("latin-1")))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _host_name(host: str) -> str:
    """The name of a Host header, without its port (``[::1]:8000`` -> ``::1``)."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _deny(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _body(request: Request, fields: set[str], required: set[str]) -> dict[str, Any]:
    """The request's JSON object, with only ``fields`` and all of ``required``.

    Raises:
        Rejected: not JSON (415), malformed, or with unknown or missing fields (400).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Rejected(415, "send JSON (Content-Type: application/json)")
    raw = await request.body()
    if len(raw) > 10_000:
        raise Rejected(400, "the request body is too large")
    try:
        body = json.loads(raw)
    except ValueError:
        raise Rejected(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Rejected(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - fields)
    if unknown:
        raise Rejected(400, f"unknown field{'s' * (len(unknown) > 1)}: {', '.join(unknown)}")
    missing = sorted(required - set(body))
    if missing:
        raise Rejected(400, f"missing field{'s' * (len(missing) > 1)}: {', '.join(missing)}")
    return body


class _Api:
    """The route handlers of one project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.store = project.store
        self.version = project.data.fingerprint[:12]

    async def page(self, request: Request) -> Response:
        page = resources.files("jaxal.annotate") / "static" / "index.html"
        return Response(
            page.read_text(encoding="utf-8"),
            media_type="text/html",
            headers={"cache-control": "no-store"},
        )

    def point(self, pick: Pick) -> dict[str, Any]:
        """A pick as the page shows it."""
        data = self.project.data
        described: dict[str, Any] = {"round": pick.round, "index": pick.point}
        described["position"] = pick.position
        if data.display == "image":
            described["image"] = f"/api/image/{pick.point}?v={self.version}"
        else:
            described["row"] = self.project.renderer.row(pick.point)
        return described

    def snapshot(self, client: str | None, shown: int | None = None) -> dict[str, Any]:
        """The state the page draws (see the module docstring); renews the claims of tab
        ``client`` on the point it shows."""
        project, store = self.project, self.store
        if client is not None:
            store.touch(client, shown)
        rounds = store.rounds()
        latest = rounds[-1] if rounds else None
        labeled, skipped = store.counts()
        current = None
        if latest is not None and not latest.final:
            current = {
                "index": latest.round,
                "size": latest.size,
                "resolved": latest.resolved,
                "strategy": latest.strategy,
                "open": latest.resolved < latest.size,
            }
        return {
            "title": os.path.basename(project.data.name.rstrip("/")) or project.data.name,
            "classes": project.data.classes,
            "display": project.data.display,
            "annotator": project.annotator,
            "pool_size": project.data.size,
            "budget": project.config.budget,
            "rounds": project.config.rounds,
            "labeled": labeled,
            "skipped": skipped,
            "round": current,
            "done": bool(latest is not None and latest.final),
            "status": "" if latest is None else latest.status,
            "worker": {"busy": project.worker.busy, "error": project.worker.error},
            "heldout": project.data.y_test is not None,
            "chart": [
                {"round": r.round, "labeled": r.labeled, "accuracy": r.accuracy}
                for r in rounds
                if r.accuracy is not None
            ],
        }

    async def state(self, request: Request) -> Response:
        client = request.query_params.get("client")
        if client is not None:
            check_client(client)
        shown = request.query_params.get("point")
        if shown is not None and not shown.isdigit():
            raise Rejected(400, "point must be a point index")
        index = None if shown is None else int(shown)
        return JSONResponse(await run_in_threadpool(self.snapshot, client, index))

    def _next(self, client: str) -> dict[str, Any]:
        claimed = self.store.claim(client, self.project.lease)
        return {
            "point": None if claimed.pick is None else self.point(claimed.pick),
            "reason": claimed.reason,
        }

    async def next_point(self, request: Request) -> Response:
        body = await _body(request, {"client"}, {"client"})
        return JSONResponse(await run_in_threadpool(self._next, body["client"]))

    async def _submit(self, request: Request, skip: bool) -> Response:
        fields = {"client", "round", "index", "annotator"} | (set() if skip else {"label"})
        body = await _body(request, fields, fields)
        project = self.project

        def write() -> dict[str, Any]:
            saved = self.store.submit(
                body["client"],
                body["round"],
                body["index"],
                None if skip else body["label"],
                body["annotator"],
                num_classes=len(project.data.classes),
                pool_size=project.data.size,
                lease=project.lease,
            )
            if self.store.needs_round():
                project.worker.wake()
            kept: dict[str, Any] = {"index": saved.point, "label": saved.label}
            kept.update(round=saved.round, annotator=saved.annotator, created_at=saved.created_at)
            return {"saved": kept, **self._next(body["client"])}

        return JSONResponse(await run_in_threadpool(write))

    async def label(self, request: Request) -> Response:
        return await self._submit(request, skip=False)

    async def skip(self, request: Request) -> Response:
        return await self._submit(request, skip=True)

    async def undo(self, request: Request) -> Response:
        body = await _body(request, {"client", "round"}, {"client", "round"})
        pick = await run_in_threadpool(self.store.undo, body["client"], body["round"])
        return JSONResponse({"point": self.point(pick), "reason": ""})

    async def release(self, request: Request) -> Response:
        body = await _body(request, {"client"}, {"client"})
        await run_in_threadpool(self.store.release, body["client"])
        return JSONResponse({"released": True})

    async def image(self, request: Request) -> Response:
        data, renderer = self.project.data, self.project.renderer
        try:
            index = int(request.path_params["index"])
        except ValueError:
            raise Rejected(400, "the point index must be an integer") from None
        if not 0 <= index < data.size:
            raise Rejected(404, f"unknown point {index}: the pool has points 0 to {data.size - 1}")
        if data.display != "image":
            raise Rejected(404, "this pool is tabular: its points have no picture")
        headers = {"cache-control": "private, max-age=86400"}
        path = renderer.file(index)
        if path is not None:
            media_type = MEDIA_TYPES.get(os.path.splitext(path)[1].lower(), "image/png")
            return FileResponse(path, media_type=media_type, headers=headers)
        png = await run_in_threadpool(renderer.png, index)
        return Response(png, media_type="image/png", headers=headers)

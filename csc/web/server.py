"""`obsq web`: the operator's page — a Starlette application served by uvicorn, bound to 127.0.0.1 by default.

Routes (JSON unless said):
- `/` the page, `/static/…` its script and style (no build step);
- `/api/stream` server-sent events, one `snapshot` (ConsoleState.snapshot) per change, at least once a second;
- `/api/me`, `/api/login`, `/api/logout`: the session (an HttpOnly, SameSite=Strict cookie);
- `/api/forms`: every block and script with its configuration's JSON Schema, from which the page makes its forms;
- `/api/queue/add-block`, `/api/queue/add`: validated here with the CLI's code (`obsq.csc.app.queue`), then sent;
- `/api/command`: any command of any component, as the session's user, answered with its acks;
- `/api/events/NAME:INDEX`: a component's recent events;
- `/api/images/N.png`, `/api/masters`, `/api/masters/ID.png`, `/api/ptc.png`, `/report`: what the data folder holds.

Every request that changes something must be JSON (`Content-Type: application/json`), which a
form on another site cannot send, and carry the session cookie, which another site's page never has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from obsq.csc.app.connection import Connection
from obsq.csc.app.queue import add_block_request, add_script_request, parse_values, strategy_names
from obsq.csc.bus.brokers import port_open
from obsq.csc.core.errors import ObsqError, TopicError, UsageError, ValidationError
from obsq.csc.core.topics import ComponentId
from obsq.csc.core.yamltext import load_yaml
from obsq.csc.web.console import MIN_INTERVAL_S, CommandRefusedError, Console, LoginError, Session, reading_bus
from obsq.csc.web.library import DataFolder, NotFoundError
from obsq.csc.web.limits import LoginLimiter, retry_after_header

COOKIE = "obsq_session"
#: A raw image's number and a product's id name one file for the server's life: their previews are kept by the browser.
CACHED = {"Cache-Control": "private, max-age=3600"}
#: The largest request body read (bytes): a script's YAML configuration fits many times over.
MAX_BODY_BYTES = 256 * 1024
#: Logins being checked with the broker at once, at most (each may wait for the broker).
MAX_LOGINS_AT_ONCE = 4
#: The largest id in a path (image number, product id): a 64-bit database key.
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class WebOptions:
    """`obsq web`: where to listen, which bus, which data folder."""

    connection: Connection
    host: str
    port: int
    data: Path
    database: str | None = None
    queue: int = 2


class RequestError(ObsqError):
    """A request the console refuses; `status` is its HTTP status (with Retry-After, if given, for a 429)."""

    def __init__(self, message: str, status: int = 422, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@lru_cache(maxsize=1)
def _page() -> str:
    return resources.files("obsq.csc.web").joinpath("static/index.html").read_text()


class ConsoleApp:
    """The routes' handlers over `console` (whose reading bus the lifespan runs) and the data folder."""

    def __init__(self, console: Console, data: DataFolder, *, queue: int = 2) -> None:
        self.console = console
        self.data = data
        self.queue_id = ComponentId("ScriptQueue", queue)
        self.logins = LoginLimiter()
        self._logging_in = 0

    def session_of(self, request: Request) -> Session | None:
        return self.console.sessions.get(request.cookies.get(COOKIE, ""))

    async def send(self, request: Request, component: str, command: str, data: dict[str, Any]) -> Response:
        acks = await self.console.command(self.session_of(request), component, command, data)
        final = acks[-1]["ack"] if acks else "NOACK"
        return JSONResponse({"component": component, "command": command, "acks": acks, "ok": final == "COMPLETE"})

    async def index(self, request: Request) -> Response:
        return HTMLResponse(_page())

    async def stream(self, request: Request) -> Response:
        console = self.console

        async def events() -> AsyncIterator[str]:
            last_sent = -MIN_INTERVAL_S
            while not console.stopping() and not await request.is_disconnected():
                wait = MIN_INTERVAL_S - (console.clock.monotonic() - last_sent)
                if wait > 0:
                    await console.clock.sleep(wait)
                last_sent = console.clock.monotonic()
                snapshot = console.state.snapshot(console.clock.tai())
                yield f"event: snapshot\ndata: {json.dumps(snapshot, separators=(',', ':'))}\n\n"
                await console.wait_change(1.0)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def me(self, request: Request) -> Response:
        session = self.session_of(request)
        url = self.console.url
        return JSONResponse({
            "user": session.user if session else None, "role": session.role if session else "observer",
            "identity": session.identity if session else None, "broker": f"{url.host}:{url.port}",
            "root": self.console.root, "queue": str(self.queue_id), "data": str(self.data.root),
        })  # fmt: skip

    async def login(self, request: Request) -> Response:
        value = await _body(request)
        user, password = _text(value, "user", limit=64), _text(value, "password", default="", limit=1024)
        address = request.client.host if request.client else "unknown"
        wait = self.logins.retry_after(address, user.strip(), self.console.clock.monotonic())
        if wait > 0:
            raise RequestError(f"too many failed logins from {address} or for user {user.strip()!r}: "
                               f"try again in {retry_after_header(wait)} s", 429, retry_after=wait)  # fmt: skip
        if self._logging_in >= MAX_LOGINS_AT_ONCE:
            raise RequestError(f"{MAX_LOGINS_AT_ONCE} logins are being checked already: try again", 429, retry_after=1)
        self._logging_in += 1
        try:
            token = await self.console.login(user, password)
        except LoginError:
            self.logins.failed(address, user.strip(), self.console.clock.monotonic())
            raise
        finally:
            self._logging_in -= 1
        session = self.console.sessions[token]
        response = JSONResponse({"user": session.user, "role": session.role})
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        await self.console.logout(request.cookies.get(COOKIE, ""))
        response = JSONResponse({"user": None})
        response.delete_cookie(COOKIE, path="/")
        return response

    async def forms(self, request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(self.data.forms))

    async def add_block(self, request: Request) -> Response:
        """Validated with `obsq queue add-block`'s code; nothing is sent unless it passes."""
        value = await _body(request)
        block = _text(value, "block", limit=256)
        strategy = strategy_names().get(_text(value, "failureStrategy", default="none"))
        if strategy is None:
            raise RequestError(f"field 'failureStrategy': one of {', '.join(strategy_names())}")
        override = parse_values(_fields(value), f"block {block} field")
        fields = await asyncio.to_thread(add_block_request, block, override, strategy, known_here=True)
        return await self.send(request, str(self.queue_id), "addBlock", fields)

    async def add_script(self, request: Request) -> Response:
        """Validated with `obsq queue add`'s code; nothing is sent unless it passes."""
        value = await _body(request)
        path = _text(value, "path", limit=256)
        standard = value.get("standard", True)
        if not isinstance(standard, bool):
            raise RequestError("field 'standard': true or false")
        raw = _text(value, "yaml", default="")
        config = load_yaml(raw, f"script {path}: configuration") if raw.strip() else {}
        if not isinstance(config, dict):
            raise ValidationError(f"script {path}: configuration must be a mapping")
        config |= parse_values(_fields(value), f"script {path} field")
        location = _text(value, "location", default="last")
        fields = await asyncio.to_thread(add_script_request, path, standard, _dump(config), location)
        return await self.send(request, str(self.queue_id), "add", fields)

    async def command(self, request: Request) -> Response:
        value = await _body(request)
        data = value.get("data", {})
        if not isinstance(data, dict):
            raise RequestError("field 'data': an object is required")
        return await self.send(request, _text(value, "component", limit=128), _text(value, "command", limit=128), data)

    async def events(self, request: Request) -> Response:
        try:
            cid = ComponentId.parse(request.path_params["component"])
        except TopicError as exc:
            raise RequestError(str(exc), 404) from None
        return JSONResponse({"component": str(cid), "events": self.console.state.recent_events(cid)})

    async def image(self, request: Request) -> Response:
        number = int(request.path_params["number"])
        seen = self.console.state.image(number) if number <= MAX_ID else None
        if seen is None:
            raise RequestError("no such image (the page keeps the latest ones)", 404)
        png = await asyncio.to_thread(self.data.raw_preview, Path(seen.path))
        return Response(png, media_type="image/png", headers=CACHED)

    async def masters(self, request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(self.data.masters))

    async def master_preview(self, request: Request) -> Response:
        product = int(request.path_params["product"])
        if product > MAX_ID:
            raise RequestError(f"no product {product} (rule: a product id is at most {MAX_ID})", 404)
        png = await asyncio.to_thread(self.data.master_preview, product)
        return Response(png, media_type="image/png", headers=CACHED)

    async def ptc(self, request: Request) -> Response:
        plot = await asyncio.to_thread(self.data.ptc_plot)
        if plot is None:
            raise RequestError("no PTC in the repository yet", 404)
        return FileResponse(plot, media_type="image/png")

    async def report(self, request: Request) -> Response:
        page = await asyncio.to_thread(self.data.latest_report)
        if page is None:
            raise RequestError(f"no weekly report under {self.data.root} yet", 404)
        return FileResponse(page, media_type="text/html")

    def routes(self) -> list[Route | Mount]:
        static = str(resources.files("obsq.csc.web").joinpath("static"))
        return [
            Route("/", self.index),
            Route("/api/stream", self.stream),
            Route("/api/me", self.me),
            Route("/api/login", self.login, methods=["POST"]),
            Route("/api/logout", self.logout, methods=["POST"]),
            Route("/api/forms", self.forms),
            Route("/api/queue/add-block", self.add_block, methods=["POST"]),
            Route("/api/queue/add", self.add_script, methods=["POST"]),
            Route("/api/command", self.command, methods=["POST"]),
            Route("/api/events/{component}", self.events),
            Route("/api/images/{number:int}.png", self.image),
            Route("/api/masters", self.masters),
            Route("/api/masters/{product:int}.png", self.master_preview),
            Route("/api/ptc.png", self.ptc),
            Route("/report", self.report),
            Mount("/static", StaticFiles(directory=static), name="static"),
        ]


async def _refused(request: Request, exc: Exception) -> Response:
    """A refusal as JSON `{"error": message}`: the message names the thing, the field and the rule."""
    status = 422
    if isinstance(exc, RequestError):
        status = exc.status
    elif isinstance(exc, CommandRefusedError):
        status = 403
    elif isinstance(exc, LoginError):
        status = 401
    elif isinstance(exc, NotFoundError):
        status = 404
    headers = {}
    if isinstance(exc, RequestError) and exc.retry_after is not None:
        headers["Retry-After"] = retry_after_header(exc.retry_after)
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read no further than MAX_BODY_BYTES (a longer body is refused as it comes)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise RequestError("send JSON (Content-Type: application/json)", 415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(f"request body over {MAX_BODY_BYTES} bytes: {declared} announced (rule: body size)", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(f"request body over {MAX_BODY_BYTES} bytes (rule: body size)", 413)
        chunks.append(chunk)
    try:
        value = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not JSON: {str(exc)[:200]}", 400) from None
    except RecursionError:
        raise RequestError("request body is not JSON this server reads: nested too deeply (rule: depth)", 400) from None
    if not isinstance(value, dict):
        raise RequestError("request body must be a JSON object", 400)
    return value


def _text(value: dict[str, Any], key: str, *, default: str | None = None, limit: int = 65536) -> str:
    got = value.get(key, default)
    if not isinstance(got, str):
        raise RequestError(f"field {key!r}: a string is required")
    if len(got) > limit:
        raise RequestError(f"field {key!r}: longer than {limit} characters")
    return got


def _fields(value: dict[str, Any]) -> list[tuple[str, str]]:
    given = value.get("fields", {})
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise RequestError("field 'fields': an object of text values is required")
    return [(str(k), v) for k, v in given.items() if v.strip()]


def build_app(console: Console, data: DataFolder, *, queue: int = 2) -> Starlette:
    """The application over `console`, whose reading bus the caller runs; its lifespan closes the sessions."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await console.close()

    handlers: dict[Any, Any] = {ObsqError: _refused}
    return Starlette(routes=ConsoleApp(console, data, queue=queue).routes(), exception_handlers=handlers,
                     lifespan=lifespan)  # fmt: skip


def _dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False) if config else ""


async def run_web(options: WebOptions) -> int:
    """Serve the console until Ctrl-C."""
    import uvicorn

    root = options.connection.checked_root()
    url = options.connection.url()
    if port_open(options.host, options.port):
        raise UsageError(f"--port {options.port}: something listens on {options.host}:{options.port} already")
    console = Console(options.connection, url, root)
    app = build_app(console, DataFolder(options.data, options.database), queue=options.queue)
    config = uvicorn.Config(
        app, host=options.host, port=options.port, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
    )  # open pages (their streams) do not hold up Ctrl-C
    server = uvicorn.Server(config)
    console.stopping = lambda: server.should_exit  # open pages' streams end at Ctrl-C
    async with reading_bus(console):  # an unreachable broker is named here, before anything listens
        print(f"obsq web: http://{options.host}:{options.port}/ — the bus at {url} (root {root}), data {options.data}",
              flush=True)  # fmt: skip
        await server.serve()
    if not server.started:
        raise UsageError(f"--port {options.port}: obsq web could not listen on {options.host}:{options.port}")
    return 0

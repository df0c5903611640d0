# pyright: reportMissingTypeStubs=false
"""``open_client`` against real frameworks, each on every backend it runs on,
on fake time: an endless event stream whose handler hears the client go, a
download streamed chunk by chunk, an upload read chunk by chunk, websocket
sessions (echo, a handler that raises, a refused handshake), and a handler
that raises, with ``raise_app_exceptions`` on and off.

What each framework makes of a handler's exception or of a refusal is its
own: each expectation below says which framework does what, and why.
"""

# No `from __future__ import annotations`: FastAPI and Litestar read the
# handlers' annotations at run time.
import asyncio
import importlib.metadata
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import httpx
import httpx_ws
import pytest
import trio
from blacksheep import (
    Application,
    Request as BlackSheepRequest,
    Response as BlackSheepResponse,
    StreamedContent,
    WebSocket as BlackSheepWebSocket,
    text as blacksheep_text,
)
from blacksheep.server.routing import Router
from blacksheep.server.sse import ServerSentEventsResponse, TextServerSentEvent
from blacksheep.server.websocket import WebSocketDisconnectError
from django.http import (
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.test import override_settings
from django.urls import path as django_path
from fastapi import (
    FastAPI,
    Request as FastAPIRequest,
    WebSocket as FastAPIWebSocket,
    WebSocketException as FastAPIWebSocketException,
)
from fastapi.responses import (
    PlainTextResponse as FastAPIText,
    StreamingResponse as FastAPIStreaming,
)
from litestar import (
    Litestar,
    Request as LitestarRequest,
    WebSocket as LitestarWebSocket,
    get,
    post,
    websocket as litestar_websocket,
)
from litestar.exceptions import WebSocketException as LitestarWebSocketException
from litestar.response import ServerSentEvent as LitestarSSE, Stream
from litestar.types import Scope as LitestarScope
from quart import Quart, make_response, request as quart_request, websocket
from quart.signals import got_request_exception, got_websocket_exception
from quart_trio import QuartTrio
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import trio_lifespan
from trio_lifespan import LifespanClient, WebSocketDenied, WebSocketDisconnect

from . import frameworks
from .apps import Boom
from .backends import BACKENDS, Backend, closed_under_a_reader
from .typed import approx, closing

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

# httpx's own iterators (aiter_lines over aiter_text over aiter_bytes...)
# leave the inner ones to the garbage collector when a test stops reading
# early, and trio warns of each: httpx's, not the transport's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx\\.:ResourceWarning"
)

#: What the download route sends, a chunk a second.
CHUNKS = [f"chunk {number:02d}\n".encode() for number in range(20)]
#: What the upload test sends, a part a second.
PARTS = [b"part one;", b"part two;", b"part three."]
#: The subprotocols the echo test offers: the app takes the first.
OFFERED = ["chat.v2", "chat.v1"]


@dataclass
class Site:
    """A framework's app with the routes every test uses, and what its
    handlers saw.

    Routes: ``GET /events`` (an endless event stream, ``data: 0`` then one a
    second), ``GET /download`` (:data:`CHUNKS`, one a second), ``POST
    /upload`` (reads the body chunk by chunk), ``GET /boom`` (raises
    :attr:`error`), websocket ``/ws`` (echoes ``echo: ...``; ``boom`` makes it
    raise :attr:`ws_error`), websocket ``/ws/refused`` (refuses the handshake
    the framework's way).
    """

    now: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    app: Any = None
    #: Whether the app has no lifespan (Django): opened with allow_unsupported.
    no_lifespan: bool = False
    #: What to hold while the client runs (Django's settings).
    during: AbstractContextManager[Any] = field(default_factory=nullcontext)
    #: More of open_client's options.
    options: dict[str, Any] = field(default_factory=dict[str, Any])
    #: When the event stream's handler stopped: it heard the client go.
    stopped: list[float] = field(default_factory=list[float])
    #: What the upload's handler read, and when.
    uploads: list[tuple[float, bytes]] = field(
        default_factory=list[tuple[float, bytes]]
    )
    #: What the websocket handler heard when the client went.
    heard: list[object] = field(default_factory=list[object])
    #: What became of background work (Starlette's ``GET /later``).
    background: list[str] = field(default_factory=list[str])
    #: The exceptions the framework's own hooks were told of.
    reported: list[BaseException] = field(default_factory=list[BaseException])
    error: Boom = field(default_factory=lambda: Boom("the handler failed"))
    ws_error: Boom = field(default_factory=lambda: Boom("the websocket handler failed"))

    async def ticks(self, render: Callable[[int], Any]) -> AsyncIterator[Any]:
        """The event stream: one event a second, for ever; when it stops (the
        framework cancels it, having heard the client go) is recorded."""
        number = 0
        try:
            while True:
                yield render(number)
                number += 1
                await self.sleep(1)
        finally:
            self.stopped.append(self.now())

    async def chunks(self) -> AsyncIterator[bytes]:
        """The download: :data:`CHUNKS`, one a second."""
        for number, chunk in enumerate(CHUNKS):
            if number:
                await self.sleep(1)
            yield chunk

    def read(self, chunk: bytes) -> None:
        """An upload's chunk, as the handler reads it."""
        if chunk:  # (some frameworks end the stream with b"")
            self.uploads.append((self.now(), chunk))

    def reply(self, data: str | bytes) -> str | bytes:
        """The echo's answer; ``boom`` makes the handler raise."""
        if data == "boom":
            raise self.ws_error
        if isinstance(data, str):
            return f"echo: {data}"
        return b"echo: " + data

    def report(self, exception: BaseException) -> None:
        self.reported.append(exception)


def sse_line(number: int) -> str:
    return f"data: {number}\n\n"


def first(offered: list[str]) -> str | None:
    """The subprotocol to accept: the first offered."""
    return offered[0] if offered else None


def first_in(scope: Any) -> str | None:
    """The first subprotocol a websocket scope offers (typed differently by
    each framework, or not at all)."""
    offered: list[str] = scope["subprotocols"]
    return first(offered)


# The frameworks ------------------------------------------------------------------


def starlette_site(backend: Backend, propagate: bool = True) -> Site:
    site = Site(backend.now, anyio.sleep)

    async def events(request: Request) -> Response:
        return EventSourceResponse(site.ticks(str))

    async def download(request: Request) -> Response:
        return StreamingResponse(site.chunks(), media_type="text/plain")

    async def upload(request: Request) -> Response:
        async for chunk in request.stream():
            site.read(chunk)
        return PlainTextResponse(f"read {len(site.uploads)} chunks")

    async def boom(request: Request) -> Response:
        raise site.error

    async def work() -> None:  # (an email to send, slowly)
        try:
            await anyio.sleep(100)
        except anyio.get_cancelled_exc_class():
            site.background.append("cancelled")
            raise

    async def later(request: Request) -> Response:
        return PlainTextResponse("accepted", background=BackgroundTask(work))

    async def echo(socket: WebSocket) -> None:
        await socket.accept(subprotocol=first_in(socket.scope))
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                site.heard.append(message["code"])
                return
            answer = site.reply(message.get("text") or message["bytes"])
            if isinstance(answer, str):
                await socket.send_text(answer)
            else:
                await socket.send_bytes(answer)

    async def refused(socket: WebSocket) -> None:
        # Starlette's way to refuse with an HTTP response (ASGI's websocket
        # denial response extension).
        await socket.send_denial_response(
            PlainTextResponse("no entry", status_code=403)
        )

    async def closed(socket: WebSocket) -> None:
        await socket.close(code=1008, reason="policy")

    site.app = Starlette(
        routes=[
            Route("/events", events),
            Route("/download", download),
            Route("/upload", upload, methods=["POST"]),
            Route("/boom", boom),
            Route("/later", later),
            WebSocketRoute("/ws", echo),
            WebSocketRoute("/ws/refused", refused),
            WebSocketRoute("/ws/closed", closed),
        ]
    )
    return site


def fastapi_site(backend: Backend, propagate: bool = True) -> Site:
    site = Site(backend.now, anyio.sleep)
    app = FastAPI()

    @app.get("/events")
    async def events() -> EventSourceResponse:  # pyright: ignore[reportUnusedFunction]
        return EventSourceResponse(site.ticks(str))

    @app.get("/download")
    async def download() -> FastAPIStreaming:  # pyright: ignore[reportUnusedFunction]
        return FastAPIStreaming(site.chunks(), media_type="text/plain")

    @app.post("/upload")
    async def upload(request: FastAPIRequest) -> FastAPIText:  # pyright: ignore[reportUnusedFunction]
        async for chunk in request.stream():
            site.read(chunk)
        return FastAPIText(f"read {len(site.uploads)} chunks")

    @app.get("/boom")
    async def boom() -> FastAPIText:  # pyright: ignore[reportUnusedFunction]
        raise site.error

    @app.websocket("/ws")
    async def echo(socket: FastAPIWebSocket) -> None:  # pyright: ignore[reportUnusedFunction]
        await socket.accept(subprotocol=first_in(socket.scope))
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                site.heard.append(message["code"])
                return
            answer = site.reply(message.get("text") or message["bytes"])
            if isinstance(answer, str):
                await socket.send_text(answer)
            else:
                await socket.send_bytes(answer)

    @app.websocket("/ws/refused")
    async def refused(socket: FastAPIWebSocket) -> None:  # pyright: ignore[reportUnusedFunction]
        # FastAPI's documented way: raise WebSocketException before accepting.
        raise FastAPIWebSocketException(code=1008, reason="no entry")

    site.app = app
    return site


def litestar_site(backend: Backend, propagate: bool = True) -> Site:
    site = Site(backend.now, anyio.sleep)

    @get("/events")
    async def events() -> Stream:
        if backend.name == "trio":
            # Litestar's ServerSentEvent takes its first step in a worker
            # thread (sync_to_thread), and trio's MockClock jumps to the next
            # deadline while a thread runs: its own Stream, on fake time.
            return Stream(site.ticks(sse_line), media_type="text/event-stream")
        return LitestarSSE(site.ticks(str))

    @get("/download")
    async def download() -> Stream:
        return Stream(site.chunks(), media_type="text/plain")

    @post("/upload", status_code=200)
    async def upload(request: LitestarRequest[Any, Any, Any]) -> str:
        async for chunk in request.stream():
            site.read(chunk)
        return f"read {len(site.uploads)} chunks"

    @get("/boom")
    async def boom() -> str:
        raise site.error

    @litestar_websocket("/ws")
    async def echo(socket: LitestarWebSocket[Any, Any, Any]) -> None:
        await socket.accept(subprotocols=first_in(socket.scope))
        while True:
            message: Any = await socket.receive()
            if message["type"] == "websocket.disconnect":
                site.heard.append(message["code"])
                return
            answer = site.reply(message.get("text") or message["bytes"])
            if isinstance(answer, str):
                await socket.send_text(answer)
            else:
                await socket.send_bytes(answer)

    @litestar_websocket("/ws/refused")
    async def refused(socket: LitestarWebSocket[Any, Any, Any]) -> None:
        # Litestar's documented way: a WebSocketException closes with its code.
        raise LitestarWebSocketException(detail="no entry", code=4403)

    async def after_exception(exception: Exception, scope: LitestarScope) -> None:
        site.report(exception)

    site.app = Litestar(
        route_handlers=[events, download, upload, boom, echo, refused],
        after_exception=[after_exception],
    )
    return site


#: Quart propagates a handler's exception under PROPAGATE_EXCEPTIONS from
#: 0.21 (Python 3.10 gets 0.20, which answers 500 whatever it says).
QUART_PROPAGATES = tuple(
    int(part) for part in importlib.metadata.version("quart").split(".")[:2]
) >= (0, 21)


def _needs_quart_that_propagates(framework: str) -> None:
    if framework.startswith("quart") and not QUART_PROPAGATES:
        pytest.skip("Quart before 0.21 turns a handler's exception into a 500")


def _quart_site(app: Quart, site: Site, propagate: bool) -> Site:
    # Quart's documented switch (it is on under app.testing or app.debug):
    # the handler's exception leaves the app rather than becoming a 500.
    app.config["PROPAGATE_EXCEPTIONS"] = propagate

    @app.route("/events")
    async def events() -> Any:
        response: Any = await make_response(
            site.ticks(sse_line), 200, {"Content-Type": "text/event-stream"}
        )
        response.timeout = None  # Quart's advice for endless streams
        return response

    @app.route("/download")
    async def download() -> Any:
        return site.chunks(), 200, {"Content-Type": "text/plain"}

    @app.route("/upload", methods=["POST"])
    async def upload() -> str:
        async for chunk in quart_request.body:
            site.read(chunk)
        return f"read {len(site.uploads)} chunks"

    @app.route("/boom")
    async def boom() -> str:
        raise site.error

    @app.websocket("/ws")
    async def echo() -> None:
        offered = websocket.requested_subprotocols
        await websocket.accept(subprotocol=first(offered))  # pyright: ignore[reportUnknownMemberType]
        try:
            while True:
                await websocket.send(site.reply(await websocket.receive()))
        except BaseException as exc:
            # Quart cancels the handler once its receiver hears the client go.
            site.heard.append(type(exc).__name__)
            raise

    @app.websocket("/ws/refused")
    async def refused() -> Any:
        # Quart's documented way: a response returned before accepting is
        # sent as the handshake's response.
        return "no entry", 403

    async def on_request_exception(sender: object, exception: BaseException) -> None:
        # (async: Quart runs a sync receiver in a worker thread)
        site.report(exception)

    got_request_exception.connect(on_request_exception, app, weak=False)
    got_websocket_exception.connect(on_request_exception, app, weak=False)
    site.app = app
    return site


def quart_site(backend: Backend, propagate: bool = True) -> Site:
    return _quart_site(Quart(__name__), Site(backend.now, asyncio.sleep), propagate)


def quart_trio_site(backend: Backend, propagate: bool = True) -> Site:
    return _quart_site(QuartTrio(__name__), Site(backend.now, trio.sleep), propagate)


def blacksheep_site(backend: Backend, propagate: bool = True) -> Site:
    site = Site(backend.now, asyncio.sleep)
    app = Application(router=Router())

    @app.router.get("/events")
    async def events(request: BlackSheepRequest) -> BlackSheepResponse:
        async def provider() -> AsyncIterator[TextServerSentEvent]:
            # BlackSheep's documented way: ask request.is_disconnected().
            number = 0
            while not await request.is_disconnected():
                yield TextServerSentEvent(str(number))
                number += 1
                await asyncio.sleep(1)
            site.stopped.append(site.now())

        return ServerSentEventsResponse(provider)

    @app.router.get("/download")
    async def download() -> BlackSheepResponse:
        return BlackSheepResponse(
            200, content=StreamedContent(b"text/plain", site.chunks)
        )

    @app.router.post("/upload")
    async def upload(request: BlackSheepRequest) -> BlackSheepResponse:
        # (an async generator, which BlackSheep's stub types as a coroutine)
        chunks: AsyncIterator[bytes] = request.stream()  # type: ignore[assignment]
        async for chunk in chunks:
            site.read(chunk)
        return blacksheep_text(f"read {len(site.uploads)} chunks")

    @app.router.get("/boom")
    async def boom() -> BlackSheepResponse:
        raise site.error

    @app.router.ws("/ws")  # pyright: ignore[reportUnknownMemberType]
    async def echo(socket: BlackSheepWebSocket) -> None:
        await socket.accept(subprotocol=first_in(socket.scope))  # pyright: ignore[reportUnknownMemberType]
        try:
            while True:
                message: Any = await socket.receive()
                answer = site.reply(message.get("text") or message["bytes"])
                if isinstance(answer, str):
                    await socket.send_text(answer)
                else:
                    await socket.send_bytes(answer)
        except WebSocketDisconnectError as gone:
            site.heard.append(gone.code)

    @app.router.ws("/ws/refused")  # pyright: ignore[reportUnknownMemberType]
    async def refused(socket: BlackSheepWebSocket) -> None:
        await socket.close(4403, "no entry")

    site.app = app
    return site


class URLConf:
    """A ROOT_URLCONF of a site's own (Django takes any object with
    ``urlpatterns``; hashable, as Django caches a resolver per urlconf)."""

    def __init__(self, urlpatterns: list[Any]) -> None:
        self.urlpatterns = urlpatterns


def django_site(backend: Backend, propagate: bool = True) -> Site:
    site = Site(backend.now, asyncio.sleep, no_lifespan=True)

    async def events(request: HttpRequest) -> StreamingHttpResponse:
        return StreamingHttpResponse(
            site.ticks(sse_line), content_type="text/event-stream"
        )

    async def download(request: HttpRequest) -> StreamingHttpResponse:
        return StreamingHttpResponse(site.chunks(), content_type="text/plain")

    async def upload(request: HttpRequest) -> HttpResponse:
        # Django's ASGI handler has read the whole body before the view runs.
        body = cast("bytes", request.body)  # pyright: ignore[reportUnknownMemberType]
        site.read(body)
        return HttpResponse(f"read {len(site.uploads)} chunks".encode())

    async def boom(request: HttpRequest) -> HttpResponse:
        raise site.error

    urls = URLConf(
        [
            django_path("events", events),
            django_path("download", download),
            django_path("upload", upload),
            django_path("boom", boom),
        ]
    )
    site.app = frameworks.django()  # (configures the settings, once)
    site.during = override_settings(ROOT_URLCONF=urls)
    # Django's handler, once it has answered, joins its worker thread from a
    # thread of its own (asgiref's ThreadSensitiveContext), which looptime
    # does not see: the fake clock would leap to the next deadline, the read
    # timeout, while it waits. No read timeout, then (the guard still holds).
    site.options = {"timeout": None}
    return site


Build = Callable[[Backend, bool], Site]

#: Each framework, its builder, and the backends it runs on: Quart on
#: asyncio, quart-trio on trio; BlackSheep is asyncio's (its
#: request.is_disconnected() makes an asyncio task); Django's ASGI handler
#: makes asyncio tasks.
FRAMEWORKS: dict[str, tuple[Build, tuple[str, ...]]] = {
    "starlette": (starlette_site, ("trio", "asyncio")),
    "fastapi": (fastapi_site, ("trio", "asyncio")),
    "litestar": (litestar_site, ("trio", "asyncio")),
    "quart": (quart_site, ("asyncio",)),
    "quart-trio": (quart_trio_site, ("trio",)),
    "blacksheep": (blacksheep_site, ("asyncio",)),
    "django": (django_site, ("asyncio",)),
}
_BY_NAME = {backend.name: backend for backend in BACKENDS}


def cases(*names: str) -> list[Any]:
    """``(framework, backend)`` for each of ``names`` on each backend it runs on."""
    return [
        pytest.param(name, _BY_NAME[backend], id=f"{name}-{backend}")
        for name in names
        for backend in FRAMEWORKS[name][1]
    ]


ALL = tuple(FRAMEWORKS)
WEBSOCKETS = tuple(name for name in FRAMEWORKS if name != "django")


def build(framework: str, backend: Backend, propagate: bool = True) -> Site:
    return FRAMEWORKS[framework][0](backend, propagate)


@asynccontextmanager
async def opened(site: Site, **options: Any) -> AsyncGenerator[LifespanClient[Any]]:
    """``open_client`` on the site's app (Django's without a lifespan)."""
    try:
        with site.during:
            async with trio_lifespan.open_client(
                site.app, allow_unsupported=site.no_lifespan, **(site.options | options)
            ) as client:
                yield client
    finally:
        await _stop_sse_starlettes_watcher()


async def _stop_sse_starlettes_watcher() -> None:
    """sse-starlette starts, on asyncio, a task per thread that polls for
    uvicorn's shutdown for ever (on trio it finds no asyncio loop and starts
    none): stopped, or it would outlive the test's event loop."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # (trio)
        return
    for task in tasks:
        if task.get_coro().__qualname__ == "_shutdown_watcher":  # type: ignore[union-attr]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


# An endless event stream ---------------------------------------------------------

#: When the stream's handler hears the client go, in seconds from the first
#: event: at once (the framework listens for http.disconnect and cancels the
#: stream), but BlackSheep's handler asks is_disconnected() before each
#: event, so it hears it at its next one.
HEARD_AT = {"blacksheep": 3.0}


@pytest.mark.parametrize(("framework", "backend"), cases(*ALL))
async def test_an_endless_event_stream_streams_until_the_client_goes(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        began = backend.now()
        lines: list[tuple[float, str]] = []
        async with client.stream("GET", "/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async with closing(response.aiter_lines()) as events:
                async for line in events:
                    if line:
                        lines.append((backend.now() - began, line))
                    if len(lines) == 3:
                        break
        # Each as it came, a second apart: the response streams. Its close
        # told the handler, and waited for it to end (by itself: no grace
        # spent, no cancellation).
        assert lines == [(0, "data: 0"), (1, "data: 1"), (2, "data: 2")]
        heard_at = HEARD_AT.get(framework, 2.0)
        assert site.stopped == [approx(began + heard_at)]
        if framework != "django":  # (its handler ends through a thread, whose
            # wait lets the test's fake clock run on: up to the grace)
            assert backend.now() - began == approx(heard_at)


@pytest.mark.parametrize(("framework", "backend"), cases(*ALL))
async def test_an_event_stream_read_whole_says_its_client_was_closed_under_it(
    framework: str, backend: Backend
) -> None:
    # client.get() on an endless stream, the client closed from another task
    # meanwhile: however the framework ends the handler (its send raising the
    # client-gone OSError inside its own task group, its disconnect listener,
    # or the exit's cancellation), the reader is told the client was closed
    # under it: never a group of one, never a made-up response.
    site = build(framework, backend)

    async def read(client: LifespanClient[Any]) -> object:
        return await client.get("/events")

    error = await closed_under_a_reader(
        backend, opened(site, shutdown_timeout=1), read, after=2.5
    )
    assert isinstance(error, RuntimeError)
    assert "the client was closed while the response to GET /events" in str(error)


# A streamed download -------------------------------------------------------------


@pytest.mark.parametrize(("framework", "backend"), cases(*ALL))
async def test_a_download_streams_chunk_by_chunk(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        began = backend.now()
        received: list[tuple[float, bytes]] = []
        async with client.stream("GET", "/download") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            assert "content-length" not in response.headers
            async with closing(response.aiter_bytes()) as chunks:
                async for chunk in chunks:
                    received.append((backend.now() - began, chunk))
    # Every chunk on its own, as the app sent it, a second apart.
    assert received == [(float(n), chunk) for n, chunk in enumerate(CHUNKS)]


# A streamed upload ---------------------------------------------------------------


async def _upload(backend: Backend, client: httpx.AsyncClient) -> tuple[float, str]:
    """Send :data:`PARTS`, a part a second; when the upload began, and the answer."""

    async def parts() -> AsyncIterator[bytes]:
        for part in PARTS:
            await backend.sleep(1)
            yield part

    began = backend.now()
    response = await client.post("/upload", content=parts())
    assert response.status_code == 200
    assert backend.now() - began == approx(3)
    return began, response.text


@pytest.mark.parametrize(
    ("framework", "backend"),
    cases("starlette", "fastapi", "litestar", "quart", "quart-trio", "blacksheep"),
)
async def test_an_upload_streams_to_the_handler_chunk_by_chunk(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        began, answer = await _upload(backend, client)
    pieces = [chunk for _, chunk in site.uploads]
    assert b"".join(pieces) == b"".join(PARTS)
    assert answer == f"read {len(pieces)} chunks"
    # In pieces, each read as the client sent it (the test below times them).
    assert len(pieces) == len(PARTS)
    assert site.uploads[0][0] < began + 3


@pytest.mark.parametrize(("framework", "backend"), cases("starlette"))
async def test_each_uploaded_chunk_reaches_the_handler_when_it_is_sent(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        began, _ = await _upload(backend, client)
    assert site.uploads == [
        (began + 1, PARTS[0]),
        (began + 2, PARTS[1]),
        (began + 3, PARTS[2]),
    ]


@pytest.mark.parametrize(("framework", "backend"), cases("django"))
async def test_django_reads_the_whole_upload_before_the_view_runs(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        began, answer = await _upload(backend, client)
    assert answer == "read 1 chunks"
    assert site.uploads == [(began + 3, b"".join(PARTS))]


# Websockets ----------------------------------------------------------------------


def _the_exception(raised: BaseException, framework: str) -> BaseException:
    """The handler's exception, out of the group Quart puts it in: quart-trio
    runs handlers in a nursery, and Quart 0.23 in a TaskGroup."""
    if framework.startswith("quart") and isinstance(raised, ExceptionGroup):
        group: ExceptionGroup[Exception] = raised  # pyright: ignore[reportUnknownVariableType]
        (inner,) = group.exceptions
        return inner
    return raised


#: What the echo handler heard when the test's session closed (code 1000):
#: the close code, where the framework hands it over; Quart cancels the
#: handler instead (Quart 0.23 raises its ClientDisconnectedError in it).
HEARD_ON_CLOSE: dict[str, tuple[object, ...]] = {
    "starlette": (1000,),
    "fastapi": (1000,),
    "litestar": (1000,),
    "quart": ("CancelledError", "ClientDisconnectedError"),
    "quart-trio": ("Cancelled", "ClientDisconnectedError"),
    "blacksheep": (1000,),
}


@pytest.mark.parametrize(("framework", "backend"), cases(*WEBSOCKETS))
async def test_a_websocket_echoes_text_and_bytes(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        async with client.websocket_connect("/ws", subprotocols=OFFERED) as socket:
            assert socket.accepted_subprotocol == "chat.v2"
            await socket.send_text("hello")
            assert await socket.receive_text() == "echo: hello"
            await socket.send_bytes(b"\x00\xff")
            assert await socket.receive_bytes() == b"echo: \x00\xff"
            await socket.send_json({"n": [1, 2]})
            assert await socket.receive_text() == 'echo: {"n":[1,2]}'
            assert site.heard == []
        (heard,) = site.heard
        assert heard in HEARD_ON_CLOSE[framework]
        async with client.websocket_connect("/ws") as socket:
            assert socket.accepted_subprotocol is None  # none offered
            await socket.send_text("again")
            assert await socket.receive_text() == "echo: again"


@pytest.mark.parametrize(("framework", "backend"), cases("starlette"))
async def test_httpx_ws_echoes_through_the_client(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        connect = httpx_ws.aconnect_ws(
            "/ws",
            client,
            subprotocols=OFFERED,
            session_class=httpx_ws.AsyncWebSocketSession,
        )
        async with connect as socket:
            assert socket.subprotocol == "chat.v2"
            await socket.send_text("hello")
            assert await socket.receive_text() == "echo: hello"
            await socket.send_bytes(b"\x00\xff")
            assert await socket.receive_bytes() == b"echo: \x00\xff"
    assert site.heard == [1000]


@pytest.mark.parametrize(
    ("framework", "backend"), cases("starlette", "fastapi", "quart", "quart-trio")
)
async def test_a_websocket_handlers_exception_is_raised_in_the_test(
    framework: str, backend: Backend
) -> None:
    _needs_quart_that_propagates(framework)
    site = build(framework, backend)
    async with opened(site) as client:
        with pytest.raises(BaseException) as caught:  # noqa: PT011 - exact below
            async with client.websocket_connect("/ws") as socket:
                await socket.send_text("boom")
                await socket.receive_text()
    assert _the_exception(caught.value, framework) is site.ws_error


#: How the session ends when the handler raises in frameworks that catch the
#: exception: each closes it the way it documents. Litestar: 4000 + 500 and
#: "Internal Server Error"; BlackSheep: 1011 (internal error) and the
#: exception's text; Quart (without PROPAGATE_EXCEPTIONS): its 500 response,
#: which it cannot send after accepting, so a normal close.
CLOSED_ON_ERROR = {
    "litestar": (4500, "Internal Server Error"),
    "blacksheep": (1011, "the websocket handler failed"),
    "quart": (1000, ""),
    "quart-trio": (1000, ""),
}


@pytest.mark.parametrize(("framework", "backend"), cases(*CLOSED_ON_ERROR))
async def test_a_websocket_handlers_exception_closes_the_session_the_frameworks_way(
    framework: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    site = build(framework, backend, propagate=False)
    async with opened(site) as client:
        async with client.websocket_connect("/ws") as socket:
            await socket.send_text("boom")
            with pytest.raises(WebSocketDisconnect) as caught:
                await socket.receive_text()
    assert (caught.value.code, caught.value.reason) == CLOSED_ON_ERROR[framework]
    if framework == "blacksheep":  # (it logs it, with logging.exception)
        assert logged(caplog, "root") == [site.ws_error]
    else:
        assert site.reported == [site.ws_error]


#: What each framework's refusal (its own documented way, in ``/ws/refused``)
#: comes out as: an HTTP response (the ASGI denial response) or a close
#: before accepting.
REFUSED: dict[str, WebSocketDenied | WebSocketDisconnect] = {
    "starlette": WebSocketDenied(
        403,
        [(b"content-length", b"8"), (b"content-type", b"text/plain; charset=utf-8")],
        b"no entry",
    ),
    "fastapi": WebSocketDisconnect(1008, "no entry"),
    "litestar": WebSocketDisconnect(4403, "no entry"),
    "quart": WebSocketDenied(
        403,
        [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"8")],
        b"no entry",
    ),
    "quart-trio": WebSocketDenied(
        403,
        [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"8")],
        b"no entry",
    ),
    "blacksheep": WebSocketDisconnect(4403, "no entry"),
}


@pytest.mark.parametrize(("framework", "backend"), cases(*WEBSOCKETS))
async def test_a_refused_handshake_says_how_the_framework_refused(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    expected = REFUSED[framework]
    async with opened(site) as client:
        with pytest.raises(type(expected)) as caught:
            async with client.websocket_connect("/ws/refused"):
                raise AssertionError("accepted")
    assert caught.value.args == expected.args


@pytest.mark.parametrize(("framework", "backend"), cases("starlette"))
async def test_starlette_closing_before_accepting_is_a_disconnect(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        with pytest.raises(WebSocketDisconnect) as caught:
            async with client.websocket_connect("/ws/closed"):
                raise AssertionError("accepted")
    assert (caught.value.code, caught.value.reason) == (1008, "policy")


@pytest.mark.parametrize(("framework", "backend"), cases("django"))
async def test_django_refuses_websockets_with_its_own_error(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site) as client:
        with pytest.raises(
            ValueError,
            match="Django can only handle ASGI/HTTP connections, not websocket",
        ):
            async with client.websocket_connect("/ws"):
                raise AssertionError("accepted")


# A handler that raises -----------------------------------------------------------

#: What the client gets with raise_app_exceptions=False from frameworks whose
#: handler's exception leaves the app: Starlette's ServerErrorMiddleware sends
#: its 500 before it re-raises; Quart with PROPAGATE_EXCEPTIONS sends nothing,
#: so the 500 is the client's own, with no body.
SENT_BEFORE_RAISING = {
    "starlette": b"Internal Server Error",
    "fastapi": b"Internal Server Error",
    "quart": b"",
    "quart-trio": b"",
}


@pytest.mark.parametrize(("framework", "backend"), cases(*SENT_BEFORE_RAISING))
async def test_an_http_handlers_exception_is_raised_unless_told_otherwise(
    framework: str, backend: Backend
) -> None:
    _needs_quart_that_propagates(framework)
    site = build(framework, backend)
    async with opened(site) as client:
        with pytest.raises(BaseException) as caught:  # noqa: PT011 - exact below
            await client.get("/boom")
        response = await client.get("/download")  # the client goes on
        assert response.content == b"".join(CHUNKS)
    assert _the_exception(caught.value, framework) is site.error
    async with opened(site, raise_app_exceptions=False) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.content == SENT_BEFORE_RAISING[framework]


#: The logger by which BlackSheep and Django tell of a handler's exception
#: (they have no hook that is handed it).
LOGGED_BY = {"blacksheep": "blacksheep.server", "django": "django.request"}


def logged(caplog: pytest.LogCaptureFixture, logger: str) -> list[BaseException]:
    """The exceptions ``logger`` logged."""
    return [
        record.exc_info[1]
        for record in caplog.records
        if record.name == logger and record.exc_info and record.exc_info[1]
    ]


#: The 500 of frameworks that turn the handler's exception into one whatever
#: the client's raise_app_exceptions (the app raises nothing): its body, or
#: the heading of its HTML page (Quart's is Werkzeug's; Django's, DEBUG off).
FRAMEWORKS_500 = {
    "litestar": b'{"status_code":500,"detail":"Internal Server Error"}',
    "quart": b"<h1>Internal Server Error</h1>",
    "quart-trio": b"<h1>Internal Server Error</h1>",
    "blacksheep": b"Internal Server Error",
    "django": b"<h1>Server Error (500)</h1>",
}


@pytest.mark.parametrize("raise_app_exceptions", [True, False])
@pytest.mark.parametrize(("framework", "backend"), cases(*FRAMEWORKS_500))
async def test_an_http_handlers_exception_is_the_frameworks_500(
    framework: str,
    backend: Backend,
    raise_app_exceptions: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = build(framework, backend, propagate=False)
    async with opened(site, raise_app_exceptions=raise_app_exceptions) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    if framework in ("litestar", "blacksheep"):
        assert response.content == FRAMEWORKS_500[framework]
    else:
        assert FRAMEWORKS_500[framework] in response.content
    if framework in LOGGED_BY:
        assert logged(caplog, LOGGED_BY[framework]) == [site.error]
    else:
        assert site.reported == [site.error]


# Work after the response -------------------------------------------------------------


@pytest.mark.parametrize(("framework", "backend"), cases("starlette"))
async def test_background_work_outlasting_the_read_timeout_is_cancelled_there(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site, timeout=1, shutdown_timeout=2) as client:
        began = backend.now()
        response = await client.get("/later")
        assert response.text == "accepted"
        # A response read whole is its caller's call: the background work has
        # the read timeout, then is cancelled, and nothing of it outlives it.
        assert backend.now() - began == approx(1)
        assert site.background == ["cancelled"]
    assert backend.now() - began == approx(1)


@pytest.mark.parametrize(("framework", "backend"), cases("starlette"))
async def test_background_work_of_a_stream_outlasting_the_grace_is_cancelled_by_the_exit(
    framework: str, backend: Backend
) -> None:
    site = build(framework, backend)
    async with opened(site, timeout=1, shutdown_timeout=2) as client:
        began = backend.now()
        async with client.stream("GET", "/later") as response:
            assert await response.aread() == b"accepted"
        # The read timeout given to the background work, then the response.
        assert backend.now() - began == approx(1)
        assert site.background == []  # (it goes on, past the response)
    # The grace, then the work is cancelled, as for a response closed early.
    assert backend.now() - began == approx(3)
    assert site.background == ["cancelled"]

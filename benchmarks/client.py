"""Side-by-side client benchmarks: ``open_client`` against its peers.

Peers: asgi-lifespan's ``LifespanManager`` with httpx's ``ASGITransport`` (the
hand-written fixture most projects have), async-asgi-testclient (asyncio
only), and Starlette's ``TestClient`` (synchronous, a thread portal) for
websockets. The floor for a request is httpx's own client pipeline over a
transport that answers without calling any app. As in bench.py, contenders'
rounds are interleaved in one process, and ratios come from the same run.
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import time
import tracemalloc
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import trio
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from trio_lifespan import LifespanClient, open_client

#: async-asgi-testclient's client class (the package has no type hints).
AsyncASGITestClient: Any = importlib.import_module("async_asgi_testclient").TestClient

BASE = "http://testserver"
CHUNK = 64 * 1024


def make_app(download_bytes: int = 0, events: int = 0) -> Starlette:
    """A Starlette app: ``GET /``, ``POST /items``, a websocket echo, a
    streamed download of ``download_bytes``, ``events`` server-sent events."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        # (on the app, not in the lifespan state: async-asgi-testclient has none)
        app.state.db = "ready"
        yield

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.app.state.db)

    async def create(request: Request) -> JSONResponse:
        return JSONResponse(await request.json(), status_code=201)

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            if text == "bye":
                await websocket.close()
                return
            await websocket.send_text(text)

    block = b"x" * CHUNK

    async def download(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncGenerator[bytes]:
            for _ in range(download_bytes // CHUNK):
                yield block

        return StreamingResponse(chunks())

    async def stream_events(request: Request) -> StreamingResponse:
        async def lines() -> AsyncGenerator[bytes]:
            for number in range(events):
                yield b"data: %d\n\n" % number

        return StreamingResponse(lines(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/items", create, methods=["POST"]),
            Route("/download", download),
            Route("/events", stream_events),
            WebSocketRoute("/ws", echo),
        ],
        lifespan=lifespan,
    )


Opener = Callable[[Starlette], AbstractAsyncContextManager[Any]]
Measured = Callable[[], Coroutine[Any, Any, float]]


@asynccontextmanager
async def hand_written(app: Starlette) -> AsyncGenerator[httpx.AsyncClient]:
    """asgi-lifespan and httpx's ASGI transport, as projects write it."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


def answering(library: Any) -> Callable[[Any], Coroutine[Any, Any, Any]]:
    """The floor's transport, for httpx or httpx2 (``library``): it answers
    without calling any app."""

    async def answer(request: Any) -> Any:
        if request.method == "POST":
            await request.aread()
            return library.Response(201, content=request.content)
        return library.Response(200, content=b"ready")

    return answer


@asynccontextmanager
async def floor(app: Starlette) -> AsyncGenerator[httpx.AsyncClient]:
    """httpx's own pipeline, over a transport that calls no app."""
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answering(httpx)), base_url=BASE
    ) as client:
        yield client


@asynccontextmanager
async def floor_ours(app: Starlette) -> AsyncGenerator[httpx.AsyncClient]:
    """``open_client``'s client pipeline (lighter than httpx's: it remembers
    URL merges, and does not show Python's cookie jar a response that sets
    no cookie), over the same transport: what ours costs above it is the
    app and our transport."""
    client: LifespanClient[Starlette] = LifespanClient(
        transport=httpx.MockTransport(answering(httpx)), base_url=BASE
    )
    async with client:
        yield client


@asynccontextmanager
async def ours(app: Starlette) -> AsyncGenerator[httpx.AsyncClient]:
    """``open_client`` on httpx: the same client pipeline as the peers'."""
    async with open_client(app, httpx="httpx") as client:
        yield client


def _httpx2() -> Any:
    """httpx2, if installed (Python 3.11 and later), else None."""
    try:
        return importlib.import_module("httpx2")
    except ModuleNotFoundError:
        return None


HTTPX2: Any = _httpx2()


@asynccontextmanager
async def ours_httpx2(app: Starlette) -> AsyncGenerator[Any]:
    """``open_client`` on httpx2 (what it picks where both are installed)."""
    async with open_client(app, httpx="httpx2") as client:
        yield client


@asynccontextmanager
async def hand_written_httpx2(app: Starlette) -> AsyncGenerator[Any]:
    """asgi-lifespan and httpx2's ASGI transport: the like-for-like peer."""
    async with LifespanManager(app) as manager:
        transport = HTTPX2.ASGITransport(app=manager.app)
        async with HTTPX2.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


@asynccontextmanager
async def floor_httpx2(app: Starlette) -> AsyncGenerator[Any]:
    """httpx2's own pipeline, over a transport that calls no app."""
    async with HTTPX2.AsyncClient(
        transport=HTTPX2.MockTransport(answering(HTTPX2)), base_url=BASE
    ) as client:
        yield client


@asynccontextmanager
async def floor_ours_httpx2(app: Starlette) -> AsyncGenerator[Any]:
    """``open_client``'s httpx2 client pipeline over the same transport."""
    client_class: Any = importlib.import_module("trio_lifespan._httpx2").CLIENT
    async with client_class(
        transport=HTTPX2.MockTransport(answering(HTTPX2)), base_url=BASE
    ) as client:
        yield client


@asynccontextmanager
async def async_asgi(app: Starlette) -> AsyncGenerator[Any]:
    client: Any = AsyncASGITestClient(app)
    async with client:
        yield client


def openers(library: str) -> dict[str, Opener]:
    found: dict[str, Opener] = {
        "floor": floor,
        "floor (our client)": floor_ours,
        "trio_lifespan": ours,
        "asgi_lifespan+httpx": hand_written,
    }
    if library == "asyncio":
        found["async-asgi-testclient"] = async_asgi
    return found


def httpx2_openers() -> dict[str, Opener]:
    """The same request on httpx2's pipeline (none without httpx2)."""
    if HTTPX2 is None:
        return {}
    return {
        "floor (httpx2)": floor_httpx2,
        "floor (our httpx2 client)": floor_ours_httpx2,
        "trio_lifespan (httpx2)": ours_httpx2,
        "asgi_lifespan+httpx2": hand_written_httpx2,
    }


async def request_seconds(opener: Opener, calls: int, method: str) -> float:
    """Seconds per request (``GET /`` or ``POST /items`` with JSON)."""
    async with opener(make_app()) as client:
        began = time.perf_counter()
        for _ in range(calls):
            if method == "GET":
                response = await client.get("/")
            else:
                response = await client.post("/items", json={"name": "x"})
            assert response.status_code in (200, 201)
        return (time.perf_counter() - began) / calls


async def open_close_seconds(opener: Opener, cycles: int) -> float:
    """Seconds to open a client (the lifespan's startup), and close it."""
    app = make_app()
    began = time.perf_counter()
    for _ in range(cycles):
        async with opener(app):
            pass
    return (time.perf_counter() - began) / cycles


async def websocket_seconds(opener: Opener, calls: int, *, session: bool) -> float:
    """Seconds per websocket round trip (one session), or per session of
    connect, one round trip and close (``session``)."""
    async with opener(make_app()) as opened:
        client: Any = opened  # (ours, or async-asgi-testclient's: the same names)
        connect = client.websocket_connect
        began = time.perf_counter()
        if session:
            for _ in range(calls):
                async with connect("/ws") as websocket:
                    await websocket.send_text("hello")
                    assert await websocket.receive_text() == "hello"
                    await websocket.send_text("bye")
        else:
            async with connect("/ws") as websocket:
                for _ in range(calls):
                    await websocket.send_text("hello")
                    assert await websocket.receive_text() == "hello"
                await websocket.send_text("bye")
        return (time.perf_counter() - began) / calls


def starlette_websocket_seconds(calls: int, *, session: bool) -> float:
    """Starlette's synchronous TestClient, for the same websocket work."""
    test_client: Any = TestClient(make_app())
    with test_client as client:
        began = time.perf_counter()
        if session:
            for _ in range(calls):
                with client.websocket_connect("/ws") as websocket:
                    websocket.send_text("hello")
                    assert websocket.receive_text() == "hello"
                    websocket.send_text("bye")
        else:
            with client.websocket_connect("/ws") as websocket:
                for _ in range(calls):
                    websocket.send_text("hello")
                    assert websocket.receive_text() == "hello"
                websocket.send_text("bye")
        return (time.perf_counter() - began) / calls


async def download_rate(size: int) -> tuple[float, float]:
    """Bytes per second of a streamed download of ``size`` bytes through
    ``open_client``, and the peak of memory allocated meanwhile."""
    async with open_client(make_app(download_bytes=size)) as client:
        tracemalloc.start()
        began = time.perf_counter()
        got = 0
        async with client.stream("GET", "/download") as response:
            async for chunk in response.aiter_raw():
                got += len(chunk)
        seconds = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert got == size // CHUNK * CHUNK
    return got / seconds, float(peak)


def copy_rate(size: int) -> float:
    """Bytes per second of copying ``size`` bytes in the same chunks: the
    memory-copy speed the download is measured against."""
    block = b"x" * CHUNK
    began = time.perf_counter()
    sink = bytearray(CHUNK)
    for _ in range(size // CHUNK):
        sink[:] = block
    return size / (time.perf_counter() - began)


async def events_rate(events: int) -> float:
    """Server-sent events per second through ``open_client``'s stream."""
    async with open_client(make_app(events=events)) as client:
        began = time.perf_counter()
        got = 0
        async with client.stream("GET", "/events") as response:
            async for line in response.aiter_lines():
                got += line.startswith("data:")
        seconds = time.perf_counter() - began
    assert got == events
    return events / seconds


def run_on(library: str, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if library == "trio":
        return trio.run(fn)
    return asyncio.run(fn())


def interleaved(
    library: str,
    rounds: int,
    measure: Callable[[Opener], Measured],
    names: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Median of ``rounds`` interleaved measurements for each contender."""
    pool = openers(library) if names is None else openers(library) | httpx2_openers()
    contenders = {
        name: opener for name, opener in pool.items() if names is None or name in names
    }
    found: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, opener in contenders.items():
            found[name].append(run_on(library, measure(opener)))
    return {name: statistics.median(values) for name, values in found.items()}


def show(label: str, values: dict[str, float], base: str) -> str:
    cells = ", ".join(
        f"{name} {seconds * 1e6:.1f} µs ({seconds / values[base]:.2f}x)"
        for name, seconds in values.items()
    )
    return f"- {label}: {cells}"


def above(values: dict[str, float], our_floor: str, ours: str, floor: str) -> str:
    """What the app and the transport cost above each client's own pipeline:
    ours above our client over the floor's transport, the peer's above
    httpx's."""
    peer = next(name for name in values if name.startswith("asgi_lifespan"))
    mine = (values[ours] - values[our_floor]) * 1e6
    theirs = (values[peer] - values[floor]) * 1e6
    return (
        f"  (the app and the transport, above each client's own pipeline: "
        f"{ours} {mine:.1f} µs, {peer} {theirs:.1f} µs)"
    )


def client_rows(quick: bool) -> list[str]:
    """Print the client's rows; return its targets, measured."""
    rounds, calls, cycles, size, events = (
        (3, 200, 20, 8 * 2**20, 2_000) if quick else (7, 2_000, 200, 50 * 2**20, 10_000)
    )
    targets: list[str] = []
    print("\nopen_client, against its peers (medians; ratios in brackets):")
    for library in ("trio", "asyncio"):
        for method in ("GET", "POST"):

            def per_request(opener: Opener, m: str = method) -> Measured:
                return lambda: request_seconds(opener, calls, m)

            values = interleaved(library, rounds, per_request)
            print(show(f"{library}: a Starlette {method}", values, "floor"))
            print(above(values, "floor (our client)", "trio_lifespan", "floor"))
            ratio = values["trio_lifespan"] / values["asgi_lifespan+httpx"]
            targets.append(
                f"{library} {method}: no slower than asgi-lifespan + httpx: "
                f"{ratio:.2f}x"
            )
            if HTTPX2 is not None:
                values = interleaved(
                    library, rounds, per_request, tuple(httpx2_openers())
                )
                label = f"{library}: a Starlette {method} on httpx2"
                print(show(label, values, "floor (httpx2)"))
                print(
                    above(
                        values,
                        "floor (our httpx2 client)",
                        "trio_lifespan (httpx2)",
                        "floor (httpx2)",
                    )
                )
                ratio = (
                    values["trio_lifespan (httpx2)"] / values["asgi_lifespan+httpx2"]
                )
                targets.append(
                    f"{library} {method} on httpx2: no slower than asgi-lifespan "
                    f"+ httpx2: {ratio:.2f}x"
                )

        def open_close(opener: Opener) -> Measured:
            return lambda: open_close_seconds(opener, cycles)

        peers = ("trio_lifespan", "asgi_lifespan+httpx")
        values = interleaved(library, rounds, open_close, peers)
        print(show(f"{library}: open and close a client", values, peers[1]))
        ratio = values["trio_lifespan"] / values["asgi_lifespan+httpx"]
        targets.append(
            f"{library} open and close: no slower than asgi-lifespan + httpx: "
            f"{ratio:.2f}x"
        )
    for session in (False, True):
        label = "connect, a message and close" if session else "a websocket round trip"

        def websockets(opener: Opener, s: bool = session) -> Measured:
            return lambda: websocket_seconds(opener, calls, session=s)

        peers = ("trio_lifespan", "async-asgi-testclient")
        values = interleaved("asyncio", rounds, websockets, peers)
        values["starlette TestClient"] = statistics.median(
            starlette_websocket_seconds(calls, session=session) for _ in range(rounds)
        )
        values["trio_lifespan on trio"] = statistics.median(
            run_on("trio", websockets(ours)) for _ in range(rounds)
        )
        print(show(f"asyncio: {label}", values, "async-asgi-testclient"))
        limit = 3 if session else 2
        ratio = values["trio_lifespan"] / values["async-asgi-testclient"]
        targets.append(f"{label}: at most {limit}x async-asgi-testclient: {ratio:.2f}x")
    copied = copy_rate(size)
    for library in ("trio", "asyncio"):
        rate, peak = run_on(library, lambda: download_rate(size))
        print(
            f"- {library}: a {size // 2**20} MB streamed download: "
            f"{rate / 2**20:.0f} MB/s (memory copy: {copied / 2**20:.0f} MB/s), "
            f"peak memory while streaming {peak / 2**20:.2f} MB"
        )
        targets.append(
            f"{library} download memory flat: peak {peak / 2**20:.2f} MB for "
            f"{size // 2**20} MB"
        )
        rate_events = run_on(library, lambda: events_rate(events))
        print(f"- {library}: {events} server-sent events: {rate_events:,.0f} events/s")
    return targets

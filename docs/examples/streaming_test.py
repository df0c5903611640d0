"""How-to: test streaming endpoints, in one process, on the test's own loop.

An endless server-sent events route (sse-starlette), an LLM-style token
stream, an upload read as it comes; on trio and on asyncio.
"""

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager

import anyio
import pytest
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from trio_lifespan import open_client

# httpx's own iterators (aiter_lines reads aiter_text, which reads aiter_bytes
# ...) leave the inner ones to the garbage collector when a test stops
# reading early, and trio warns of each. Reading on to the end needs no
# filter; an endless stream does.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx\\.:ResourceWarning",
    "ignore:Exception ignored in. <async_generator object:"
    "pytest.PytestUnraisableExceptionWarning",
)

disconnected: list[str] = []


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
    yield {"model": "tiny"}


async def ticks(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[dict[str, str]]:
        number = 0
        try:
            while True:  # never ends by itself
                yield {"event": "tick", "data": str(number)}
                number += 1
                await anyio.sleep(0.01)
        finally:
            disconnected.append("ticks")  # the client went: the app is told

    return EventSourceResponse(events())


async def complete(request: Request) -> StreamingResponse:
    async def tokens() -> AsyncIterator[bytes]:
        for token in ["Hello", ",", " world", "!"]:
            yield token.encode()
            await anyio.sleep(0.01)

    return StreamingResponse(tokens(), media_type="text/plain")


async def upload(request: Request) -> JSONResponse:
    sizes = [len(chunk) async for chunk in request.stream() if chunk]
    return JSONResponse({"chunks": sizes})


app = Starlette(
    routes=[
        Route("/ticks", ticks),
        Route("/complete", complete),
        Route("/upload", upload, methods=["POST"]),
    ],
    lifespan=lifespan,
)


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_the_first_events_of_an_endless_stream() -> None:
    data: list[str] = []
    async with (
        open_client(app) as client,
        client.stream("GET", "/ticks") as response,
        aclosing(response.aiter_lines()) as lines,  # type: ignore[type-var]
    ):
        async for line in lines:
            if line.startswith("data:"):
                data.append(line.removeprefix("data: "))
            if len(data) == 3:
                break  # leaving the block tells the app
    assert data == ["0", "1", "2"]
    assert disconnected[-1:] == ["ticks"]


@pytest.mark.anyio
async def test_a_token_stream_arrives_token_by_token() -> None:
    async with (
        open_client(app) as client,
        client.stream("GET", "/complete") as response,
    ):
        tokens = [token async for token in response.aiter_text()]
    assert tokens == ["Hello", ",", " world", "!"]


@pytest.mark.anyio
async def test_an_upload_is_read_as_it_comes() -> None:
    async def body() -> AsyncIterator[bytes]:
        for size in (3, 5, 8):
            yield b"x" * size

    async with open_client(app) as client:
        response = await client.post("/upload", content=body())
    assert response.json() == {"chunks": [3, 5, 8]}

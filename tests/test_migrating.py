"""The two tables of docs/howto/migrating.rst about clients, measured.

Each test checks one row, both sides: what Starlette's ``TestClient`` (or
asgi-lifespan's ``LifespanManager`` with an httpx client) does, and what
:func:`trio_lifespan.open_client` does. Timeouts run on pytest-trio's
autojump clock; the two rows where ``TestClient`` waits for ever are run in
a child process that is still running a second after the point where it
hangs, and that a watchdog ends.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx_ws
import pytest
import sniffio
import trio
from asgi_lifespan import LifespanManager
from httpx_ws.transport import ASGIWebSocketTransport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocket

from trio_lifespan import (
    LifespanStartupFailed,
    LifespanTimeout,
    LifespanUnavailable,
    open_client,
)
from trio_lifespan._types import Receive, Scope, Send

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        members: tuple[BaseException, ...] = exc.exceptions  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        return [leaf for member in members for leaf in leaves(member)]
    return [exc]


# The apps -----------------------------------------------------------------------


class Recorder:
    """A raw ASGI app: records its lifespan events and where it ran.

    Each request adds one to ``scope["state"]["hits"]`` (when there is a
    state) and answers with the count it saw.
    """

    def __init__(self, *, startup_reply: str = "lifespan.startup.complete") -> None:
        self.startup_reply = startup_reply
        self.events: list[str] = []
        self.where: dict[str, object] = {}
        self.request_scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            self.events.append("startup")
            self.where.update(where_am_i())
            scope["state"]["hits"] = 0
            if self.startup_reply != "lifespan.startup.complete":
                await send({"type": self.startup_reply, "message": "no database"})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()
            self.events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.request_scopes.append(scope)
        while (await receive()).get("more_body"):
            pass
        hits = None
        if "hits" in scope.get("state", {}):
            hits = scope["state"]["hits"] = scope["state"]["hits"] + 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": repr(hits).encode()})


def where_am_i() -> dict[str, object]:
    """The event loop (or trio run) and the thread the caller runs in."""
    library = sniffio.current_async_library()
    loop: object = (
        asyncio.get_running_loop()
        if library == "asyncio"
        else trio.lowlevel.current_trio_token()
    )
    return {"library": library, "loop": loop, "thread": threading.get_ident()}


def starlette_app() -> Starlette:
    """A Starlette app whose lifespan keeps a task that dies on request."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        broken = anyio.Event()
        gone = anyio.Event()

        async def pool() -> None:
            await broken.wait()
            raise RuntimeError("db pool died")

        # A pretend connection, ready once GET /connect is called (asyncio).
        connected: asyncio.Future[str] | None = None
        if where_am_i()["library"] == "asyncio":
            connected = asyncio.get_running_loop().create_future()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(pool)
                yield {"broken": broken, "gone": gone, "connected": connected}
                tasks.cancel_scope.cancel()
        finally:
            gone.set()

    async def library(request: Request) -> PlainTextResponse:
        return PlainTextResponse(sniffio.current_async_library())

    async def crash(request: Request) -> PlainTextResponse:
        request.state.broken.set()
        await request.state.gone.wait()
        return PlainTextResponse("the pool is gone")

    async def connect(request: Request) -> PlainTextResponse:
        request.state.connected.set_result("connected")
        return PlainTextResponse("ok")

    async def redirect(request: Request) -> RedirectResponse:
        return RedirectResponse("/library")

    async def boom(request: Request) -> JSONResponse:
        raise ValueError("boom")

    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(f"state keys: {sorted(ws.state._state)}")
        await ws.close()

    return Starlette(
        routes=[
            Route("/library", library),
            Route("/crash", crash),
            Route("/connect", connect),
            Route("/redirect", redirect),
            Route("/boom", boom),
            WebSocketRoute("/ws", websocket),
        ],
        lifespan=lifespan,
    )


def hangs(code: str, marker: str) -> str:
    """Run ``code`` in a child process; check that it hangs after ``marker``.

    The child prints ``marker`` at the point after which it should hang; it
    must still be running a second later. A watchdog in the child ends it
    after 30 s whatever happens, so this never hangs itself. Returns what
    the child printed.
    """
    watchdog = "import faulthandler; faulthandler.dump_traceback_later(30, exit=True)\n"
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", watchdog + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,  # for `import tests...`
    )
    assert child.stdout is not None
    seen: list[str] = []
    try:
        for line in child.stdout:
            seen.append(line)
            if line.strip() == marker:
                break
        assert seen[-1:] == [f"{marker}\n"], "".join(seen)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    return "".join(seen)


# From Starlette's TestClient --------------------------------------------------------


@pytest.mark.trio
async def test_testclient_is_sync_open_client_is_async() -> None:
    app = Recorder()
    client = TestClient(app)
    with client:
        response = client.get("/")  # a response, not an awaitable
        assert not inspect.isawaitable(response)
        assert response.text == "1"
    assert not hasattr(TestClient(app), "__aenter__")
    async with open_client(app) as async_client:
        request = async_client.get("/")
        assert inspect.iscoroutine(request)
        assert isinstance(await request, httpx.Response)


@pytest.mark.trio
async def test_without_the_block_testclient_skips_the_lifespan() -> None:
    app = Recorder()
    assert TestClient(app).get("/").text == "None"  # no `with`
    assert app.events == []  # the startup never ran; the request did
    assert app.request_scopes[0]["state"] == {}
    # open_client's result is not a client: requests are sent only inside
    # its block, after the startup.
    assert not hasattr(open_client(app), "get")
    async with open_client(app) as client:
        assert app.events == ["startup"]
        assert (await client.get("/")).text == "1"


@pytest.mark.asyncio
async def test_testclient_runs_the_app_on_another_loop_and_thread() -> None:
    here = where_am_i()
    app = Recorder()
    with TestClient(app):
        pass
    assert app.where["loop"] is not here["loop"]
    assert app.where["thread"] != here["thread"]
    app = Recorder()
    async with open_client(app):
        pass
    assert app.where == here


@pytest.mark.asyncio
async def test_a_resource_of_the_startup_used_in_the_test() -> None:
    app = starlette_app()
    client = TestClient(app)
    with client:
        connected = client.app_state["connected"]
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            await connected
    async with open_client(app) as async_client:
        connected = async_client.lifespan.state["connected"]
        assert await asyncio.gather(connected, async_client.get("/connect"))
        assert connected.result() == "connected"


@pytest.mark.trio
async def test_on_trio() -> None:
    here = where_am_i()
    app = Recorder()
    with TestClient(app):  # the default backend: asyncio, in a thread
        pass
    assert app.where["library"] == "asyncio"
    app = Recorder()
    async with open_client(app):
        pass
    assert app.where == here  # the test's own trio run and thread


@pytest.mark.integration  # (a child process, watched for a second of real time)
def test_testclient_with_the_trio_backend_in_a_trio_test_never_returns() -> None:
    out = hangs(
        """
        import trio
        from starlette.testclient import TestClient, WebSocketTestSession
        from tests.test_migrating import Recorder

        async def main():
            print("entering", flush=True)
            with TestClient(Recorder(), backend="trio"):
                print("entered")

        trio.run(main)
        """,
        marker="entering",
    )
    assert "entered\n" not in out


@pytest.mark.integration  # (a child process, watched for a second of real time)
def test_testclient_after_startup_failed_runs_the_block_then_hangs() -> None:
    hangs(
        """
        from starlette.testclient import TestClient, WebSocketTestSession
        from tests.test_migrating import Recorder

        app = Recorder(startup_reply="lifespan.startup.failed")
        client = TestClient(app)
        with client:
            assert client.get("/").status_code == 200
            print("the block ran", flush=True)
        print("exited")
        """,
        marker="the block ran",
    )


@pytest.mark.trio
async def test_open_client_fails_at_once_when_the_startup_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = Recorder(startup_reply="lifespan.startup.failed")
    with trio.fail_after(1):
        with pytest.raises(LifespanStartupFailed) as caught:
            async with open_client(app):
                pytest.fail("the block ran")
    assert caught.value.message == "no database"
    assert trio.current_time() == 0


async def never_starts(scope: Scope, receive: Receive, send: Send) -> None:
    """A lifespan app whose startup never completes."""
    await receive()
    await anyio.sleep_forever()


@pytest.mark.integration  # (a child process, watched for a second of real time)
def test_testclient_has_no_startup_timeout_and_waits_for_ever() -> None:
    assert not any(
        "timeout" in name for name in inspect.signature(TestClient).parameters
    )
    hangs(
        """
        from starlette.testclient import TestClient, WebSocketTestSession
        from tests.test_migrating import never_starts

        print("entering", flush=True)
        with TestClient(never_starts):
            print("entered")
        """,
        marker="entering",
    )


@pytest.mark.trio
async def test_open_client_times_the_startup_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        with pytest.raises(LifespanTimeout):
            async with open_client(never_starts):
                pytest.fail("the block ran")
    assert trio.current_time() == 5.0


@pytest.mark.trio
async def test_a_crash_while_the_test_runs() -> None:
    app = starlette_app()
    with pytest.raises(BaseExceptionGroup) as group:
        client = TestClient(app)
        with client:
            assert client.get("/crash").text == "the pool is gone"
            # The block goes on, and the dead app still answers.
            assert client.get("/library").text == "asyncio"
    assert [str(leaf) for leaf in leaves(group.value)] == ["db pool died"]

    with trio.fail_after(10):
        with pytest.raises(RuntimeError, match=r"^db pool died$"):
            async with open_client(app) as async_client:
                await async_client.get("/crash")
                with pytest.raises(LifespanUnavailable):
                    await async_client.get("/library")
                await trio.sleep_forever()  # cancelled: the block ends at once


@pytest.mark.trio
async def test_following_redirects() -> None:
    app = starlette_app()
    client = TestClient(app)
    with client:
        assert client.get("/redirect").status_code == 200  # followed
    async with open_client(app) as async_client:
        assert (await async_client.get("/redirect")).status_code == 307
    async with open_client(app, follow_redirects=True) as async_client:
        assert (await async_client.get("/redirect")).status_code == 200


@pytest.mark.trio
async def test_an_error_in_a_route() -> None:
    app = starlette_app()
    client = TestClient(app)
    with client:
        with pytest.raises(ValueError, match="boom"):
            client.get("/boom")
    client = TestClient(app, raise_server_exceptions=False)
    with client:
        assert client.get("/boom").status_code == 500
    async with open_client(app) as async_client:
        with pytest.raises(ValueError, match="boom"):
            await async_client.get("/boom")
    async with open_client(app, raise_app_exceptions=False) as async_client:
        assert (await async_client.get("/boom")).status_code == 500


@pytest.mark.trio
async def test_websockets() -> None:
    app = starlette_app()
    keys = "state keys: ['broken', 'connected', 'gone']"
    client = TestClient(app)
    with client:
        ws: WebSocketTestSession = client.websocket_connect("/ws")
        with ws:
            assert ws.receive_text() == keys
    async with (
        open_client(app) as async_client,
        async_client.websocket_connect("/ws") as aws,
    ):
        assert await aws.receive_text() == keys


# From asgi-lifespan + httpx -------------------------------------------------------


@pytest.mark.trio
async def test_httpx_alone_never_runs_the_lifespan() -> None:
    app = Recorder()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/")).text == "None"
    assert app.events == []
    assert "state" not in app.request_scopes[0]
    # asgi-lifespan + httpx: two blocks, the client's transport made from
    # the manager's app.
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            assert (await client.get("/")).text == "1"
    # open_client: one block.
    async with open_client(app) as async_client:
        assert (await async_client.get("/")).text == "1"
    assert app.events == ["startup", "shutdown"] * 2


@pytest.mark.trio
async def test_the_base_url() -> None:
    app = Recorder()
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(ValueError, match="unknown url type: '/'"):
                await client.get("/")  # it reached the app, then failed
    assert len(app.request_scopes) == 1
    async with open_client(app) as async_client:
        response = await async_client.get("/")
    assert response.request.url == "http://testserver/"


@pytest.mark.trio
async def test_the_state_across_requests() -> None:
    app = Recorder()
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            counts = [(await client.get("/")).text for _ in range(3)]
    assert counts == ["1", "2", "3"]  # one dict, changed by every request
    async with open_client(app) as async_client:
        counts = [(await async_client.get("/")).text for _ in range(3)]
        assert async_client.lifespan.state["hits"] == 0
    assert counts == ["1", "1", "1"]  # a copy each


@pytest.mark.trio
async def test_startup_failed(autojump_clock: trio.testing.MockClock) -> None:
    app = Recorder(startup_reply="lifespan.startup.failed")
    with trio.fail_after(60):
        with pytest.raises(TimeoutError) as caught:
            async with LifespanManager(app):
                pytest.fail("the block ran")
    assert type(caught.value) is TimeoutError
    assert trio.current_time() == 5.0  # its startup_timeout, waited out
    start = trio.current_time()
    with pytest.raises(LifespanStartupFailed):
        async with open_client(app):
            pytest.fail("the block ran")
    assert trio.current_time() == start


@pytest.mark.trio
async def test_a_failing_test_body() -> None:
    app = Recorder()
    with pytest.raises(BaseExceptionGroup) as group:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t"
            ) as client:
                await client.get("/")
                raise AssertionError("the test failed")
    assert [str(leaf) for leaf in leaves(group.value)] == ["the test failed"]
    assert app.events == ["startup"]  # the shutdown never came
    app = Recorder()
    with pytest.raises(AssertionError, match=r"^the test failed$"):
        async with open_client(app) as async_client:
            await async_client.get("/")
            raise AssertionError("the test failed")
    assert app.events == ["startup", "shutdown"]


@pytest.mark.trio
async def test_a_crash_while_the_body_runs() -> None:
    app = starlette_app()
    with trio.fail_after(10):
        with pytest.raises(BaseExceptionGroup) as group:
            async with LifespanManager(app) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://t"
                ) as client:
                    await client.get("/crash")
                    # The body goes on, and the dead app still answers.
                    assert (await client.get("/library")).text == "trio"
    assert "db pool died" in [str(leaf) for leaf in leaves(group.value)]
    with trio.fail_after(10):
        with pytest.raises(RuntimeError, match=r"^db pool died$"):
            async with open_client(app) as async_client:
                await async_client.get("/crash")
                await trio.sleep_forever()  # cancelled: the body ends at once


@pytest.mark.trio
async def test_websockets_need_their_transport() -> None:
    app = starlette_app()
    keys = "state keys: ['broken', 'connected', 'gone']"
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            with pytest.raises(httpx_ws.WebSocketUpgradeError):
                async with httpx_ws.aconnect_ws("/ws", client):
                    pass
        ws: httpx_ws.AsyncWebSocketSession
        async with (
            httpx.AsyncClient(
                transport=ASGIWebSocketTransport(app=manager.app),
                base_url="http://t",
            ) as client,
            httpx_ws.aconnect_ws("/ws", client) as ws,
        ):
            assert await ws.receive_text() == keys
    aws: httpx_ws.AsyncWebSocketSession
    async with (
        open_client(app) as async_client,
        httpx_ws.aconnect_ws("/ws", async_client) as aws,
    ):
        assert await aws.receive_text() == keys


@pytest.mark.trio
async def test_reading_the_state() -> None:
    app = Recorder()
    async with LifespanManager(app) as manager:
        assert not hasattr(manager, "state")
        assert manager._state == {"hits": 0}  # pyright: ignore[reportPrivateUsage]
    async with open_client(app) as client:
        assert client.lifespan.state == {"hits": 0}
        with pytest.raises(TypeError):
            client.lifespan.state["hits"] = 1  # type: ignore[index]

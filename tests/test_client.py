"""``open_client``: an httpx client on an app whose lifespan runs around it.

Every test runs on each backend on fake time (``backends.py``). The failure
paths are checked against ``open_lifespan`` itself, framework by framework:
whatever comes out of one comes out of the other, the very same way.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys
import textwrap
from collections.abc import AsyncGenerator
from typing import Any, cast

import anyio
import httpx
import httpx_ws
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import trio_lifespan
from trio_lifespan import LifespanApp, open_client, open_lifespan

from .apps import run_python
from .backends import Backend, forever
from .frameworks import (
    CASES,
    FRAMEWORKS,
    STATE_VALUE,
    UNREAD_BODY_WARNINGS,
    HookFailed,
    Misbehave,
)
from .typed import approx

# Loaded before any inner pytest session: pytester unloads what they load.
importlib.import_module("trio_lifespan._httpx")

pytestmark = UNREAD_BODY_WARNINGS


def echo_app(events: list[str], clients: list[httpx.AsyncClient]) -> Starlette:
    """A Starlette app that echoes requests and records its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        events.append("startup")
        yield {"db": "ready"}
        # The client is closed before the shutdown is sent.
        events.append(f"shutdown, client closed: {clients[0].is_closed}")

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "url": str(request.url),
                "headers": dict(request.headers),
                "cookies": request.cookies,
                "db": request.state.db,
            }
        )

    async def move(request: Request) -> RedirectResponse:
        return RedirectResponse("/echo")

    async def boom(request: Request) -> JSONResponse:
        raise LookupError("no such user")

    async def slow(request: Request) -> JSONResponse:
        await anyio.sleep(10)
        return JSONResponse({})

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        name = await websocket.receive_text()
        await websocket.send_text(f"{name}: {websocket.state.db}")
        await websocket.close()

    return Starlette(
        routes=[
            Route("/echo", echo),
            Route("/move", move),
            Route("/boom", boom),
            Route("/slow", slow),
            WebSocketRoute("/ws", socket),
        ],
        lifespan=lifespan,
    )


@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_every_framework_answers_with_its_state(
    framework: str, backend: Backend
) -> None:
    built = FRAMEWORKS[framework][0](None)
    async with open_client(built.app) as client:
        assert isinstance(client, httpx.AsyncClient)
        assert isinstance(client, trio_lifespan.LifespanClient)
        assert isinstance(client.lifespan, LifespanApp)
        assert client.lifespan.app is built.app
        response = await client.get(built.path)
        assert response.status_code == 200
        assert STATE_VALUE in response.text
    assert client.is_closed


async def test_client_options_reach_the_client(backend: Backend) -> None:
    events: list[str] = []
    clients: list[httpx.AsyncClient] = []
    app = echo_app(events, clients)
    async with open_client(
        app,
        headers={"X-Team": "core"},
        cookies={"session": "abc"},
        follow_redirects=True,
    ) as client:
        clients.append(client)
        assert events == ["startup"]
        response = await client.get("/move")
        assert response.history[0].status_code == 307  # followed
        body = response.json()
        assert body["url"] == "http://testserver/echo"  # the default base URL
        assert body["headers"]["x-team"] == "core"
        assert body["cookies"] == {"session": "abc"}
        assert body["db"] == "ready"
        assert client.lifespan.state == {"db": "ready"}
    assert events == ["startup", "shutdown, client closed: True"]


async def test_the_base_url_is_an_option(backend: Backend) -> None:
    clients: list[httpx.AsyncClient] = []
    app = echo_app([], clients)
    async with open_client(app, base_url="https://api.example.org/v1/") as client:
        clients.append(client)
        response = await client.get("../echo")
        assert response.json()["url"] == "https://api.example.org/echo"


@pytest.mark.parametrize("websockets", [True, False], ids=["httpx-ws", "http only"])
async def test_an_apps_exception_is_raised_or_a_500_as_asked(
    backend: Backend, websockets: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not websockets:
        monkeypatch.setitem(sys.modules, "httpx_ws", None)
        monkeypatch.delitem(sys.modules, "httpx_ws.transport", raising=False)
    app = echo_app([], [httpx.AsyncClient()])
    async with open_client(app) as client:
        with pytest.raises(LookupError, match="no such user"):
            await client.get("/boom")
    async with open_client(app, raise_app_exceptions=False) as client:
        response = await client.get("/boom")
        assert response.status_code == 500
        assert (await client.get("/echo")).status_code == 200


@pytest.mark.parametrize("websockets", [True, False], ids=["httpx-ws", "http only"])
async def test_the_read_timeout_holds(
    backend: Backend, websockets: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not websockets:
        monkeypatch.setitem(sys.modules, "httpx_ws", None)
        monkeypatch.delitem(sys.modules, "httpx_ws.transport", raising=False)
    app = echo_app([], [httpx.AsyncClient()])
    async with open_client(app) as client:
        began = backend.now()
        with pytest.raises(httpx.ReadTimeout) as caught:
            await client.get("/slow")  # 10 s; httpx's default timeout is 5 s
        assert backend.now() - began == approx(5, abs=1e-3)
        assert str(caught.value) == (
            "the app did not answer GET http://testserver/slow within the "
            "client's read timeout (5.0 s): pass timeout= to open_client, or to "
            "the request, for a longer one (None for no limit)"
        )
        assert (await client.get("/slow", timeout=None)).status_code == 200
    async with open_client(app, timeout=12) as client:
        assert (await client.get("/slow")).status_code == 200


def test_raise_app_exceptions_is_a_bool() -> None:
    with pytest.raises(
        TypeError, match=r"^raise_app_exceptions must be True or False, not int$"
    ):
        open_client(echo_app([], []), raise_app_exceptions=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["transport", "mounts"])
def test_our_own_transport_cannot_be_replaced(name: str) -> None:
    with pytest.raises(
        TypeError,
        match=rf"^open_client\(\) got {name}=, but the client's transport is its own: "
        r"it sends every request to the app given to open_client\. To use another "
        r"transport, open the lifespan with open_lifespan\(\) and make the httpx "
        r"client yourself$",
    ):
        options: dict[str, Any] = {name: None}
        open_client(echo_app([], []), **options)


def test_a_wrong_client_option_is_an_error_at_the_call() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        open_client(echo_app([], []), colour="blue")


def test_lifespan_options_are_checked_at_the_call() -> None:
    with pytest.raises(TypeError, match=r"^startup_timeout must be a number"):
        open_client(echo_app([], []), startup_timeout="5")  # type: ignore[arg-type]
    with pytest.raises(trio_lifespan.LifespanNotASGIApp):
        open_client(42)  # type: ignore[type-var]


async def test_the_context_manager_is_entered_once(backend: Backend) -> None:
    manager = open_client(echo_app([], [httpx.AsyncClient()]))
    async with manager as client:
        with pytest.raises(
            RuntimeError,
            match=r"^this open_client\(\) context manager was already entered; "
            r"call open_client\(\) again for each `async with`$",
        ):
            await manager.__aenter__()
        assert (await client.get("/echo")).status_code == 200


async def test_exit_without_entry_is_an_error(backend: Backend) -> None:
    manager = open_client(echo_app([], []))
    with pytest.raises(RuntimeError, match=r"^__aexit__ was called on an open_client"):
        await manager.__aexit__(None, None, None)


async def test_the_lifespan_before_entry_is_an_error(backend: Backend) -> None:
    # The client as it is before entry: reached through the manager's slot.
    manager: Any = open_client(echo_app([], []))
    client: trio_lifespan.LifespanClient[Any] = manager._client
    with pytest.raises(RuntimeError, match=r"^this client's lifespan is not open yet"):
        _ = client.lifespan
    with pytest.raises(RuntimeError, match=r"^this client's lifespan is not open yet"):
        await client.get("/echo")


# Failure paths: exactly as open_lifespan -------------------------------------

MISBEHAVIOURS = {
    "startup raises": Misbehave("startup", HookFailed("no database")),
    "startup hangs": Misbehave("startup"),
    "shutdown raises": Misbehave("shutdown", HookFailed("flush failed")),
    "shutdown hangs": Misbehave("shutdown"),
    "crash while running": Misbehave("running", HookFailed("pool died"), after=1.0),
}


async def outcome_of(
    enter: Any, backend: Backend, body: float = 3.0
) -> tuple[str, float, list[str]]:
    """What a block under ``enter`` ends with: the error's type and message,
    the virtual time it took, the errors' identities checked by the caller."""
    began = backend.now()
    try:
        async with enter:
            await backend.sleep(body)
    except BaseException as exc:  # noqa: BLE001 - compared below
        return (f"{type(exc).__name__}: {exc}", backend.now() - began, [])
    return ("no error", backend.now() - began, [])


@pytest.mark.parametrize("misbehaviour", list(MISBEHAVIOURS))
@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_every_failure_comes_out_as_from_open_lifespan(
    framework: str, misbehaviour: str, backend: Backend
) -> None:
    build = FRAMEWORKS[framework][0]
    misbehave = MISBEHAVIOURS[misbehaviour]
    first = build(None, misbehave)
    by_lifespan = await outcome_of(open_lifespan(first.app), backend)
    second = build(None, misbehave)  # (BlackSheep: one app built at a time)
    by_client = await outcome_of(open_client(second.app), backend)
    # A task the app started on its own (Falcon, BlackSheep) kept its error:
    # the same in both runs, and retrieved (asyncio complains otherwise).
    assert [task.error() for task in first.unwatched] == [
        task.error() for task in second.unwatched
    ]
    # The type and the message's first line: Falcon's message is a
    # traceback, whose frames differ by the caller's.
    assert by_client[0].splitlines()[0] == by_lifespan[0].splitlines()[0]
    assert by_client[1] == approx(by_lifespan[1], abs=1e-3)


async def test_the_apps_own_error_comes_out_bare(backend: Backend) -> None:
    error = HookFailed("pool died")
    built = FRAMEWORKS["starlette"][0](None, Misbehave("running", error, after=1.0))
    with pytest.raises(HookFailed) as caught:
        async with open_client(built.app) as client:
            await client.get(built.path)
            await backend.sleep(forever())
    assert caught.value is error


async def test_after_a_crash_the_client_names_the_lifespans_error(
    backend: Backend,
) -> None:
    error = HookFailed("pool died")
    built = FRAMEWORKS["starlette"][0](None, Misbehave("running", error, after=1.0))
    refused: list[BaseException] = []
    manager = open_client(built.app)
    with pytest.raises(HookFailed):
        async with manager as client:
            try:
                await backend.sleep(forever())
            finally:
                # In the block, cancelled: the app refuses the request.
                with pytest.raises(trio_lifespan.LifespanUnavailable) as caught:
                    await client.get(built.path)
                refused.append(caught.value)
    # After the block: the client is closed, and says why.
    client = cast("Any", manager)._client
    assert client.is_closed
    with pytest.raises(trio_lifespan.LifespanUnavailable) as caught:
        await client.get(built.path)
    refused.append(caught.value)
    assert [each.__cause__ for each in refused] == [error, error]
    async with open_client(echo_app([], [httpx.AsyncClient()])) as client:
        pass
    with pytest.raises(RuntimeError, match="client has been closed"):
        await client.get("/echo")  # closed after a lifespan that went well


async def test_a_request_in_flight_is_cancelled_by_a_crash(backend: Backend) -> None:
    error = HookFailed("pool died")
    built = FRAMEWORKS["starlette"][0](None, Misbehave("running", error, after=1.0))

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await backend.sleep(forever())
        await built.app(scope, receive, send)

    with pytest.raises(HookFailed) as caught:
        async with open_client(slow) as client:
            await client.get("/")
    assert caught.value is error


async def test_the_body_raises_and_the_shutdown_still_runs(backend: Backend) -> None:
    events: list[str] = []
    clients: list[httpx.AsyncClient] = []
    error = ValueError("the test failed")
    with pytest.raises(ValueError, match="the test failed") as caught:
        async with open_client(echo_app(events, clients)) as client:
            clients.append(client)
            raise error
    assert caught.value is error
    assert events == ["startup", "shutdown, client closed: True"]


async def test_a_failing_client_close_still_closes_the_lifespan(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    clients: list[httpx.AsyncClient] = []
    error = OSError("the transport would not close")
    close = httpx.AsyncClient.__aexit__

    async def fail(self: httpx.AsyncClient, *args: Any) -> None:
        await close(self, *args)
        raise error

    monkeypatch.setattr(trio_lifespan.LifespanClient, "__aexit__", fail)
    with pytest.raises(OSError, match="would not close") as caught:
        async with open_client(echo_app(events, clients)) as client:
            clients.append(client)
    assert caught.value is error
    assert events == ["startup", "shutdown, client closed: True"]


async def test_a_failing_client_entry_still_closes_the_lifespan(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    error = OSError("the transport would not open")

    async def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(trio_lifespan.LifespanClient, "__aenter__", fail)
    with pytest.raises(OSError, match="would not open") as caught:
        async with open_client(echo_app(events, [httpx.AsyncClient()])):
            raise AssertionError("the block must not run")
    assert caught.value is error
    assert events == ["startup", "shutdown, client closed: False"]


# Websockets ----------------------------------------------------------------


async def test_a_websocket_sees_the_lifespan_state(backend: Backend) -> None:
    async with open_client(echo_app([], [httpx.AsyncClient()])) as client:
        websocket: httpx_ws.AsyncWebSocketSession
        async with httpx_ws.aconnect_ws("/ws", client) as websocket:
            await websocket.send_text("db")
            assert await websocket.receive_text() == "db: ready"


def deaf_app(events: list[str]) -> Starlette:
    """A websocket route that accepts, then never reads again."""

    async def deaf(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await anyio.sleep_forever()
        finally:
            events.append("the session ended")

    async def mute(websocket: WebSocket) -> None:
        await anyio.sleep_forever()  # never accepts

    return Starlette(
        routes=[WebSocketRoute("/deaf", deaf), WebSocketRoute("/mute", mute)]
    )


async def test_a_websocket_left_open_ends_within_the_shutdown_timeout(
    backend: Backend,
) -> None:
    events: list[str] = []
    began = backend.now()
    async with open_client(deaf_app(events), shutdown_timeout=2) as client:
        websocket: httpx_ws.AsyncWebSocketSession
        async with httpx_ws.aconnect_ws("/deaf", client) as websocket:
            await websocket.send_text("hello")  # the app never reads it
            began = backend.now()
    # Told that the client left, the app went on waiting: cancelled at 2 s.
    assert backend.now() - began == approx(2, abs=1e-3)
    assert events == ["the session ended"]


# httpx-ws leaves the session's streams unclosed when the handshake is cut
# short (it closes them once the app accepted): collected here, not later.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function MemoryObjectReceiveStream.__del__"
    ":pytest.PytestUnraisableExceptionWarning",
    "ignore:Exception ignored in. <function MemoryObjectSendStream.__del__"
    ":pytest.PytestUnraisableExceptionWarning",
)
async def test_a_handshake_cut_short_does_not_hold_the_exit(backend: Backend) -> None:
    began = backend.now()
    async with open_client(deaf_app([]), shutdown_timeout=2) as client:
        with backend.move_on_after(0.5):
            async with httpx_ws.aconnect_ws("/mute", client):
                raise AssertionError("the app never accepts")
        began = backend.now()
    assert backend.now() - began == approx(2, abs=1e-3)
    gc.collect()


async def test_without_httpx_ws_a_websocket_names_the_extra(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "httpx_ws", None)
    monkeypatch.delitem(sys.modules, "httpx_ws.transport", raising=False)
    async with open_client(echo_app([], [httpx.AsyncClient()])) as client:
        assert (await client.get("/echo")).status_code == 200  # HTTP works
        for request in (
            client.build_request("GET", "ws://testserver/ws"),
            client.build_request("GET", "/ws", headers={"Upgrade": "websocket"}),
        ):
            with pytest.raises(ModuleNotFoundError) as caught:
                await client.send(request)
            assert str(caught.value) == (
                f"a websocket request ({request.url}) through the client's send() "
                "is httpx-ws's way, and httpx-ws is not installed: pip install "
                "'trio-lifespan[httpx-ws]'; or use `async with "
                "client.websocket_connect(path)`, which needs nothing"
            )
            assert caught.value.name == "httpx_ws"


async def test_a_broken_httpx_ws_is_not_called_missing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "trio_lifespan._wsproto", raising=False)
    monkeypatch.setitem(sys.modules, "wsproto", None)  # what httpx-ws needs
    async with open_client(echo_app([], [httpx.AsyncClient()])) as client:
        request = client.build_request("GET", "/ws", headers={"Upgrade": "websocket"})
        with pytest.raises(ModuleNotFoundError) as caught:
            await client.send(request)
    assert caught.value.name == "wsproto"


# What is imported, and when -----------------------------------------------------


def test_without_httpx_the_call_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "trio_lifespan._httpx", raising=False)
    monkeypatch.delattr(trio_lifespan, "_httpx", raising=False)
    with pytest.raises(ModuleNotFoundError) as caught:
        open_client(echo_app([], []))
    assert str(caught.value) == (
        "open_client() needs httpx, which is not installed: "
        "pip install 'trio-lifespan[client]'"
    )
    assert caught.value.name == "httpx"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_another_missing_module_is_not_blamed_on_httpx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "trio_lifespan._httpx", raising=False)
    monkeypatch.delitem(sys.modules, "trio_lifespan._clientbase", raising=False)
    monkeypatch.delattr(trio_lifespan, "_httpx", raising=False)
    monkeypatch.setitem(sys.modules, "trio_lifespan._compat", None)
    with pytest.raises(ImportError) as caught:
        open_client(echo_app([], []))
    assert "needs httpx" not in str(caught.value)


def run_code(code: str) -> str:
    return run_python("-c", textwrap.dedent(code)).strip()


def test_importing_the_package_imports_no_httpx() -> None:
    assert (
        run_code(
            """
        import sys
        import trio_lifespan
        trio_lifespan.open_client  # the name alone loads no httpx either
        print(sorted(m for m in ("httpx", "httpx_ws", "httpcore") if m in sys.modules))
        """
        )
        == "[]"
    )


def test_the_asyncio_path_never_imports_trio() -> None:
    # trio cannot even be imported: a client on asyncio must not need it.
    assert (
        run_code(
            """
        import asyncio, contextlib, sys
        sys.modules["trio"] = None
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route
        import trio_lifespan

        @contextlib.asynccontextmanager
        async def lifespan(app):
            yield {"db": "ready"}

        async def home(request):
            return PlainTextResponse(request.state.db)

        app = Starlette(routes=[Route("/", home)], lifespan=lifespan)

        async def main():
            async with trio_lifespan.open_client(app) as client:
                return (await client.get("/")).text

        print(asyncio.run(main()), sys.modules["trio"])
        """
        )
        == "ready None"
    )

"""Apps for the command-line tests, imported by reference (``tests.cli_apps:x``).

They use no sleeps that a test would wait out: a slow app is only ever run
with a zero timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import anyio.lowlevel
import sniffio
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trio_lifespan._types import Receive, Scope, Send


async def _sleep_forever() -> None:
    if sniffio.current_async_library() == "trio":
        await trio.sleep_forever()
    await asyncio.get_running_loop().create_future()


async def _lifespan(scope: Scope, receive: Receive, send: Send, fail: str = "") -> None:
    await receive()
    if fail == "startup":
        raise RuntimeError("the database is down")
    scope["state"]["db"] = "connected"
    await send({"type": "lifespan.startup.complete"})
    await receive()
    if fail == "shutdown":
        await send({"type": "lifespan.shutdown.failed", "message": "pool stuck"})
        return
    await send({"type": "lifespan.shutdown.complete"})


async def _answer(scope: Scope, send: Send) -> bool:
    """Respond to one request; whether a response was sent."""
    if scope["path"] == "/boom":
        raise ValueError("handler exploded")
    if scope["path"] == "/exit":
        raise SystemExit(0)  # a handler that calls sys.exit(0)
    if scope["path"] == "/slow":
        await _sleep_forever()
    if scope["path"] == "/silent":
        return False
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        return True
    status = 200 if scope["path"] in ("/", "/health") else 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return True


async def good(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    request = await receive()
    assert request == {"type": "http.request", "body": b"", "more_body": False}
    if await _answer(scope, send):
        disconnect = await receive()  # waits until the response is complete
        assert disconnect == {"type": "http.disconnect"}


async def odd_state_keys(scope: Scope, receive: Receive, send: Send) -> None:
    """Startup puts keys that are not strings in the state."""
    if scope["type"] == "lifespan":
        scope["state"][42] = "answer"
        scope["state"][("a", 1)] = "pair"
    await good(scope, receive, send)


async def startup_fails(scope: Scope, receive: Receive, send: Send) -> None:
    await _lifespan(scope, receive, send, fail="startup")


async def shutdown_fails(scope: Scope, receive: Receive, send: Send) -> None:
    await _lifespan(scope, receive, send, fail="shutdown")


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(f"only http, not {scope['type']}")
    await _answer(scope, send)


async def never_starts(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _sleep_forever()


async def breaks_protocol(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "lifespan.startup.ready"})


def make_app() -> object:
    return good


def broken_factory() -> object:
    raise KeyError("missing setting")


class Settings:
    app = good


not_an_app = 42


def wsgi_app(environ: dict[str, object], start_response: object) -> list[bytes]:
    """A WSGI app by mistake: it cannot be called as an ASGI app."""
    raise AssertionError("never called with two arguments")  # pragma: no cover


# Real Starlette apps (tests/test_framework_failures.py) ----------------------


@contextlib.asynccontextmanager
async def _stuck(app: Starlette) -> AsyncGenerator[None]:
    await anyio.sleep_forever()  # a service that never answers
    yield  # pragma: no cover


starlette_never_starts = Starlette(lifespan=_stuck)


@contextlib.asynccontextmanager
async def _refresher(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
    asked = anyio.Event()

    async def refresh_cache() -> None:
        await asked.wait()  # dies while the request below waits
        raise RuntimeError("the cache refresher died")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(refresh_cache)
        yield {"asked": asked}
        tasks.cancel_scope.cancel()  # pragma: no cover


async def _wait(request: Request) -> PlainTextResponse:
    request.state.asked.set()
    await anyio.sleep_forever()
    return PlainTextResponse("never")  # pragma: no cover


starlette_crashes = Starlette(routes=[Route("/wait", _wait)], lifespan=_refresher)


# Apps for the CLI's hints, JSON output and other requests ---------------------


async def _answer_later() -> None:
    await asyncio.sleep(0)


async def asyncio_tasks(scope: Scope, receive: Receive, send: Send) -> None:
    """An asyncio-only app: its startup starts an asyncio task."""
    if scope["type"] == "lifespan":
        await receive()
        # On trio: "no running event loop", before the coroutine is made.
        await asyncio.get_running_loop().create_task(_answer_later())
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await good(scope, receive, send)  # pragma: no cover


async def asyncio_awaits(scope: Scope, receive: Receive, send: Send) -> None:
    """An asyncio-only app: its startup awaits an asyncio future."""
    if scope["type"] == "lifespan":
        await asyncio.sleep(0)  # on trio: "unrecognized yield message"
    await good(scope, receive, send)


def noisy_app() -> object:
    """A factory that prints, as does the app's startup."""
    print("making the app")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            print("starting up")
        await good(scope, receive, send)

    return app


class Container:
    app = good


container = Container()


#: What ``echo`` was sent: each request's method, path, headers and body.
echoed: list[dict[str, Any]] = []


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Records each request; answers 201 to a POST, 200 to anything else,
    with an ``x-seen: yes`` header."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    request = await receive()
    echoed.append(
        {
            "method": scope["method"],
            "path": scope["path"],
            "headers": scope["headers"],
            "body": request["body"],
        }
    )
    status = 201 if scope["method"] == "POST" else 200
    headers = [(b"x-seen", b"yes")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def asyncio_handler(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts on any library, but its requests need asyncio."""
    if scope["type"] == "http":
        await asyncio.sleep(0)  # on trio: "unrecognized yield message"
    await good(scope, receive, send)


async def trio_handler(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts on any library, but its requests need trio."""
    if scope["type"] == "http":
        trio.current_time()  # on asyncio: "must be called from async context"
    await good(scope, receive, send)


async def not_ready(scope: Scope, receive: Receive, send: Send) -> None:
    """A readiness route that says why it is not ready; bodies that are
    binary, long, sent in pieces, cut in a character, or followed by
    trailers."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    bodies: dict[str, list[bytes]] = {
        "/ready": [b"migrations pending\n"],
        "/binary": [bytes(range(256)) + bytes(44)],
        "/control": [b"\x00\x01\x02"],
        "/long": [b"x" * 150, b"x" * 150, b"x" * 200],
        "/cut": [b"x" * 199 + "\u00e9 and more".encode()],
        "/trailers": [b"late"],
    }
    pieces = bodies[scope["path"]]
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/ready":
        headers.append((b"x-reason", b"migrations"))
    trailers = scope["path"] == "/trailers"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": headers,
            "trailers": trailers,
        }
    )
    for index, piece in enumerate(pieces):
        more = index < len(pieces) - 1
        await send({"type": "http.response.body", "body": piece, "more_body": more})
    if trailers:
        await send({"type": "http.response.trailers", "headers": []})


async def scope_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what the server put in the scope for the request line:
    the path, raw path and query string (latin-1), as JSON."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    echoed = {
        "path": scope["path"],
        "raw_path": bytes(scope.get("raw_path") or b"").decode("latin-1"),
        "query_string": bytes(scope["query_string"]).decode("latin-1"),
    }
    body = json.dumps(echoed).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def exits_in_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Its startup calls ``sys.exit(4)``."""
    if scope["type"] == "lifespan":
        await receive()
        raise SystemExit(4)
    await good(scope, receive, send)  # pragma: no cover


async def writes_to_fd1(scope: Scope, receive: Receive, send: Send) -> None:
    """Its startup writes to file descriptor 1, as a subprocess it ran would."""
    if scope["type"] == "lifespan":
        os.write(1, b"migrating...\n")
    await good(scope, receive, send)


async def dies_under_requests(scope: Scope, receive: Receive, send: Send) -> None:
    """Its lifespan raises (no task group) once the first request came."""
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["die"] = die = anyio.Event()
        await send({"type": "lifespan.startup.complete"})
        await die.wait()
        raise KeyError("pool")
    scope["state"]["die"].set()
    await anyio.lowlevel.checkpoint()
    await good(scope, receive, send)


async def typed(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with a content type that has parameters, and an odd header."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    await receive()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"x-odd", b"  Sp Aced  "),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"fine"})

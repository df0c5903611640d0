# pyright: reportMissingTypeStubs=false
"""The apps ``test_servers.py`` serves with real servers, in their own processes.

A FastAPI parent mounts a Starlette app, a Litestar app and an MCP server's
streamable-HTTP app, each with its own lifespan; ``lifespan_of`` runs them,
and the parent's own lifespan after them (``app``), or ``with_lifespans``
does, around the parent (``wrapped_app``). Every hook prints a line (flushed
at once) that the tests read in the server's output. ``failing_app`` and
``failing_wrapped_app`` are the same, with a Litestar sub-app whose startup
raises :data:`FAILURE`.

Served as ``tests.mounted_apps:<name>`` from the repository's root.
"""

# No `from __future__ import annotations`: FastAPI and Litestar read the
# handlers' annotations at run time.
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from fastapi import FastAPI, Request as FastAPIRequest
from litestar import Litestar, get
from litestar.datastructures import State
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import lifespan_of, with_lifespans

#: What the failing Litestar sub-app's startup raises.
FAILURE = "the litestar sub-app cannot reach its database"

_started: list[anyio.Event] = []


def starlette_started() -> anyio.Event:
    """Set once a Starlette sub-app's startup has run (made on first use:
    an event belongs to the event loop that runs the lifespans)."""
    if not _started:
        _started.append(anyio.Event())
    return _started[0]


def say(line: str) -> None:
    print(line, flush=True)


def starlette_sub() -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        say("starlette: startup")
        starlette_started().set()
        yield {"starlette_value": "set by the starlette sub-app"}
        say("starlette: shutdown")

    async def state(request: Request) -> JSONResponse:
        return JSONResponse(request.state.starlette_value)

    return Starlette(routes=[Route("/state", state)], lifespan=lifespan)


def litestar_sub(*, fail: bool) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None]:
        say("litestar: startup")
        if fail:
            # Once the Starlette sub-app has started, so that the test sees
            # it shut down (the startups run concurrently).
            await starlette_started().wait()
            raise RuntimeError(FAILURE)
        app.state.litestar_value = "set by the litestar sub-app"
        yield
        say("litestar: shutdown")

    @get("/state", sync_to_thread=False)
    def state(state: State) -> str:
        return str(state.litestar_value)

    return Litestar(route_handlers=[state], lifespan=[lifespan])


def mcp_sub() -> Starlette:
    mcp = MCPServer("mounted")

    @mcp.tool()
    def add(a: int, b: int) -> int:  # pyright: ignore[reportUnusedFunction]
        """Add two numbers."""
        return a + b

    return mcp.streamable_http_app(streamable_http_path="/")


def build(*, fail: bool = False, wrap: bool = False) -> Any:
    """The parent, with its three mounted apps: their lifespans run by
    ``lifespan_of`` as the parent's ``lifespan=``, or, with ``wrap``, by
    ``with_lifespans`` around the parent (which then has only its own)."""
    starlette, litestar, mcp = starlette_sub(), litestar_sub(fail=fail), mcp_sub()

    @contextlib.asynccontextmanager
    async def own(app: FastAPI) -> AsyncGenerator[dict[str, Any]]:
        say("parent: startup")
        yield {"parent_value": "set by the parent"}
        say("parent: shutdown")

    mounted = (starlette, litestar, mcp)
    app = FastAPI(lifespan=own if wrap else lifespan_of(*mounted, lifespan=own))
    app.mount("/starlette", starlette)
    app.mount("/litestar", litestar)  # type: ignore[arg-type]
    app.mount("/mcp", mcp)

    @app.get("/state")
    async def state(request: FastAPIRequest) -> Any:  # pyright: ignore[reportUnusedFunction]
        return request.state.parent_value

    return with_lifespans(app, *mounted) if wrap else app


app = build()
failing_app = build(fail=True)
wrapped_app = build(wrap=True)
failing_wrapped_app = build(fail=True, wrap=True)

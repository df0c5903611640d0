"""Apps a deploy pipeline checks that need trio (``tests.deploy_trio:app``).

A quart-trio app and a Starlette app whose startup and handler await trio:
``--backend auto`` must choose trio for them; on asyncio they fail in trio's
words.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import trio
import trio.lowlevel
from quart_trio import QuartTrio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

app = QuartTrio(__name__)


@app.before_serving
async def _startup() -> None:
    await trio.lowlevel.checkpoint()


@app.route("/health")
async def _health() -> dict[str, str]:
    await trio.lowlevel.checkpoint()
    return {"status": "ok"}


@asynccontextmanager
async def _lifespan(_: object) -> AsyncGenerator[None, None]:
    async with trio.open_nursery():
        yield


async def _ping(request: Request) -> JSONResponse:
    await trio.lowlevel.checkpoint()
    return JSONResponse({"pong": True})


#: A Starlette app that awaits trio in its startup and its handler.
starlette_app = Starlette(routes=[Route("/ping", _ping)], lifespan=_lifespan)

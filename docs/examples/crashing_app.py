"""A Starlette app whose lifespan keeps a background task: a pretend db pool.

``GET /users`` answers from the lifespan state. ``GET /break-the-pool`` makes
the pool's task raise ``RuntimeError("db pool died")``; that ends the
lifespan (Starlette reports ``lifespan.shutdown.failed`` and re-raises), and
the route answers only once the lifespan is gone, so that what the tests see
next does not depend on timing.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
    broken = anyio.Event()  # set by GET /break-the-pool
    gone = anyio.Event()  # set when the lifespan has ended

    async def pool() -> None:
        await broken.wait()
        raise RuntimeError("db pool died")

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(pool)
            yield {"users": 3, "broken": broken, "gone": gone}
            tasks.cancel_scope.cancel()
    finally:
        gone.set()


async def users(request: Request) -> JSONResponse:
    return JSONResponse({"users": request.state.users})


async def break_the_pool(request: Request) -> PlainTextResponse:
    request.state.broken.set()
    await request.state.gone.wait()
    return PlainTextResponse("the pool is gone")


app = Starlette(
    routes=[Route("/users", users), Route("/break-the-pool", break_the_pool)],
    lifespan=lifespan,
)

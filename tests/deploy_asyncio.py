"""Apps a deploy pipeline checks that need asyncio (``tests.deploy_asyncio:app``).

Nothing here imports trio: ``--backend auto`` must choose asyncio for them,
as uvicorn would run them. Their startups need asyncio, as an asyncpg pool's
would: on trio they fail with asyncio's "no running event loop".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


@asynccontextmanager
async def _pool(_: object) -> AsyncGenerator[dict[str, Any], None]:
    loop = asyncio.get_running_loop()  # what a driver's connect does first
    await asyncio.sleep(0)
    yield {"pool": loop.time()}


app = FastAPI(lifespan=_pool)


@app.get("/health")
async def health() -> dict[str, str]:
    await asyncio.sleep(0)
    return {"status": "ok"}


@app.post("/items", status_code=201)
async def create(authorization: str | None = Header(default=None)) -> dict[str, int]:
    if authorization is None:
        raise HTTPException(401, "not authenticated")
    return {"id": 1}


@app.get("/items")
async def items() -> list[dict[str, int]]:
    return [{"id": 1}]


async def _ready(request: Request) -> PlainTextResponse:
    return PlainTextResponse("migrations pending", status_code=503)


async def _alive(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


#: A Starlette app whose readiness route fails, with the reason in its body.
not_ready = Starlette(
    routes=[Route("/health", _alive), Route("/ready", _ready)], lifespan=_pool
)

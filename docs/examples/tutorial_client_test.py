"""The tutorial's first test file: a Starlette app, tested with open_client."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import open_client


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
    yield {"db": {"users": ["ada", "grace"]}}  # the pretend database


async def users(request: Request) -> JSONResponse:
    return JSONResponse({"users": request.state.db["users"]})


app = Starlette(routes=[Route("/users", users)], lifespan=lifespan)


@pytest.mark.trio
async def test_users() -> None:
    async with open_client(app) as client:  # the startup runs here
        response = await client.get("/users")
    assert response.json() == {"users": ["ada", "grace"]}  # the shutdown has run


@pytest.mark.trio
async def test_the_state_the_startup_set() -> None:
    async with open_client(app) as client:
        assert client.lifespan.state["db"] == {"users": ["ada", "grace"]}

"""How-to: from Starlette's TestClient to open_client, the same test twice."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from trio_lifespan import open_client


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
    yield {"users": ["ada", "grace"]}


async def users(request: Request) -> JSONResponse:
    return JSONResponse({"users": request.state.users})


app = Starlette(routes=[Route("/users", users)], lifespan=lifespan)


def test_before() -> None:
    client = TestClient(app)
    with client:  # the lifespan runs on another event loop, in another thread
        response = client.get("/users")
        assert response.json() == {"users": ["ada", "grace"]}
        assert client.app_state["users"] == ["ada", "grace"]


@pytest.mark.trio  # or asyncio, or anyio: open_client runs on the test's loop
async def test_after() -> None:
    async with open_client(app) as client:
        response = await client.get("/users")
        assert response.json() == {"users": ["ada", "grace"]}
        assert client.lifespan.state["users"] == ["ada", "grace"]
